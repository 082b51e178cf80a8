"""Pins: the backups an operator marked known-good, kept in our state folder, never in a sidecar.

`<backup folder>/.allsky-tasks/pins.json` maps an archive's name (an absolute path for a file
outside backup folders, in the default state folder) to `{"pinned": bool, "at": time}`.
Allsky writes the sidecars (its WebUI upload replaces them), so a pin there could be lost or
duplicated; pins written by older versions into a sidecar's `allskyTasks.pinned` are still
read while the archive has no entry here, and move here on the next write. Read only when the
file is ours (owned by the running user, writable by nobody else).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import safefs
from ..errors import ManifestError, UnsafePathError
from .manifest import read_sidecar
from .metadata import NAMESPACE
from .records import state_for

PINS = "pins.json"


class PinStore:
    """The pins of one state folder."""

    def __init__(self, state: Path, prefix: str = "") -> None:
        self.state = state
        self.path = state / PINS
        self.prefix = prefix

    def key(self, archive: Path) -> str:
        """Archives beside the state folder by name, others by absolute path."""
        return archive.name if not self.prefix else str(archive.absolute())

    def load(self) -> dict[str, dict[str, Any]]:
        """Every entry ({} when none, or the file is not ours to trust)."""
        try:
            data = json.loads(safefs.read_bytes(self.path, 16 << 20, owned=True))
        except (FileNotFoundError, NotADirectoryError, ValueError, UnsafePathError):
            return {}
        pins = data.get("pins") if isinstance(data, dict) else None
        return {k: v for k, v in pins.items() if isinstance(v, dict)} if isinstance(
            pins, dict) else {}

    def entry(self, archive: Path) -> dict[str, Any] | None:
        """This archive's entry, if it has one."""
        return self.load().get(self.key(archive))

    def put(self, archive: Path, pinned: bool, **facts: Any) -> None:
        """Pin or unpin (read-merge-write; entries of archives that are gone are dropped)."""
        safefs.make_dir(self.state)
        pins = self.load()
        pins[self.key(archive)] = {**facts, "pinned": pinned,
                                   "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for gone in [k for k in pins if not self.prefix and "/" not in k
                     and not safefs.exists(self.state.parent / k)]:
            del pins[gone]
        blob = json.dumps({"format": 1, "pins": pins}, indent=1, sort_keys=True)
        safefs.atomic_write_bytes(self.path, (blob + "\n").encode(), 0o640)


def pin_store(archive: Path, default_state: Path | None = None) -> PinStore:
    """The pins for an archive: its backup folder's state, else the default state folder."""
    return PinStore(*state_for(archive, default_state))


def sidecar_pin(archive: Path) -> bool:
    """A pin an older version wrote into the sidecar (read, never written)."""
    try:
        ours = (read_sidecar(archive) or {}).get(NAMESPACE)
    except ManifestError:
        return False
    return isinstance(ours, dict) and ours.get("pinned") is True


def is_pinned(archive: Path, default_state: Path | None = None,
              sidecar: bool | None = None) -> bool:
    """Pinned by our state, else (never written there) by an older version's sidecar pin."""
    try:
        entry = pin_store(archive, default_state).entry(archive)
    except UnsafePathError:
        entry = None
    if entry is not None:
        return entry.get("pinned") is True
    return sidecar_pin(archive) if sidecar is None else sidecar
