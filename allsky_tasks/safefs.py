"""Files in the backup and state folders, opened without following links (they may be a shared USB stick).

Every file the tool creates, rewrites or trusts there goes through these helpers: a symlink,
FIFO, device or folder where a file should be is refused with UnsafePathError naming it,
never followed, never blocked on.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UnsafePathError

NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _refuse(path: Path, why: str) -> UnsafePathError:
    return UnsafePathError(f"{path}: {why}; not opened",
                           hint="remove or rename it; the tool never follows links in its folders")


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o640) -> int:
    """Open a regular file without following a link or blocking; return the descriptor."""
    try:
        fd = os.open(path, flags | NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == 40 or (path.is_symlink()):  # ELOOP: the last component is a link
            raise _refuse(path, "is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, f"is not a regular file ({stat.filemode(st.st_mode)})")
        if flags & os.O_NONBLOCK == 0:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path, limit: int = 64 << 20) -> bytes:
    """Read a small regular file whole (never through a link), refusing one over `limit` bytes."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise _refuse(path, f"is {size} bytes, more than the {limit} expected")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise _refuse(path, f"grew past the {limit} bytes expected")
        return data
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_dir(path: Path) -> None:
    """Refuse a folder of ours that is a symlink or not a folder."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "is a symbolic link, not a folder")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "is not a folder")


@contextmanager
def atomic_writer(path: Path, mode: int = 0o640) -> Iterator[int]:
    """Yield a descriptor on a hidden temp name; fsync and rename over `path` when the block ends.

    The temp name is created O_EXCL|O_NOFOLLOW, so a planted link there is refused, and the
    final rename replaces a link at `path` instead of writing through it.
    """
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    with _suppress_missing():
        if stat.S_ISREG(os.lstat(tmp).st_mode) or os.path.islink(tmp):
            os.unlink(tmp)  # a leftover of a killed run with our pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
    try:
        os.set_blocking(fd, True)
        os.fchmod(fd, mode)
        yield fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with _suppress_missing():
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Write a small file via a hidden temp name (never through a link), fsync and rename."""
    with atomic_writer(path, mode) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


@contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass
