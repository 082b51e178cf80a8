"""What a restore would write: the members of the chosen sections, folders or --files patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..archive.member_names import CONFIG_ROOTS
from ..archive.members import Member
from ..archive.metadata import NAMESPACE
from ..spec.sections import SECTIONS

__all__ = ["EXTRA", "Selection", "claimed_areas", "declared_sections", "section_of", "select"]

EXTRA = "include"  # members no section claims (a spec's `include:` globs)


@dataclass
class Selection:
    """The members a restore would write, and what the operator chose."""

    kind: str  # config | images
    mode: str  # normal | advanced
    available: list[str]  # sections or folders the archive offers
    chosen: list[str]  # sections, folders, or the --files patterns
    members: list[Member] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def paths(self) -> set[str]:
        """Every selected member path."""
        return {m.path for m in self.members}

    @property
    def files(self) -> list[Member]:
        """Selected files and symlinks."""
        return [m for m in self.members if m.type != "dir"]

    @property
    def bytes(self) -> int:
        """Bytes of file data to write."""
        return sum(m.size for m in self.members if m.type == "file")


def _under(path: str, root: str | None) -> bool:
    """path is root or below it."""
    return bool(root) and (path == root or path.startswith(f"{root}/"))


def _glob(path: str, pattern: str) -> bool:
    """A section glob: one path component per pattern component."""
    a, b = path.split("/"), pattern.split("/")
    return len(a) == len(b) and all(fnmatch.fnmatchcase(x, y) for x, y in zip(a, b, strict=True))


def section_of(path: str, metadata: dict[str, Any]) -> str:
    """The first section of the table that claims a member path (EXTRA if none)."""
    names = {"{settingsfile}": metadata.get("settingsfile"), "{ccfile}": metadata.get("ccfile")}
    for section in SECTIONS:
        roots = [names.get(p, p) for p in section.paths]
        claimed = any(_under(path, r) for r in roots if isinstance(r, str)) or \
            any(_glob(path, g) for g in section.globs)
        if claimed and not any(_under(path, e) for e in section.exclude):
            return section.key
    return EXTRA


def declared_sections(metadata: dict[str, Any]) -> list[str]:
    """The sections the metadata says are in the archive (ours, else Allsky's fields)."""
    ours = metadata.get(NAMESPACE)
    keys = ours.get("sections") if isinstance(ours, dict) else None
    if not isinstance(keys, list):
        included = metadata.get("includedSections")
        keys = ["core"] + [s.get("key") for s in included if isinstance(s, dict)] \
            if isinstance(included, list) else ["core"]
        optional = metadata.get("includedOptionalTargets")
        keys += optional if isinstance(optional, list) else []
    return list(dict.fromkeys(k for k in keys if isinstance(k, str)))


def _picked(path: str, pattern: str) -> bool:
    """An advanced-mode pattern matches the path or one of its folders."""
    pattern = pattern.removeprefix("./").rstrip("/")
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def _folder(member: Member) -> str | None:
    """The night folder of an images member (None for a loose file in images/)."""
    parts = member.path.split("/")
    return parts[1] if len(parts) > 2 or member.type == "dir" and len(parts) == 2 else None


def select(metadata: dict[str, Any], entries: list[Member], sections: Iterable[str] = (),
           folders: Iterable[str] = (), files: Iterable[str] = ()) -> Selection:
    """Members for --sections / --folders (normal mode; default: all) or --files (advanced)."""
    kind = "images" if metadata.get("backupType") == "images" else "config"
    members = [m for m in entries if m.path != "images"]  # the images root is never replaced
    sections, folders, files = list(sections), list(folders), list(files)
    if files:
        sel = Selection(kind, "advanced", sorted(m.path for m in members if m.type != "dir"),
                        files, [m for m in members if any(_picked(m.path, p) for p in files)])
        sel.problems += [f"--files {p!r} matches nothing in this backup" for p in files
                         if not any(_picked(m.path, p) for m in members)]
        if sections or folders:
            sel.problems.append("--files cannot be combined with --sections or --folders")
        return sel
    if kind == "config":
        available = declared_sections(metadata)
        if any(section_of(m.path, metadata) == EXTRA for m in members):
            available.append(EXTRA)
        sel = Selection(kind, "normal", available, sections or available)
        sel.members = [m for m in members if section_of(m.path, metadata) in sel.chosen]
        wrong, what = sections, "section"
        if folders:
            sel.problems.append("--folders is for images backups; this is a config backup")
    else:
        available = sorted({f for m in members if (f := _folder(m))})
        sel = Selection(kind, "normal", available, folders or available)
        # Loose files directly in images/ come along only when no folder is named.
        sel.members = [m for m in members
                       if (_folder(m) in sel.chosen if _folder(m) else not folders)]
        wrong, what = folders, "folder"
        if sections:
            sel.problems.append("--sections is for config backups; this is an images backup")
    sel.problems += [f"{what} {w!r} is not in this backup (it has: {', '.join(available)})"
                     for w in wrong if w not in available]
    return sel


def claimed_areas(metadata: dict[str, Any]) -> tuple[str, ...]:
    """Where members may lie: config roots, or the images targets the metadata claims."""
    if metadata.get("backupType") != "images":
        return CONFIG_ROOTS
    targets = metadata.get("imageTargets")
    if not isinstance(targets, list) or "images" in targets or not all(
            isinstance(t, str) and t.startswith("images/") for t in targets) or not targets:
        return ("images",)  # safety.validate_archive already refused anything else
    return tuple(targets)
