"""Free space at a destination, and a refusal before anything is stopped or written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SpaceError
from ..progress import human

format_bytes = human  # one formatter: Allsky's formatBytes
MARGIN = 0.10  # on top of the estimate: estimates err, and a full disk hurts Allsky too
MIN_MARGIN = 64 << 20  # at least this much stays free, however small the archive
def existing_parent(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists (a destination may not exist yet)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    st = os.statvfs(existing_parent(path))
    # f_bavail, not f_bfree: the blocks reserved for root are not ours to fill.
    return st.f_bavail * st.f_frsize


def spec_margin(free_space: dict[str, Any] | None) -> tuple[float, int]:
    """(proportional margin, floor in bytes) from a spec's `free_space:` (defaults 10 %, 64 MiB)."""
    free_space = free_space or {}
    margin = float(free_space.get("margin_percent", MARGIN * 100)) / 100
    floor = int(float(free_space.get("min_free_mb", MIN_MARGIN / (1 << 20))) * (1 << 20))
    return margin, floor


def required_bytes(needed: int, margin: float = MARGIN, min_margin: int = MIN_MARGIN) -> int:
    """What must be free to write `needed` bytes and still leave the safety margin."""
    return needed + max(int(needed * margin), min_margin)


def check_space(dest: Path, needed: int, margin: float = MARGIN, min_margin: int = MIN_MARGIN,
                free: int | None = None) -> None:
    """Raise SpaceError unless `dest` has room for `needed` bytes plus the margin."""
    if free is None:
        free = free_bytes(dest)
    required = required_bytes(needed, margin, min_margin)
    if free >= required:
        return
    raise SpaceError(
        f"not enough free space at {dest}: the backup needs about {format_bytes(needed)} "
        f"({needed} bytes) plus a margin of {format_bytes(required - needed)}, "
        f"but only {format_bytes(free)} ({free} bytes) is free",
        hint=f"free at least {format_bytes(required - free)} there (delete or move old "
             "backups), point the spec's destination at a bigger disk, or lower the spec's "
             f"free_space: margin ({margin * 100:g} %, at least {format_bytes(min_margin)} now)",
    )
