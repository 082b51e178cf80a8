"""The queue worker behind the archive writer and the member digests."""

from __future__ import annotations

import threading

import pytest

from allsky_tasks.archive.worker import QueueWorker


def test_items_are_handled_in_order_on_the_named_thread() -> None:
    seen: list[tuple[int, str]] = []
    worker: QueueWorker[int] = QueueWorker("t-order", 2, lambda n: seen.append(
        (n, threading.current_thread().name)))
    for n in range(500):  # far more than the queue holds: put waits, nothing is lost
        worker.put(n)
    worker.close()
    assert seen == [(n, "t-order") for n in range(500)] and worker.done == 500
    assert not worker.alive


def test_first_error_comes_back_and_later_items_are_only_consumed() -> None:
    handled: list[int] = []

    def handle(n: int) -> None:
        if n == 3:
            raise ValueError("item 3 is bad")
        handled.append(n)

    worker: QueueWorker[int] = QueueWorker("t-error", 4, handle)
    with pytest.raises(ValueError, match="item 3"):
        for n in range(200):
            worker.put(n)
        worker.close()
    worker.close(raise_error=False)
    assert handled == [0, 1, 2] and not worker.alive
    with pytest.raises(ValueError, match="item 3"):
        worker.close()
