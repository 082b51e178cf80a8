"""One background thread working through a bounded queue, its first error handed back.

Safe against a KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one) or the pause alarm's
error raised at any point of the producer: a queue.Queue would not be. Its put takes a Python
Condition, and an exception raised by a signal handler just after the lock is taken (before
the `with` block is entered) leaves that lock held for ever; the cleanup's own put of the end
mark then waits on it, a deadlock with the service stopped. Here the producer never waits on
a lock the thread needs: items go through a SimpleQueue (one C call), the bound is a counter,
and the producer waits for room on a plain lock that only the thread releases, with a timeout.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
_END = object()
ABANDON_WAIT = 5.0  # seconds a failed producer gives the thread to finish its current item
_ROOM_POLL = 0.5  # the wait for room looks again this often (a lost release costs no more)


class QueueWorker(Generic[Item]):
    """Calls `handle` on each item put, in order, on a daemon thread; after an error it only
    consumes (so the producer never blocks) and the error is raised on the next put or close."""

    def __init__(self, name: str, depth: int, handle: Callable[[Item], None]) -> None:
        self._handle = handle
        self._depth = max(1, depth)
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._room = threading.Lock()  # held while the producer may wait; the thread releases it
        self._room.acquire()
        self._queued = 0  # items put; only the producer writes it
        self._abandoned = False
        self.error: BaseException | None = None
        self.done = 0  # items finished; only the thread writes it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Handle items until the end mark."""
        while (item := self._items.get()) is not _END:
            if self.error is None and not self._abandoned:
                try:
                    self._handle(item)  # type: ignore[arg-type]  # all but the end mark are items
                except BaseException as e:  # handed to the producer by put/close
                    self.error = e
            self.done += 1
            if self._room.locked():  # only this thread releases it: no race with the check
                self._room.release()

    def put(self, item: Item) -> None:
        """Queue an item (waits while `depth` items are queued); raise the thread's error first."""
        if self.error is not None:
            raise self.error
        while self._queued - self.done >= self._depth and self._thread.is_alive():
            self._room.acquire(timeout=_ROOM_POLL)  # an interrupt here leaves nothing held
        self._items.put(item)
        self._queued += 1

    def close(self, raise_error: bool = True) -> None:
        """Wait until every item is handled; raise the thread's error if asked.

        raise_error=False is the producer's failure path: the thread drops what is still
        queued and gets ABANDON_WAIT seconds to end, so no cleanup can hang on it.
        """
        if not raise_error:
            self._abandoned = True
        self._items.put(_END)
        self._thread.join(None if raise_error else ABANDON_WAIT)
        if raise_error and self.error is not None:
            raise self.error

    @property
    def alive(self) -> bool:
        """True until close has ended the thread."""
        return self._thread.is_alive()
