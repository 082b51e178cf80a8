"""A copy target on a mounted disk or network mount: a folder, with fsync and rename."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..environment import expand
from ..errors import CopyError, DestinationError
from .mounts import require_mounted
from .target import Progress, RemoteFile, listed_name_ok

CHUNK = 1 << 20
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def hidden_name(name: str) -> str:
    """The temporary name a copy is written under (hidden, so listings never show it)."""
    return f".{name}.part"


class PathTarget:
    """`path: /media/usb/allsky-copies`: copies written into a folder, fsynced and renamed."""

    def __init__(self, item: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        self.name = str(item["name"])
        self.folder = expand(str(item["path"])).absolute()
        self.mounted = item.get("must_be_mounted")
        self.home = Path(context.get("home") or "/")

    def describe(self) -> str:
        """`usb (/media/usb/allsky-copies)`."""
        return f"{self.name} ({self.folder})"

    def _error(self, what: str, exc: OSError | None = None) -> CopyError:
        reason = f": {exc.strerror or exc}" if exc is not None else ""
        hint = ("the disk is full: free space there or lower keep_last"
                if exc is not None and exc.errno == errno.ENOSPC else None)
        return CopyError(f"copy target {self.describe()}: {what}{reason}", hint=hint)

    def check_ready(self) -> None:
        """Mounted when it must be; the folder exists (created on the mounted disk) and is writable."""
        try:
            require_mounted(self.folder, self.home, f"copy target {self.name}:", self.mounted)
        except DestinationError as e:
            raise CopyError(e.message, hint=e.hint) from None
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o750)
            st = os.lstat(self.folder)
        except OSError as e:
            raise self._error("cannot create the folder", e) from e
        if not stat.S_ISDIR(st.st_mode):
            raise self._error("is not a folder (or is a symbolic link)")
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise self._error("the folder is not writable")

    def list_files(self) -> list[RemoteFile]:
        """Regular files in the folder (links and folders are never ours)."""
        out = []
        try:
            with os.scandir(self.folder) as it:
                for entry in it:
                    if entry.is_file(follow_symlinks=False) and listed_name_ok(entry.name):
                        out.append(RemoteFile(entry.name, entry.stat(follow_symlinks=False).st_size))
        except OSError as e:
            raise self._error("cannot list the folder", e) from e
        return out

    def _open_existing(self, name: str) -> int | None:
        try:
            return os.open(self.folder / name, os.O_RDWR | NOFOLLOW)
        except FileNotFoundError:
            return None

    def put_hidden(self, local: BinaryIO, size: int, name: str, progress: Progress) -> str:
        """Write to `.name.part`, resuming a partial whose bytes match the local ones; fsync."""
        hidden = hidden_name(name)
        path = self.folder / hidden
        try:
            fd = self._open_existing(hidden)
            start = 0
            if fd is not None:
                start = _matching_prefix(fd, local, size)
                os.ftruncate(fd, start)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o640)
            try:
                if start:
                    progress(start)
                local.seek(start)
                os.lseek(fd, start, os.SEEK_SET)
                while True:
                    chunk = local.read(CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    progress(len(chunk))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                self.delete(hidden)  # a full disk: leave nothing behind
            raise self._error(f"writing {hidden}", e) from e
        return hidden

    def publish(self, hidden: str, name: str) -> None:
        """Rename into place and make the rename durable."""
        try:
            os.replace(self.folder / hidden, self.folder / name)
            dfd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise self._error(f"renaming {hidden} to {name}", e) from e

    def put(self, local: BinaryIO, size: int, name: str, progress: Progress) -> None:
        """The plain protocol: hidden name, durable, renamed."""
        self.publish(self.put_hidden(local, size, name, progress), name)

    def remote_sha256(self, name: str) -> str | None:
        """None: the stage reads a local copy back itself (that is the check)."""
        return None

    def open_read(self, name: str) -> BinaryIO:
        """Open a stored file (never through a link)."""
        try:
            fd = os.open(self.folder / name, os.O_RDONLY | NOFOLLOW)
        except OSError as e:
            raise self._error(f"cannot open {name}", e) from e
        with contextlib.suppress(OSError, AttributeError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read the disk, not the cache
        return os.fdopen(fd, "rb", buffering=0)

    def delete(self, name: str) -> None:
        """Remove one file (missing is fine)."""
        try:
            os.unlink(self.folder / name)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise self._error(f"cannot delete {name}", e) from e


def _matching_prefix(fd: int, local: BinaryIO, size: int) -> int:
    """How many bytes of a partial copy can be kept: all of it if they equal the local start."""
    have = os.fstat(fd).st_size
    if have == 0 or have > size:
        return 0
    ours, theirs = hashlib.sha256(), hashlib.sha256()
    local.seek(0)
    left, offset = have, 0
    while left:
        n = min(CHUNK, left)
        chunk = local.read(n)
        ours.update(chunk)
        theirs.update(os.pread(fd, n, offset))
        offset += n
        left -= n
    return have if ours.digest() == theirs.digest() else 0
