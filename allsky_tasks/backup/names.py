"""Archive names in a destination: never an existing name, and the leftovers of killed runs."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..archive.io import SUFFIXES


def archive_name(dest: Path, kind: str, suffix: str, now: datetime,
                 night: str | None = None) -> Path:
    """allsky-<type>-backup-YYYYMMDD-HHMMSS[-night-<folder>][-N]<suffix>, never an existing name."""
    stem = f"allsky-{kind}-backup-{now:%Y%m%d-%H%M%S}"
    if night and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", night):
        stem += f"-night-{night}"  # a per-night archive says which night it holds
    n = 0
    while True:
        name = stem if n == 0 else f"{stem}-{n}"
        # The sidecar is named by the stem alone: a .tar.gz and a .tar.zst must not share one.
        taken = [f"{name}{s}" for s in (*SUFFIXES, ".json")]
        taken += [f".{name}{s}.part" for s in SUFFIXES]
        if not any((dest / t).exists() for t in taken):
            return dest / f"{name}{suffix}"
        n += 1


def clean_stale_parts(dest: Path) -> list[str]:
    """Remove temp files left by a killed run (call only while holding the lock)."""
    removed = []
    for path in dest.glob(".allsky-*-backup-*.part*"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed
