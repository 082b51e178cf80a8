"""Members as read from an archive (Member), and their comparison with our manifest."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .metadata import NAMESPACE, full_mode
from .tar_header import mtime_ns_of

__all__ = ["Member", "StreamCompare", "compare", "compare_one", "manifest_of", "member_of"]

_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}


@dataclass
class Member:
    """One member as actually read from the archive."""

    path: str
    type: str
    size: int
    mode: str
    mtime: int
    uid: int
    gid: int
    linkname: str = ""
    sha256: str | None = None
    mtime_ns: int | None = None  # the exact time, when a PAX record states one

    @property
    def time_ns(self) -> int:
        """The time a restore sets: exact when the archive has it, else the whole seconds."""
        return self.mtime_ns if self.mtime_ns is not None else self.mtime * 1_000_000_000


def member_of(info: tarfile.TarInfo, digest: str | None) -> Member:
    """Our view of a tar header (also for the safety checks of untrusted archives)."""
    exact = mtime_ns_of(info.pax_headers.get("mtime"))  # tarfile's float rounds it
    return Member(path=info.name.rstrip("/"), type=_KINDS.get(info.type, f"type {info.type!r}"),
                  size=info.size if info.isreg() else 0, mode=full_mode(info.mode),
                  mtime=int(info.mtime) if exact is None else exact // 1_000_000_000,
                  uid=info.uid, gid=info.gid,
                  linkname=info.linkname if info.issym() or info.islnk() else "", sha256=digest,
                  mtime_ns=exact)


def manifest_of(metadata: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """Our manifest rows from a metadata document, if it has them."""
    ours = (metadata or {}).get(NAMESPACE)
    rows = ours.get("manifest") if isinstance(ours, dict) else None
    return rows if isinstance(rows, list) else None


def compare(members: list[Member], manifest: list[dict[str, Any]]) -> list[str]:
    """Every difference between what was read and the manifest, by member name."""
    problems: list[str] = []
    seen: dict[str, Member] = {}
    for m in members:
        if m.path in seen:
            problems.append(f"{m.path}: duplicate member")
        seen[m.path] = m
    expected = {row["path"]: row for row in manifest}
    for path in sorted(set(expected) - set(seen)):
        problems.append(f"{path}: missing from the archive")
    for path in sorted(set(seen) - set(expected)):
        problems.append(f"{path}: in the archive but not in the manifest")
    for path in sorted(set(seen) & set(expected)):
        problems += compare_one(seen[path], expected[path])
    return problems


def compare_one(got: Member, want: dict[str, Any]) -> list[str]:
    """Differences between one member read and its manifest row."""
    checks = [("type", got.type, want.get("type")), ("size", got.size, want.get("size", 0)),
              ("mode", got.mode, want.get("mode")), ("mtime", got.mtime, want.get("mtime"))]
    if want.get("type") == "file":
        checks.append(("sha256", got.sha256, want.get("sha256")))
    if want.get("type") == "symlink":
        checks.append(("link target", got.linkname, want.get("linkname")))
    return [f"{got.path}: {what} is {have!r}, manifest says {should!r}"
            for what, have, should in checks if have != should]


class StreamCompare:
    """Compares members with manifest rows as both stream by, in the same order."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self.rows = rows
        self.pending: dict[str, dict[str, Any]] = {}  # rows read ahead (only if out of order)
        self.problems: list[str] = []
        self.metadata: Member | None = None
        self.members = 0

    def __call__(self, member: Member) -> None:
        """Check the next member read."""
        if member.path == "metadata.json" and self.metadata is None:
            self.metadata = member
            return
        self.members += 1
        row = self.pending.pop(member.path, None)
        while row is None:
            nxt = next(self.rows, None)
            if nxt is None:
                self.problems.append(f"{member.path}: in the archive but not in the manifest"
                                     " (or a duplicate member)")
                return
            if nxt.get("path") == member.path:
                row = nxt
            else:
                self.pending[str(nxt.get("path"))] = nxt
        self.problems += compare_one(member, row)

    def finish(self) -> list[str]:
        """Problems, including manifest rows no member matched."""
        for row in self.rows:
            self.pending[str(row.get("path"))] = row
        return self.problems + [f"{path}: missing from the archive"
                                for path in sorted(self.pending)]
