"""One background thread working through a bounded queue, its first error handed back."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
_END = object()


class QueueWorker(Generic[Item]):
    """Calls `handle` on each item put, in order, on a daemon thread; after an error it only
    consumes (so the producer never blocks) and the error is raised on the next put or close."""

    def __init__(self, name: str, depth: int, handle: Callable[[Item], None]) -> None:
        self._handle = handle
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.done = 0  # items finished; only the thread writes it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Handle items until the end mark."""
        while (item := self._queue.get()) is not _END:
            if self.error is None:
                try:
                    self._handle(item)  # type: ignore[arg-type]  # all but the end mark are items
                except BaseException as e:  # handed to the producer by put/close
                    self.error = e
            self.done += 1

    def put(self, item: Item) -> None:
        """Queue an item (waits while the queue is full); raise the thread's error first."""
        if self.error is not None:
            raise self.error
        self._queue.put(item)

    def close(self, raise_error: bool = True) -> None:
        """Wait until every item is handled; raise the thread's error if asked."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        if raise_error and self.error is not None:
            raise self.error

    @property
    def alive(self) -> bool:
        """True until close has ended the thread."""
        return self._thread.is_alive()
