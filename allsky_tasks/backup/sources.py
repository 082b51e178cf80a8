"""Reading source files for pack: no links, no blocking opens, proof a small file did not change."""

from __future__ import annotations

import grp
import os
import pwd
from functools import lru_cache
from typing import Any

SMALL = 8 << 20  # files up to this size are read whole, so a change can be retried
RETRIES = 3
# Sources: never through a link swapped in since the scan, never blocking on a FIFO or device.
SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
SQLITE_MAGIC = b"SQLite format 3\x00"


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """User name for a uid, or the number as text."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=256)
def group_name(gid: int) -> str:
    """Group name for a gid, or the number as text."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class Changed(Exception):
    """A file changed while it was read."""


def read_whole(fd: int, st: os.stat_result) -> bytes:
    """Read a small file and prove it did not change while read."""
    parts, total = [], 0
    while True:
        chunk = os.read(fd, max(st.st_size + 1 - total, 65536))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    after = os.fstat(fd)
    if total != st.st_size or after.st_size != st.st_size or \
            after.st_mtime_ns != st.st_mtime_ns:
        raise Changed()
    return b"".join(parts)


def link_target(source: str) -> dict[str, Any] | None:
    """Mode and owner of what a link points at, as Allsky's PHP (fileperms, fileowner) reads them.

    Allsky's restore runs chmod/chown through links, so its permissions map must hold the
    target's mode, never the link's own 0777. A dangling or looping link has none (PHP gets
    false and leaves the path out; a chmod through it would fail Allsky's whole restore).
    """
    try:
        st = os.stat(source)  # follows the link: only its metadata is read, nothing is opened
    except (OSError, ValueError):
        return None
    return {"mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid,
            "owner": user_name(st.st_uid), "group": group_name(st.st_gid)}
