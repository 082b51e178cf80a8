"""The archive's write end: a thread hashes, writes and flushes to disk while we compress."""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
from collections.abc import Callable
from typing import BinaryIO

from .worker import QueueWorker

WINDOW = 8 << 20  # write-out unit: dirty pages stay bounded on a 1 GB Pi
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4  # linux/fs.h SYNC_FILE_RANGE_*


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range (Linux), or None where there is none."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return func


_sync_file_range = _load_sync_file_range()


def drop_cached(fd: int, offset: int = 0, length: int = 0) -> None:
    """Evict written-out pages of a file (length 0: to its end) from the page cache.

    So verify reads the archive back from the disk, not from memory, and a 1 GB Pi does not
    trade Allsky's own cache for our archive. A no-op for pages still dirty.
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


class WriteBehind:
    """Starts write-out of each finished window, waits for the one before and evicts it
    (as borg's SyncFile does).

    Without it the kernel keeps the whole archive dirty until the final fsync, which then
    writes gigabytes while nothing else happens, and a small Pi's memory fills with it.
    """

    def __init__(self, raw: BinaryIO) -> None:
        try:
            self.fd: int | None = raw.fileno()
        except (OSError, io.UnsupportedOperation):
            self.fd = None
        self.raw, self.started, self.waited, self.pending = raw, 0, 0, 0

    def wrote(self, n: int) -> None:
        """Note n more bytes written; past a window, hand it to the disk."""
        self.pending += n
        if self.pending < WINDOW or self.fd is None or _sync_file_range is None:
            return
        self.raw.flush()
        end = self.started + self.pending
        # Advisory only: an I/O error still surfaces at the final fsync.
        _sync_file_range(self.fd, self.started, end - self.started, _WRITE)
        if self.waited < self.started:  # the previous window has had its time: wait for it
            _sync_file_range(self.fd, self.waited, self.started - self.waited,
                             _WAIT_BEFORE | _WRITE | _WAIT_AFTER)
            drop_cached(self.fd, self.waited, self.started - self.waited)
            self.waited = self.started
        self.started, self.pending = end, 0


class HashingWriter(io.RawIOBase):
    """Counts and hashes every compressed byte; a thread hashes and writes them to the file.

    SHA-256 of the archive and the copy into the page cache cost as much CPU as zstd on camera
    images: on a thread of their own they overlap with reading and compressing.
    """

    DEPTH = 32  # queued chunks of ~128 KiB (one 4 MiB job's output): bounds the memory held

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._behind = WriteBehind(raw)
        self._worker: QueueWorker[bytes] = QueueWorker("archive-writer", self.DEPTH, self._drain)

    def writable(self) -> bool:
        """This is a write-only stream."""
        return True

    def _drain(self, data: bytes) -> None:
        """Hash and write one chunk (on the worker thread)."""
        self.sha256.update(data)
        self.raw.write(data)
        self._behind.wrote(len(data))

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]  # narrower: what writers pass
        """Queue for hashing and writing (a copy unless immutable: callers reuse buffers)."""
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._worker.put(chunk)
        self.size += len(chunk)
        return len(chunk)

    def finish(self, raise_error: bool = True) -> None:
        """Wait until every queued byte is hashed and written; raise a write error if asked."""
        self._worker.close(raise_error)
