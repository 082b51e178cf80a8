"""The live-install facts a spec's validation depended on, so `validate` re-runs when they change.

validate checks the home, the camera files and the named night folders. Its doit up-to-date
check covers the spec file and the schema; this adds those paths: a folder the spec names that
was removed makes validate run (and fail, exit 10) instead of scan failing later (exit 11).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import UnsafePathError
from ..safefs import read_bytes

RECORD = "live.json"


def _kind(path: str) -> list[Any]:
    """What is at a path now: dir, missing, or a file with its size and mtime (camera data)."""
    try:
        st = os.stat(path)
    except OSError:
        return ["missing"]
    if stat.S_ISDIR(st.st_mode):
        return ["dir"]
    return ["file", st.st_size, st.st_mtime_ns] if stat.S_ISREG(st.st_mode) else ["other"]


def live_paths(spec: Any) -> list[str]:
    """The install paths whose state a spec's semantic checks read."""
    paths = [spec.home]
    if spec.type == "config":
        paths += [spec.home / "config" / "settings.json", spec.home / "config" / "cc.json"]
    else:
        paths.append(spec.images)
        if isinstance(spec.folders, list):
            paths += [spec.images / name for name in spec.folders]
    paths.append(spec.destination)
    return [str(p) for p in paths]


def record(state: Path, spec: Any) -> None:
    """Remember the state of the live paths as validate saw them."""
    from ..archive.io import atomic_write_bytes

    data = {p: _kind(p) for p in live_paths(spec)}
    atomic_write_bytes(state / RECORD, (json.dumps(data, indent=1) + "\n").encode(), 0o640)


def unchanged(state: str) -> bool:
    """doit uptodate: every recorded path is as validate saw it (a few stats, no YAML)."""
    try:
        data = json.loads(read_bytes(Path(state) / RECORD, 1 << 20, owned=True))
    except (OSError, ValueError, UnsafePathError):  # not ours: validate runs again
        return False
    return isinstance(data, dict) and all(_kind(p) == kind for p, kind in data.items())
