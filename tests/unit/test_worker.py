"""The queue worker behind the archive writer and the member digests."""

from __future__ import annotations

import itertools
import random
import signal
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


class _Hung(Exception):
    """Raised by the watchdog alarm in a cleanup that would never return."""


def _watchdog(_signum: int, _frame: object) -> None:
    raise _Hung()


def test_an_interrupt_at_any_point_of_put_never_hangs_the_cleanup() -> None:
    # Ctrl-C (or SIGTERM made a KeyboardInterrupt) lands at a random point of the producer.
    # Raised just after a queue.Queue's lock was taken, it left that lock held, and the
    # cleanup's close() then waited on it for ever, with the service stopped.
    rng = random.Random(23)
    main = threading.main_thread().ident
    assert main is not None
    previous = signal.signal(signal.SIGALRM, _watchdog)
    hangs = interrupted = 0
    try:
        for trial in range(80):
            worker: QueueWorker[int] = QueueWorker("t-interrupt", 1 << 20 if trial % 2 else 2,
                                                   lambda n: None)
            timer = threading.Timer(rng.uniform(0.0002, 0.002),
                                    lambda: signal.pthread_kill(main, signal.SIGINT))
            try:
                timer.start()
                for n in itertools.count():
                    worker.put(n)
            except KeyboardInterrupt:
                interrupted += 1
            timer.join()
            signal.setitimer(signal.ITIMER_REAL, 10.0)
            try:
                worker.close(raise_error=False)  # the failure path's cleanup
            except _Hung:
                hangs += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert not worker.alive
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert interrupted == 80 and hangs == 0, f"{hangs} of 80 cleanups hung"


def test_the_failure_path_does_not_wait_for_a_stuck_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from allsky_tasks.archive import worker as worker_module

    monkeypatch.setattr(worker_module, "ABANDON_WAIT", 0.2)
    began, release = threading.Event(), threading.Event()
    handled: list[int] = []

    def stuck(n: int) -> None:
        handled.append(n)
        began.set()
        release.wait()  # a write that hangs (a dead USB stick, a hung network mount)

    worker: QueueWorker[int] = QueueWorker("t-stuck", 4, stuck)
    for n in range(3):
        worker.put(n)
    assert began.wait(10)
    worker.close(raise_error=False)  # returns: the restart after it must run
    assert worker.alive and handled == [0]
    release.set()
    worker._thread.join(5)
    assert not worker._thread.is_alive() and handled == [0]  # what was still queued was dropped
