"""The folders a restore works in (its private staging folder, the journal's name), opened without following links."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..service.marker import pid_alive

__all__ = ["DIR_FLAGS", "JOURNAL_NAME", "STAGING_PREFIX", "DirChain", "clean_stale_staging", "staging_area",
           "sync_filesystem"]

STAGING_PREFIX = ".allsky-restore-"
JOURNAL_NAME = "restore-journal.json"  # in the state folder while files are placed; see journal.py
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def staging_area(root: Path) -> Iterator[Path]:
    """A private `<root>/.allsky-restore-<pid>/` on the targets' filesystem, removed afterwards."""
    clean_stale_staging(root)
    path = root / f"{STAGING_PREFIX}{os.getpid()}"
    os.mkdir(path, 0o700)  # never reuse one: it would hold files we did not check
    try:
        for sub in ("tree", "trash"):
            os.mkdir(path / sub, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: never follows a symlink


def sync_filesystem(path: Path) -> None:
    """Flush the filesystem holding `path` (syncfs; os.sync where libc has none)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()  # slower (every filesystem) but always there
    finally:
        os.close(fd)


def clean_stale_staging(root: Path) -> list[str]:
    """Remove staging folders of restores that were killed (their pid is gone)."""
    removed = []
    for entry in os.scandir(root):
        pid = entry.name[len(STAGING_PREFIX):]
        if entry.name.startswith(STAGING_PREFIX) and pid.isdigit() and \
                entry.is_dir(follow_symlinks=False) and not pid_alive(int(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


class DirChain:
    """Folders below a root opened one component at a time with O_NOFOLLOW; the last one cached."""

    # make(parent_fd, name, path) runs when a component is missing or not a real folder and must
    # leave a real folder there (or raise); without it such a component is an error.

    def __init__(self, root_fd: int, make: Callable[[int, str, str], None] | None = None) -> None:
        self.root, self.make = root_fd, make
        self.stack: list[tuple[str, int]] = []

    def at(self, parts: Sequence[str]) -> int:
        """The fd of the folder root/parts."""
        keep = 0
        while keep < min(len(self.stack), len(parts)) and self.stack[keep][0] == parts[keep]:
            keep += 1
        for _, fd in self.stack[keep:]:
            os.close(fd)
        del self.stack[keep:]
        fd = self.stack[-1][1] if self.stack else self.root
        for i in range(keep, len(parts)):
            fd = self._open(fd, parts[i], "/".join(parts[: i + 1]))
            self.stack.append((parts[i], fd))
        return fd

    def _open(self, parent: int, name: str, path: str) -> int:
        """Open one component, never through a symlink."""
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if self.make is None or e.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                raise
        self.make(parent, name, path)
        return os.open(name, DIR_FLAGS, dir_fd=parent)

    def close(self) -> None:
        """Close every cached fd (the root stays the caller's)."""
        self.at(())
