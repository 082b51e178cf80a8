"""Owner, group and mode of each restored member, and applying them to an open folder."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Any

from .. import install
from ..archive.members import Member, manifest_of
from .extract import Attrs

__all__ = ["Ownership", "apply_attrs"]

_MODE_TEXT = frozenset("01234567")


class Ownership:
    """Owner, group and mode of each member: from our manifest, else Allsky's permissions map."""

    def __init__(self, metadata: dict[str, Any], home: Path) -> None:
        rows = manifest_of(metadata) or []
        self.rows = {r.get("path"): r for r in rows if isinstance(r, dict)}
        perms = metadata.get("permissions")
        self.perms = perms if isinstance(perms, dict) else {}
        st = os.stat(home)
        self.home_ids = (st.st_uid, st.st_gid)  # for "ALLSKY_OWNER" and unknown names
        self.owner = install.read_owner(home)
        self.warnings: list[str] = []
        self._ids: dict[tuple[str, str], int] = {}

    def __call__(self, member: Member) -> Attrs:
        """(mode or None for a symlink, uid, gid) to give the restored member."""
        row = self.rows.get(member.path) or self.perms.get(member.path)
        row = row if isinstance(row, dict) else {}
        text = row.get("mode")
        if not (isinstance(text, str) and 3 <= len(text) <= 4 and set(text) <= _MODE_TEXT):
            text = member.mode  # none recorded, or not octal text: the archive's own
        mode = self._mode(member, int(text, 8))
        return mode, self._id(row.get("owner"), "user"), self._id(row.get("group"), "group")

    def _warn(self, text: str) -> None:
        """Each warning once."""
        if text not in self.warnings:
            self.warnings.append(text)

    def _mode(self, member: Member, mode: int) -> int | None:
        """Files lose set-ID/sticky bits; folders keep setgid and sticky; symlinks get none."""
        if member.type == "symlink":
            return None
        keep = 0o3777 if member.type == "dir" else 0o777
        if mode & ~keep & 0o7777:
            self._warn(f"{member.path}: mode {mode & 0o7777:04o} restored as "
                       f"{mode & keep:04o} (special bits are not restored on a {member.type})")
        return mode & keep

    def _id(self, name: Any, kind: str) -> int:
        """A user/group name (or ALLSKY_OWNER, or a number) as an id here; unknown: the home's."""
        fallback = self.home_ids[0 if kind == "user" else 1]
        if not isinstance(name, str) or not name:
            return fallback
        if name == "ALLSKY_OWNER":
            name = self.owner or ""
            if not name:
                return fallback
        if name.isdigit():
            return int(name)
        if (kind, name) not in self._ids:
            try:
                found = pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
            except KeyError:
                self._warn(f"{kind} {name!r} does not exist here; its files get the Allsky "
                           f"home's {kind} instead")
                found = fallback
            self._ids[(kind, name)] = found
        return self._ids[(kind, name)]


def apply_attrs(fd: int, mode: int | None, uid: int, gid: int, denied: dict[str, int]) -> None:
    """Owner then mode on an open folder (chown clears set-ID bits, so it goes first)."""
    st = os.fstat(fd)
    if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
        try:
            os.fchown(fd, uid, gid)
        except PermissionError:
            denied[f"{uid}:{gid}"] = denied.get(f"{uid}:{gid}", 0) + 1
    if mode is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)
