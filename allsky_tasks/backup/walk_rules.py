"""What the walk leaves out or warns about: exclusions, unsafe names, escaping or looping links, journals."""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import re
from collections.abc import Callable

__all__ = ["ALWAYS_EXCLUDED", "DB_SUFFIXES", "JOURNAL_SUFFIXES", "exclusion", "is_journal", "link_escapes",
           "loops", "shown", "unsafe_name"]

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
