"""A per-destination lock so two runs never pack into the same folder at once."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import LockError

LOCK_NAME = ".allsky-tasks.lock"


@contextmanager
def destination_lock(dest: Path) -> Iterator[None]:
    """Hold an exclusive flock on <dest>/.allsky-tasks.lock (released even on SIGKILL)."""
    path = dest / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
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
