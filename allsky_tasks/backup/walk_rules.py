"""What the walk leaves out or warns about: exclusions, unsafe names, escaping or looping links, journals.

Also the one glob every selection uses (`nofollow_glob`): it never walks through a symlink.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator

__all__ = ["ALWAYS_EXCLUDED", "DB_SUFFIXES", "JOURNAL_SUFFIXES", "exclusion", "is_journal", "link_escapes",
           "loops", "nofollow_glob", "shown", "through_link", "unsafe_name"]

ALWAYS_EXCLUDED = ("__pycache__",)

JOURNAL_SUFFIXES = ("-wal", "-shm", "-journal")
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")

_GLOB_MAGIC = re.compile(r"[*?[]")


def _any_glob(patterns: list[str]) -> Callable[[str], re.Match[str] | None] | None:
    """One compiled regex matching what any of the globs matches (as fnmatchcase does)."""
    return re.compile("|".join(map(fnmatch.translate, patterns))).match if patterns else None


def exclusion(patterns: tuple[str, ...]) -> Callable[[str, str], bool]:
    """(arcname, name) -> excluded: a glob with '/' matches the archive path, others the name.

    Same answers as fnmatchcase over every pattern, compiled once: this runs for every member.
    """
    literal = frozenset(p for p in patterns if "/" not in p and not _GLOB_MAGIC.search(p))
    by_name = _any_glob([p for p in patterns if "/" not in p and p not in literal])
    by_path = _any_glob([p for p in patterns if "/" in p])

    def excluded(arcname: str, name: str) -> bool:
        return (name in literal or (by_name is not None and by_name(name) is not None)
                or (by_path is not None and by_path(arcname) is not None))
    return excluded


# What restore and import refuse in a name (member_names.path_problem): control characters but tab,
# and non-UTF-8 bytes (surrogate escapes). Such files are left out with a warning naming them.
_UNSAFE_NAME = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def unsafe_name(name: str) -> bool:
    """True if restore would refuse this name (isprintable() first: fast for every file)."""
    return not name.isprintable() and _UNSAFE_NAME.search(name) is not None


def shown(path: str) -> str:
    """A path for a warning, with control characters and non-UTF-8 bytes escaped."""
    return ascii(path)[1:-1] if unsafe_name(path) else path


def link_escapes(arcname: str, target: str, areas: tuple[str, ...]) -> bool:
    """True if a symlink is absolute or resolves outside the archive's areas."""
    if target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(arcname), target))
    if resolved.startswith("..") or resolved == ".":
        return True
    return not any(resolved == a or resolved.startswith(a + "/") for a in areas)


def loops(path: str) -> bool:
    """True if a symlink never ends (ELOOP: `loop2 -> loop2`, or a ring of links)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def is_journal(path: str, name: str) -> bool:
    """SQLite side files are never archived raw: the database is captured whole."""
    if "-" not in name:
        return False
    return any(name.endswith(suffix) and os.path.isfile(path[: -len(suffix)]) for suffix in JOURNAL_SUFFIXES)


def _is_real_dir(path: str) -> bool:
    """A folder itself, not a symlink to one (lstat)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _names(path: str) -> list[str]:
    """The names in a folder, sorted ([] if it cannot be listed: the walk reports that)."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _real_dirs_below(arc: str, path: str) -> Iterator[tuple[str, str]]:
    """`**`: the folder and every real folder below it, never through a symlink."""
    yield arc, path
    for name in _names(path):
        child = os.path.join(path, name)
        if _is_real_dir(child):
            yield from _real_dirs_below(f"{arc}/{name}", child)


def nofollow_glob(base: str, arc: str, pattern: str, notes: list[str]) -> Iterator[tuple[str, str]]:
    """(archive name, path) of what `pattern` matches below `base` (whose archive name is `arc`).

    As pathlib's glob (`*`, `?`, `[...]`, `**` for any depth of folders), except that it never
    goes through a symlink: a link is matched as itself (and stored as a link), but a pattern
    that would reach below one gets a note instead of the link's target (which may be `/`).
    """
    parts = [p for p in pattern.split("/") if p not in ("", ".")]

    def step(a: str, p: str, rest: list[str]) -> Iterator[tuple[str, str]]:
        if not rest:
            yield a, p
            return
        head, tail = rest[0], rest[1:]
        if head == "**":
            for sub_a, sub_p in _real_dirs_below(a, p):
                yield from step(sub_a, sub_p, tail)
            return
        names = ([n for n in _names(p) if fnmatch.fnmatchcase(n, head)] if _GLOB_MAGIC.search(head)
                 else [head] if os.path.lexists(os.path.join(p, head)) else [])
        for name in names:
            child_a, child_p = f"{a}/{name}" if a else name, os.path.join(p, name)
            if not tail:
                yield child_a, child_p
            elif os.path.islink(child_p):
                notes.append(f"{shown(child_p)}: a symlink; {pattern!r} does not follow it (links "
                             "are stored as links, never walked)")
            elif _is_real_dir(child_p):
                yield from step(child_a, child_p, tail)

    if _is_real_dir(base) or os.path.isdir(base):  # the base itself (home, images) may be a link
        yield from step(arc, base, parts)


def through_link(base: str, rel: str) -> str | None:
    """The first folder above `rel` (below `base`) that is a symlink, or None."""
    path = base
    for part in rel.split("/")[:-1]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            return path
    return None
