"""Signal handling around a pause: deferring signals, the max_pause alarm, signals as interrupts."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import PackError

__all__ = ["interrupt_once", "pause_deadline", "signals_as_interrupt", "signals_deferred"]

# Signals that must not cut a restart short (a second Ctrl-C, systemd's stop, a closed terminal).
_DEFERRED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM/SIGHUP instead of acting on them, so a restart is never cut short."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {sig: signal.signal(sig, lambda signum, _f: caught.append(signum)) for sig in _DEFERRED}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def interrupt_once() -> Iterator[list[int]]:
    """While the service is paused: the first SIGINT/SIGTERM/SIGHUP interrupts, later ones wait.

    The first becomes KeyboardInterrupt, as ever; one more (an impatient second Ctrl-C,
    systemd's SIGTERM after it) is only recorded, so it cannot cut short the cleanup and
    the restart the first one set going. Every wait on that path is bounded. A signal that
    is ignored (SIGHUP under nohup) stays ignored.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    fired = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal fired
        if fired:
            caught.append(signum)
            return
        fired = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in _DEFERRED
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextmanager
def pause_deadline(seconds: float, unit: str) -> Iterator[None]:
    """Fail the body with PackError once the service has been stopped for `seconds`.

    A real-time alarm interrupts even a blocked read, so a pack that never finishes cannot
    keep the service stopped; the caller's paused_service then starts it again.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(_signum: int, _frame: object) -> None:
        raise PackError(f"service {unit} was stopped for {seconds:g} s, the spec's service.max_pause; "
                        "pack gave up and no archive was kept",
                        hint="raise service.max_pause, or select less while the service is paused")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _redeliver(fallback: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable hook that sends an interrupt swallowed by a finalizer again.

    A signal handler raises in whatever frame runs: inside a weakref callback or `__del__`,
    Python only prints the KeyboardInterrupt and goes on, so the Ctrl-C would be lost (and a
    traceback printed). The same signal is sent again, to arrive in the code that follows.
    """
    def hook(args: Any) -> None:
        exc = args.exc_value
        if not isinstance(exc, KeyboardInterrupt):
            fallback(args)
            return
        name = str(exc).removeprefix("received ")
        sig = getattr(signal, name, signal.SIGINT) if name.startswith("SIG") else signal.SIGINT
        # From another thread, a moment later: sent from here, the handler would raise inside
        # this hook and be swallowed again. Should it land in a finalizer again, this repeats.
        resend = threading.Timer(0.005, os.kill, (os.getpid(), sig))
        resend.daemon = True
        resend.start()
    return hook


@contextmanager
def signals_as_interrupt() -> Iterator[list[int]]:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt in the main thread, so finally-blocks
    run; yields the signals received, so a caller can tell an interrupt from a crash it caused."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum: int, _frame: object) -> None:
        received.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt)}
    # Under nohup SIGHUP is ignored on purpose: the user wants the run to outlive the terminal.
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, interrupt)
    # A process launched in the background by a non-interactive shell (cron, `cmd &`) inherits
    # SIGINT as ignored, and Python keeps SIG_IGN: `kill -INT` would then do nothing at all.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    hook = sys.unraisablehook
    sys.unraisablehook = _redeliver(hook)
    try:
        yield received
    finally:
        sys.unraisablehook = hook
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
