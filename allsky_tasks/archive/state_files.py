"""Which record files in a backup folder's state are not ours to trust, and why.

Every file there that decides something (verification records, pins, the listing cache, copy
records, run records, each spec's stage files) is read only when it is a regular file owned by
the running user and writable by nobody else (safefs.check_owned); one that is not is treated
as absent. This names those files, so `list`, `status` and `prune` can say which records they
ignored instead of going quiet about it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..environment import STATE_DIRNAME
from ..errors import UnsafePathError
from ..safefs import check_owned

# Folders below the state folder whose files are records (specs/<name>/ is one level deeper).
_FLAT = ("", "copies", "runs")


def _why(path: Path) -> str | None:
    """Why one entry is not a record of ours (None: it is)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return None if stat.S_ISDIR(st.st_mode) else "is not a regular file"
    try:
        check_owned(path, st)
    except UnsafePathError as e:
        return e.message.removeprefix(f"{path}: ").removesuffix("; not opened")
    return None


def _records_in(folder: Path) -> list[Path]:
    """The record files of one folder (hidden temp files are not records)."""
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.name.endswith(".json")
                          and not e.name.startswith("."))
    except OSError:
        return []


def untrusted_records(backup_dir: Path) -> list[tuple[Path, str]]:
    """(file, why) for every record file in the folder's state that is not ours."""
    state = backup_dir / STATE_DIRNAME
    if os.path.islink(state):
        return [(state, "is a symbolic link, not a folder")]
    files = [p for sub in _FLAT for p in _records_in(state / sub)]
    try:
        with os.scandir(state / "specs") as it:
            spec_dirs = sorted(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        spec_dirs = []
    for folder in spec_dirs:
        files += _records_in(folder)
    out = []
    for path in files:
        why = _why(path)
        if why is not None:
            out.append((path, why))
    return out


def untrusted_lines(backup_dir: Path) -> list[str]:
    """One operator line per record that is ignored, naming it."""
    return [f"{path} {why}: not a record of ours, ignored (delete it; the tool writes its own)"
            for path, why in untrusted_records(backup_dir)]
