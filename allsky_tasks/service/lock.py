"""A per-destination lock so two runs never pack into the same folder at once."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import DestinationError, LockError
from ..safefs import open_regular

LOCK_NAME = ".allsky-tasks.lock"


@contextmanager
def destination_lock(dest: Path) -> Iterator[None]:
    """Hold an exclusive flock on <dest>/.allsky-tasks.lock (released even on SIGKILL).

    The lock file is opened without following a link and must be a regular file of the running
    user or not: a planted symlink or FIFO is refused (UnsafePathError), never written through.
    """
    path = dest / LOCK_NAME
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT, 0o640)
    except PermissionError as e:
        raise DestinationError(f"cannot open the lock file {path}: {e.strerror} "
                               f"(is {dest} read-only?)",
                               hint=f"make {dest} writable by the user running the backup") from None
    except OSError as e:
        raise DestinationError(f"cannot open the lock file {path}: {e.strerror}",
                               hint=f"check that {dest} is mounted and writable") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockError(f"another backup run (pid {holder}) is writing to {dest}",
                            hint="wait for it to finish, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
