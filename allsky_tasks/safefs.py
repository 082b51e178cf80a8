"""Files in the backup and state folders, opened without following links (they may be a shared USB stick).

Every file the tool creates, rewrites or trusts there goes through these helpers: a symlink,
FIFO, device or folder where a file should be is refused with UnsafePathError naming it,
never followed, never blocked on.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from .errors import UnsafePathError

NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _refuse(path: Path, why: str) -> UnsafePathError:
    return UnsafePathError(f"{path}: {why}; not opened",
                           hint="remove or rename it; the tool never follows links in its folders")


# Run as root for the Allsky user (`sudo -E allsky-tasks run`): files that user owns count as
# ours too. Root runs that user's specs (and their service commands) anyway; see trust_owner_of.
TRUSTED_UIDS: set[int] = set()


def trust_owner_of(home: Path) -> None:
    """As root, also trust files owned by the owner of the Allsky home (not another user's)."""
    if os.geteuid() != 0:
        return
    try:
        uid = os.stat(home).st_uid
    except OSError:
        return
    if uid != 0:
        TRUSTED_UIDS.add(uid)


def check_owned(path: Path, st: os.stat_result) -> None:
    """Refuse a file we are to trust that another user owns or that others may write."""
    if st.st_uid != os.geteuid() and not (os.geteuid() == 0 and st.st_uid in TRUSTED_UIDS):
        raise _refuse(path, f"is owned by uid {st.st_uid}, not by the running user (uid {os.geteuid()})")
    if st.st_mode & 0o022:
        raise _refuse(path, f"is writable by group or others ({stat.filemode(st.st_mode)})")


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o640, owned: bool = False) -> int:
    """Open a regular file without following a link or blocking; return the descriptor.

    `owned`: also refuse a file not owned by the running user or writable by others (for
    files whose content we act on, such as the service marker).
    """
    try:
        fd = os.open(path, flags | NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and path.is_symlink()):
            raise _refuse(path, "is a symbolic link") from None
        if exc.errno in (errno.ENXIO, errno.EWOULDBLOCK):  # a FIFO without a writer, a socket
            raise _refuse(path, "is not a regular file (a FIFO or socket)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, f"is not a regular file ({stat.filemode(st.st_mode)})")
        if owned:
            check_owned(path, st)
        if flags & os.O_NONBLOCK == 0:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, most: int) -> bytes:
    """Read from a descriptor until end of file or `most` bytes, whichever comes first."""
    chunks, left = [], most
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_bytes(path: Path, limit: int = 64 << 20, owned: bool = False) -> bytes:
    """Read a small regular file whole (never through a link), refusing one over `limit` bytes."""
    fd = open_regular(path, owned=owned)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise _refuse(path, f"is {size} bytes, more than the {limit} expected")
        try:
            data = read_fd(fd, limit + 1)
        except OSError as exc:
            exc.filename = exc.filename or str(path)  # an I/O error names no file
            raise
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


def make_dir(path: Path, mode: int = 0o750) -> Path:
    """Create a folder of ours (and its parents) if needed, refusing a link or non-folder there."""
    with suppress(FileExistsError):  # a dangling link or a file: check_dir names it
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    check_dir(path)
    return path


def open_file(path: Path, mode: str = "rb", encoding: str | None = None) -> IO[Any]:
    """A file object on open_regular: "rb"/"r" read, "wb"/"w" create or truncate, "ab"/"a" append."""
    flags = {"r": os.O_RDONLY, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
             "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND}[mode[0]]
    fd = open_regular(path, flags)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding=encoding or "utf-8")
    except BaseException:
        os.close(fd)
        raise


def open_source(path: Path, follow: bool = True) -> IO[bytes]:
    """A file given from outside (import FILE): links followed if `follow`, never blocking on a FIFO."""
    if not follow:
        return open_file(path, "rb")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, f"is not a regular file ({stat.filemode(st.st_mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path, limit: int = 64 << 20, owned: bool = False) -> str:
    """read_bytes decoded as UTF-8."""
    return read_bytes(path, limit, owned).decode("utf-8")


def exists(path: Path) -> bool:
    """Whether anything (a link included) is at `path`."""
    return os.path.lexists(path)


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
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        with _suppress_missing():
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a full disk's write() names no file: errors.os_message will
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
    with suppress(FileNotFoundError):
        yield
