"""Is a folder on a mounted disk, or only an empty mount-point folder on the SD card?

A spec's `destination:` or a `path:` target under /media, /mnt or /run/media (or with
`must_be_mounted: true`) must live on a filesystem other than the Allsky home's: when the USB
disk is not plugged in, the folder there belongs to the SD card and writing into it would
fill the card with "copies" that die with it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DestinationError

# Colon-separated prefixes whose folders must be mounted disks (tests point it at a tmp folder).
PREFIXES_ENV = "ALLSKY_MOUNT_PREFIXES"
DEFAULT_PREFIXES = ("/media", "/mnt", "/run/media")


def mount_prefixes() -> tuple[Path, ...]:
    """The prefixes below which folders are meant to be mounted disks."""
    raw = os.environ.get(PREFIXES_ENV)
    items = raw.split(":") if raw is not None else DEFAULT_PREFIXES
    return tuple(Path(p) for p in items if p)


def must_be_mounted(path: Path, explicit: bool | None) -> bool:
    """The spec's choice when given, else whether the path lies below a mount prefix."""
    if explicit is not None:
        return explicit
    absolute = Path(os.path.abspath(path))
    return any(absolute == p or p in absolute.parents for p in mount_prefixes())


def _existing(path: Path) -> Path:
    """The path itself or its nearest existing ancestor."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def mount_problem(path: Path, home: Path) -> str | None:
    """Why `path` is not on a mounted filesystem of its own, or None when it is."""
    existing = _existing(path)
    try:
        dev = existing.stat().st_dev
    except OSError as e:
        return f"cannot check {existing}: {e.strerror}"
    devices = {}
    for other in (home, Path("/")):
        try:
            devices[other] = _existing(other).stat().st_dev
        except OSError:
            continue
    if dev == devices.get(home):
        return (f"{existing} is on the same filesystem as the Allsky home {home}: "
                "the disk is not mounted")
    if dev == devices.get(Path("/")):
        return f"{existing} is on the root filesystem: the disk is not mounted"
    return None


def require_mounted(path: Path, home: Path, what: str, explicit: bool | None = None) -> None:
    """Raise DestinationError naming `what` when `path` must be a mounted disk and is not."""
    if not must_be_mounted(path, explicit):
        return
    problem = mount_problem(path, home)
    if problem is not None:
        raise DestinationError(
            f"{what} {path} is not on a mounted disk: {problem}; nothing was written there",
            hint="plug in and mount the disk (check with `findmnt " + str(_existing(path))
                 + "`), or set must_be_mounted: false if this folder is meant to be local")
