"""Extract: selected members of an untrusted archive into a private staging folder."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.member_names import FILE_ROOTS, hard_link_problem, path_problem, resolve_link
from ..archive.members import Member, member_of
from ..archive.safety import ArchiveRejected, Limits
from ..archive.verify import CORRUPT
from .dirs import DIR_FLAGS, STAGING_PREFIX, DirChain
from .tar_stream import open_tar, read_member

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
_REFUSED = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
            tarfile.FIFOTYPE: "a FIFO"}
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# (mode or None to leave it, uid, gid) for one member; -1 leaves an id as it is.
Attrs = tuple[int | None, int, int]
AttrsFor = Callable[[Member], Attrs]


def in_areas(path: str, areas: Iterable[str]) -> bool:
    """True if path is one of the area roots or below one (file roots have nothing below)."""
    return any(path == r or path.startswith(r + "/") and r not in FILE_ROOTS for r in areas)


@dataclass
class Extracted:
    """What was written into staging, in archive order."""

    written: list[Member] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        """Paths of the files and symlinks written."""
        return [m.path for m in self.written if m.type != "dir"]


class _Stager:
    """Checks each member again and writes the selected ones below `tree`."""

    def __init__(self, archive: Path, tree_fd: int, areas: tuple[str, ...],
                 selected: Callable[[str], bool], attrs: AttrsFor,
                 expected: dict[str, Member] | None, limits: Limits) -> None:
        self.archive, self.areas, self.selected, self.attrs = archive, areas, selected, attrs
        self.expected, self.limits = expected, limits
        self.chain = DirChain(tree_fd, lambda fd, name, _p: os.mkdir(name, 0o700, dir_fd=fd))
        self.types: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.parents: set[str] = set()
        self.result = Extracted()
        self.denied: dict[tuple[int, int], int] = {}
        # Files staged only as the data of a selected hard link (placed under its name alone).
        self.link_targets = {m.linkname for m in (expected or {}).values()
                             if m.type == "hardlink" and selected(m.path)}

    def reject(self, problem: str, member: str | None) -> None:
        """Stop the extraction: the archive is not what it must be."""
        raise ArchiveRejected(self.archive, problem, member)

    def check(self, info: tarfile.TarInfo) -> tuple[str, str]:
        """The import rules, again: (name, kind) or a rejection."""
        name = info.name
        problem = path_problem(name)
        if problem:
            self.reject(problem, name)
        key = name.rstrip("/")
        if any(p.startswith(STAGING_PREFIX) for p in key.split("/")):
            self.reject("a name reserved for restore staging", name)
        if info.type not in _KINDS:
            self.reject(f"{_REFUSED.get(info.type, f'member type {info.type!r}')} is not allowed",
                        name)
        kind = _KINDS[info.type]
        # The images folder itself may sit above claimed night folders, as safety allows.
        above = key == "images" and any(a.split("/")[0] == "images" for a in self.areas)
        if key != "metadata.json" and not above and not in_areas(key, self.areas):
            self.reject(f"outside the areas this backup may hold ({', '.join(self.areas)})", key)
        if key in self.types:
            self.reject("duplicate member name", key)
        if len(self.types) >= self.limits.max_members:
            self.reject(f"more than {self.limits.max_members} members (limit)", key)
        ancestors = ["/".join(key.split("/")[:i]) for i in range(1, key.count("/") + 1)]
        for parent in ancestors:
            if self.types.get(parent, "dir") != "dir":
                self.reject(f"below {parent!r}, which is a {self.types[parent]}", key)
        if kind != "dir" and key in self.parents:
            self.reject(f"a {kind} where earlier members have a folder", key)
        if kind == "hardlink":  # an earlier regular file of this archive, as GNU tar writes them
            problem = hard_link_problem(info.linkname, self.types) or (
                f"a hard link with {info.size} bytes of data" if info.size else None)
            if problem:
                self.reject(problem, key)
        if kind != "dir" and info.mode & 0o4000 or kind in ("file", "hardlink") and info.mode & 0o2000:
            self.reject(f"set-user/group-ID mode {info.mode & 0o7777:04o}", key)
        if kind == "symlink":
            target = info.linkname
            up = posixpath.normpath(posixpath.join(posixpath.dirname(key), target or "."))
            if not target or target.startswith("/") or _CONTROL.search(target) or \
                    up.startswith(".."):
                self.reject(f"symlink to {target!r} points outside the archive", key)
            self.links[key] = target
        self.types[key] = kind
        self.parents.update(ancestors)
        return key, kind

    def compare(self, member: Member) -> None:
        """Each member must be the one the checks saw (the file may have been swapped)."""
        if self.expected is None:
            return
        want = self.expected.get(member.path)
        if want is None or (want.type, want.size, want.mode, want.mtime, want.linkname) != (
                member.type, member.size, member.mode, member.mtime, member.linkname):
            self.reject("differs from the archive that was checked (changed since?)",
                        member.path)

    def write(self, tar: tarfile.TarFile, info: tarfile.TarInfo, member: Member,
              placed: bool = True) -> None:
        """Create the member below the tree: never following, never overwriting.

        placed=False stages a file only as the data of a selected hard link to it.
        """
        parts = member.path.split("/")
        if member.type == "hardlink":
            return self.link(member, parts)
        parent, name = self.chain.at(parts[:-1]), parts[-1]
        mode, uid, gid = self.attrs(member)
        ns = member.time_ns
        if member.type == "dir":
            try:
                os.mkdir(name, 0o700, dir_fd=parent)  # modes are set once it is in place
            except FileExistsError:  # made earlier as the parent of a member listed before it
                if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                    self.reject("folder clashes with an earlier member", member.path)
        elif member.type == "symlink":
            os.symlink(member.linkname, name, dir_fd=parent)
            self.own(lambda u, g: os.chown(name, u, g, dir_fd=parent, follow_symlinks=False),
                     os.stat(name, dir_fd=parent, follow_symlinks=False), uid, gid)
            os.utime(name, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
        else:
            member.sha256 = self.copy(tar, info, name, parent, mode, uid, gid, ns)
            want = self.expected.get(member.path) if self.expected is not None else None
            if want is not None and want.sha256 != member.sha256:
                self.reject("content does not match the manifest / the checked archive "
                            f"(SHA-256 {member.sha256})", member.path)
        if placed:
            self.result.written.append(member)

    def link(self, member: Member, parts: list[str]) -> None:
        """A hard link: a second name for the staged target (its data, owner and mode)."""
        target = member.linkname.split("/")
        try:
            source = os.dup(self.chain.at(target[:-1]))
        except FileNotFoundError:
            source = -1
        try:
            if source < 0 or not stat.S_ISREG(os.stat(target[-1], dir_fd=source,
                                                      follow_symlinks=False).st_mode):
                raise FileNotFoundError(member.linkname)
            os.link(target[-1], parts[-1], src_dir_fd=source, dst_dir_fd=self.chain.at(parts[:-1]),
                    follow_symlinks=False)
        except FileNotFoundError:
            self.reject(f"hard link to {member.linkname!r}, which was not staged", member.path)
        finally:
            if source >= 0:
                os.close(source)
        self.result.written.append(member)

    def copy(self, tar: tarfile.TarFile, info: tarfile.TarInfo, name: str, parent: int,
             mode: int | None, uid: int, gid: int, ns: int) -> str:
        """Stream a file member into a new file; owner, mode and time set on the open file."""
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            source = tar.extractfile(info)
            assert source is not None
            while chunk := read_member(source, self.archive, info.name):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            self.own(lambda u, g: os.fchown(fd, u, g), os.fstat(fd), uid, gid)
            if mode is not None:
                os.fchmod(fd, mode)  # after chown, which clears set-ID bits
            os.utime(fd, ns=(ns, ns))
        return digest.hexdigest()

    def own(self, chown: Callable[[int, int], Any], st: os.stat_result, uid: int, gid: int
            ) -> None:
        """Change owner/group if they differ; a refusal is counted, not fatal."""
        if (uid in (-1, st.st_uid)) and (gid in (-1, st.st_gid)):
            return
        try:
            chown(uid, gid)
        except PermissionError:
            self.denied[(uid, gid)] = self.denied.get((uid, gid), 0) + 1

    def finish(self) -> None:
        """With every link known, each must lead inside the areas, through other links too."""
        for key, target in self.links.items():
            end = resolve_link(key, target, self.links)
            if end is None or not in_areas(end, self.areas):
                self.reject(f"symlink to {target!r} leads outside the backup's areas", key)
        self.result.warnings += [f"could not set owner {u}:{g} on {n} path(s): not permitted"
                                 for (u, g), n in self.denied.items()]


def extract(archive: Path, tree: Path, areas: tuple[str, ...], selected: Callable[[str], bool],
            attrs: AttrsFor, expected: dict[str, Member] | None = None,
            limits: Limits = Limits(), max_bytes: int | None = None) -> Extracted:
    """Write the selected members below `tree` (an empty private folder), checking every member."""
    # Every member must lie in `areas`; with `expected` (path -> Member from the checked read or
    # the manifest) each must match it, file contents by SHA-256, and every selected one must come.
    tree_fd = os.open(tree, DIR_FLAGS)
    stager = _Stager(archive, tree_fd, areas, selected, attrs, expected, limits)
    try:
        with open_tar(archive, limits, max_bytes) as tar:
            while True:
                try:
                    info = tar.next()
                except CORRUPT as e:
                    raise ArchiveRejected(archive, f"damaged or truncated: {e}") from e
                if info is None:
                    break
                key, kind = stager.check(info)
                if key == "metadata.json":
                    continue  # only the root one: a metadata.json deeper down is a normal file
                member = member_of(info, None)
                stager.compare(member)
                if stager.selected(key):
                    stager.write(tar, info, member)
                elif key in stager.link_targets and kind == "file":
                    stager.write(tar, info, member, placed=False)
                tar.members.clear()  # type: ignore[attr-defined]  # not in the stub; stream mode never looks back
        stager.finish()
    finally:
        stager.chain.close()
        os.close(tree_fd)
    if expected is not None:
        missing = sorted(p for p in expected if selected(p) and p not in stager.types)
        if missing:
            raise ArchiveRejected(archive, "checked member missing on the second read "
                                  "(archive changed since?)", missing[0])
    return stager.result
