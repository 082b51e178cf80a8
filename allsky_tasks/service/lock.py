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


class LockWaitExpired(LockError):
    """`--lock-wait` ran out while another run held the lock: this run skips, not fails."""


@contextmanager
def destination_lock(dest: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive flock on <dest>/.allsky-tasks.lock (released even on SIGKILL).

    With `wait` > 0, another run's lock is waited for that long, then LockWaitExpired. The lock
    file is opened without following a link and must be a regular file: a planted symlink or
    FIFO is refused (UnsafePathError), never written through.
    """
    path = dest / LOCK_NAME
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT, 0o640)
    except PermissionError as e:
        raise DestinationError(f"cannot open the lock file: {os_message(e, path)} "
                               f"(is {dest} read-only?)",
                               hint=f"make {dest} writable by the user running the backup") from None
    except OSError as e:
        raise DestinationError(f"cannot open the lock file: {os_message(e, path)}",
                               hint=f"check that {dest} is mounted and writable") from None
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
                                      f"writing to {dest} after waiting {wait:g} s",
                                      hint="this run is skipped, not failed; the next one "
                                           "catches up") from None
            raise LockError(f"another backup run (pid {holder}) is writing to {dest}",
                            hint="wait for it to finish (or use `run --lock-wait SECONDS`), "
                                 "then run again") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only for messages; the flock holds on a full disk too
        yield
    finally:
        os.close(fd)
