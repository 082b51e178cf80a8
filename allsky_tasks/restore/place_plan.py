"""The dry run's plan: what placing the members would do to the live tree, with nothing written."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..archive.members import Member
from .place import Placer

__all__ = ["plan"]

# (mode or None, uid, gid) a restore gives a member (restore/ownership.py); -1 leaves an id.
AttrsFor = Callable[[Member], tuple[int | None, int, int]]


def _live_state(root: Path, parts: list[str]) -> str:
    """missing | dir | file | symlink at root/parts, never following."""
    # Below an ancestor that is not a folder everything is missing: it is replaced by a folder.
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return "missing"
        if not stat.S_ISDIR(mode):
            return "missing" if i < len(parts) - 1 else \
                "symlink" if stat.S_ISLNK(mode) else "file"
    return "dir"


def _same_attrs(st: os.stat_result, m: Member, attrs: AttrsFor | None) -> bool:
    """The live file already has the mode (and, for root, the owner) the restore would give it."""
    if attrs is None:
        return True
    mode, uid, gid = attrs(m)
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        return False
    if os.geteuid() != 0:  # only root can change owners: a restore by the user leaves them
        return True
    return uid in (-1, st.st_uid) and gid in (-1, st.st_gid)


def _same_as_live(m: Member, live: Path, state: str, attrs: AttrsFor | None = None,
                  data: Member | None = None) -> bool:
    """The live file already is this member: same SHA-256 (or link target) and the same mode.

    `data` is the member whose bytes it holds (a hard link's target; else itself)."""
    import hashlib

    if state == "symlink" and m.type == "symlink":
        try:
            return os.readlink(live) == m.linkname
        except OSError:
            return False
    data = data or m
    if state != "file" or m.type not in ("file", "hardlink") or data.type != "file" \
            or not data.sha256:
        return False
    try:
        fd = os.open(live, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != data.size:
            return False
        if not _same_attrs(st, data, attrs):  # a hard link has its target's mode
            return False
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == data.sha256


def plan(members: list[Member], roots: dict[str, Path], attrs: AttrsFor | None = None,
         everything: dict[str, Member] | None = None) -> list[tuple[str, str, int]]:
    """What place() would do: (create | replace | unchanged | merge | keep, path, size).

    unchanged: the live file already has the member's bytes and the mode the restore would
    give it (`attrs`), so restoring it changes nothing; a mode alone that differs is a
    replace. `everything` (every member by path) gives a hard link its target's bytes.
    Nothing is written."""
    # keep: a file in a restored folder that the backup does not have (restores never delete).
    rows, chosen = [], {m.path for m in members}
    for m in sorted(members, key=lambda m: m.path.split("/")):
        key, parts = Placer.target(m.path)
        if not parts:
            continue
        state = _live_state(roots[key], parts)
        action = "create" if state == "missing" else \
            "merge" if state == "dir" and m.type == "dir" else "replace"
        data = (everything or {}).get(m.linkname) if m.type == "hardlink" else m
        if action == "replace" and _same_as_live(m, roots[key].joinpath(*parts), state, attrs,
                                                 data):
            action = "unchanged"
        rows.append((action, m.path, data.size if data is not None else m.size))
        if action == "merge" and m.path.rsplit("/", 1)[0] not in chosen:  # a top folder
            for dirpath, dirs, files in os.walk(roots[key].joinpath(*parts)):
                for name in sorted(dirs + files):
                    st = os.lstat(Path(dirpath, name))
                    rel = Path(dirpath, name).relative_to(roots[key]).as_posix()
                    rel = f"images/{rel}" if key == "images" else rel
                    if rel not in chosen and not stat.S_ISDIR(st.st_mode):
                        rows.append(("keep", rel, st.st_size))
    return rows
