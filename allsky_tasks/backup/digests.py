"""Member digests on a thread of their own, rows handed on in archive order."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..archive.worker import QueueWorker

Row = dict[str, Any]
# Files of 64 KiB - 1 MiB go to the thread: there hashing overlaps the next file's read (on a
# Pi's SD card and without SHA instructions, both are slow). Smaller ones cost less than the
# hand-over; larger ones are few, and the queue's memory stays bounded (DEPTH x 1 MiB).
THREAD_MIN, THREAD_MAX = 64 << 10, 1 << 20
DEPTH = 16
# Measured on 2 cores (bench tree): -9 % pack time with SHA-256 in software, +7 % with SHA-NI,
# where the thread competes with zstd's workers and the archive writer. From 4 cores (every
# Pi since the 2) a core is free for it.
THREADED = (os.cpu_count() or 1) >= 4


class DigestPipeline:
    """Fills each row's sha256 from its data and passes rows to `sink` in the order added."""

    def __init__(self, sink: Callable[[Row], None], threaded: bool | None = None) -> None:
        self.sink = sink
        self._min = THREAD_MIN if (THREADED if threaded is None else threaded) else THREAD_MAX + 1
        self._worker: QueueWorker[tuple[Row, bytes | None]] = QueueWorker(
            "member-digests", DEPTH, self._finish)
        self._queued = 0  # only the caller writes it; the worker's `done` only the thread

    def add(self, row: Row, data: bytes | None = None) -> None:
        """Record a row; with data, its sha256 is computed first (here or on the thread)."""
        if self._queued != self._worker.done or (
                data is not None and self._min <= len(data) <= THREAD_MAX):
            # Rows behind a queued one must queue too: their order is the manifest's.
            self._worker.put((row, data))
            self._queued += 1
            return
        self._finish((row, data))

    def _finish(self, item: tuple[Row, bytes | None]) -> None:
        """Hash a row's data into it and sink it."""
        row, data = item
        if data is not None:
            row["sha256"] = hashlib.sha256(data).hexdigest()
        self.sink(row)

    def close(self, raise_error: bool = True) -> None:
        """Wait until every row is sunk; raise the thread's error if asked."""
        self._worker.close(raise_error)


@contextmanager
def member_digests(sink: Callable[[Row], None], threaded: bool | None = None
                   ) -> Iterator[DigestPipeline]:
    """A pipeline that has sunk every row when the block ends (or stopped, if it failed)."""
    pipeline = DigestPipeline(sink, threaded)
    try:
        yield pipeline
    except BaseException:
        pipeline.close(raise_error=False)  # the first failure is the one to report
        raise
    pipeline.close()
