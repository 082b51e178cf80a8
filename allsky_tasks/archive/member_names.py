"""Which member names and link targets an untrusted archive may hold, and where its links lead."""

from __future__ import annotations

import re

from ..spec.sections import SECTIONS

__all__ = ["CONFIG_ROOTS", "CONTROL", "FILE_ROOTS", "ancestors", "hard_link_problem", "in_area",
           "path_problem", "resolve_link"]

# Control characters but tab (real file names have tabs); surrogates are non-UTF-8 bytes.
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
# Every top-level name a config backup may hold, from the one section table.
CONFIG_ROOTS = tuple(sorted({"config"} | {p.split("/")[0] for s in SECTIONS
                                          for p in s.paths + s.globs if p[0] != "{"}))
FILE_ROOTS = ("env.json", "metadata.json")  # never folders


def path_problem(name: str) -> str | None:
    """Why a member or metadata path is unsafe, or None."""
    if not name or CONTROL.search(name):
        return "empty name, or a NUL, control character or non-UTF-8 byte in it"
    parts = name.removesuffix("/").split("/")
    for bad, why in (("/", "absolute path"), ("..", "'..' in the path"),
                     (".", "'.' in the path (e.g. a ./ prefix)"), ("", "empty path component")):
        if name.startswith("/") if bad == "/" else bad in parts:
            return why
    if len(name.encode()) > 4096 or any(len(p.encode()) > 255 for p in parts):
        return "name too long"
    return None


def hard_link_problem(target: str, earlier: dict[str, str]) -> str | None:
    """Why a hard link member may not name `target`, or None.

    GNU tar stores a file's second name as a link to its first, which it wrote before: the
    target must be an earlier regular file member (`earlier` maps the members so far to their
    kinds), never a folder, a link, metadata.json, a later member or a path outside.
    """
    if not target or CONTROL.search(target):
        return "a hard link with an empty target, or a control character in it"
    problem = path_problem(target)
    if problem:
        return f"a hard link to {target!r}: {problem}"
    kind = earlier.get(target)
    if kind is None or target == "metadata.json":
        return f"a hard link to {target!r}, which is not an earlier member of the archive"
    if kind == "dir":
        return f"a hard link to {target!r}, a folder"
    if kind != "file":
        return f"a hard link to {target!r}, which is itself a link"
    return None


def ancestors(name: str) -> list[str]:
    """config/a/b -> [config, config/a]."""
    return ["/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)]


def in_area(name: str, roots: tuple[str, ...]) -> bool:
    """True if name is one of the roots or below one (file roots have nothing below)."""
    return any(name == r or name.startswith(r + "/") and r not in FILE_ROOTS for r in roots)


def resolve_link(name: str, target: str, links: dict[str, str]) -> str | None:
    """Where a symlink leads inside the archive root, through its other links; None: out."""
    parts, todo, hops = name.split("/")[:-1], target.split("/"), 0
    while todo:
        comp = todo.pop(0)
        if comp == "..":
            if not parts:
                return None
            parts.pop()
        elif comp not in ("", "."):
            parts.append(comp)
            nxt = links.get("/".join(parts))
            if nxt is not None:
                hops += 1
                if hops > 40 or nxt.startswith("/"):
                    return None
                parts.pop()
                todo = nxt.split("/") + todo
    return "/".join(parts)
