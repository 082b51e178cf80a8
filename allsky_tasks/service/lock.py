"""A per-destination lock so two runs never pack into the same folder at once."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DestinationError, LockError, os_message
from ..safefs import open_regular

LOCK_NAME = ".allsky-tasks.lock"
# The lock files this process holds now, by (device, inode): the service marker records them,
# and asking one of them from here must not mistake our own hold for another run's.
_HELD: dict[tuple[int, int], str] = {}


class LockWaitExpired(LockError):
    """`--lock-wait` ran out while another run held the lock: this run skips, not fails."""


def _take(path: Path, folder: Path, wait: float, what: str) -> int:
    """An open descriptor holding an exclusive flock on `path`, or LockError/LockWaitExpired."""
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT, 0o640)
    except PermissionError as e:
        raise DestinationError(f"cannot open the lock file: {os_message(e, path)} "
                               f"(is {folder} read-only?)",
                               hint=f"make {folder} writable by the user running the backup") from None
    except OSError as e:
        raise DestinationError(f"cannot open the lock file: {os_message(e, path)}",
                               hint=f"check that {folder} is mounted and writable") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                    continue
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            if wait > 0:
                raise LockWaitExpired(f"skipped: another backup run (pid {holder}) was still "
                                      f"{what} {folder} after waiting {wait:g} s",
                                      hint="this run is skipped, not failed; the next one "
                                           "catches up") from None
            raise LockError(f"another backup run (pid {holder}) is {what} {folder}",
                            hint="wait for it to finish (or use `run --lock-wait SECONDS`), "
                                 "then run again") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only for messages; the flock holds on a full disk too
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def destination_lock(dest: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive flock on <dest>/.allsky-tasks.lock (released even on SIGKILL).

    With `wait` > 0, another run's lock is waited for that long, then LockWaitExpired. The lock
    file is opened without following a link and must be a regular file: a planted symlink or
    FIFO is refused (UnsafePathError), never written through.
    """
    path = dest / LOCK_NAME
    fd = _take(path, dest, wait, "writing to")
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        _HELD[key] = str(path.absolute())
        try:
            yield
        finally:
            _HELD.pop(key, None)
    finally:
        os.close(fd)


def held_locks() -> list[str]:
    """The destination locks this process holds (absolute paths)."""
    return sorted(_HELD.values())


def lock_holder(path: Path) -> str:
    """Who holds the destination lock at `path`: "free", "this process" or "another process".

    Asked with a shared, non-blocking flock on a descriptor of its own, dropped at once (a
    run wanting the lock in that instant is told another run holds it, and may retry). The
    file is never created, followed through a link or written; one that is not a regular
    file holds no lock of ours.
    """
    if path.name != LOCK_NAME:
        return "free"  # not a lock of ours: it cannot tell whether a run is active
    try:
        fd = open_regular(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # missing, a link, a FIFO: no run holds a lock there
        return "free"
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) in _HELD:
            return "this process"
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "free"
    finally:
        os.close(fd)


RUN_LOCK_NAME = "run.lock"
_RUN_HELD: dict[str, int] = {}  # state folder -> the descriptor holding its run lock


def hold_run_lock(state_dir: Path, wait: float = 0.0) -> None:
    """Lock the state folder for the rest of this process, before any state is touched.

    A second run then stops cleanly (LockError, or a skip with `wait`) instead of racing the
    first one over its scan and state files. Held until the process exits; taken once.
    """
    from ..safefs import make_dir

    key = str(state_dir)
    if key not in _RUN_HELD:
        make_dir(state_dir)  # a link planted as the state folder is refused, not followed
        _RUN_HELD[key] = _take(state_dir / RUN_LOCK_NAME, state_dir, wait, "using the state folder")


def release_run_locks() -> None:
    """Drop every run lock this process holds (the end of an in-process `run`)."""
    while _RUN_HELD:
        os.close(_RUN_HELD.popitem()[1])
