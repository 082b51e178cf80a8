"""Member digests on a thread of their own, rows handed on in archive order."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

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
        self._queue: queue.Queue[tuple[Row, bytes | None] | None] = queue.Queue(DEPTH)
        # Each counter has one writer (queued: the caller, done: the thread): no lock needed.
        self._queued = self._done = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="member-digests", daemon=True)
        self._thread.start()

    def add(self, row: Row, data: bytes | None = None) -> None:
        """Record a row; with data, its sha256 is computed first (here or on the thread)."""
        if self._error is not None:
            raise self._error
        if self._queued != self._done or (
                data is not None and self._min <= len(data) <= THREAD_MAX):
            self._queued += 1  # rows behind a queued one must queue too: order is the manifest's
            self._queue.put((row, data))
            return
        if data is not None:
            row["sha256"] = hashlib.sha256(data).hexdigest()
        self.sink(row)

    def _run(self) -> None:
        """Hash and sink queued rows until the end mark; after an error, only consume."""
        while (item := self._queue.get()) is not None:
            row, data = item
            if self._error is None:
                try:
                    if data is not None:
                        row["sha256"] = hashlib.sha256(data).hexdigest()
                    self.sink(row)
                except BaseException as e:  # handed to the caller by add/close
                    self._error = e
            self._done += 1

    def close(self, raise_error: bool = True) -> None:
        """Wait until every row is sunk; raise the thread's error if asked."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


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
