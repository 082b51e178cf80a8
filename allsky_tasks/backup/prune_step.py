"""prune:<spec>: the spec's retention rules applied after verify (and copies) in every backup."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..environment import Environment

if TYPE_CHECKING:
    from ..spec.model import Spec


def prune_spec(spec: Spec, env: Environment, lock_wait: float = 0.0) -> dict[str, Any]:
    """Delete the spec's backups its rules do not keep; a record of what happened."""
    from ..inventory.retention import prune
    from ..service.lock import destination_lock
    from ..spec.retention import Rules

    rules = Rules.from_mapping(spec.retention)
    if rules is None:
        return {"rules": None, "deleted": [], "bytesFreed": 0}
    with destination_lock(spec.destination, wait=lock_wait):
        result = prune(spec.destination, env, dry_run=False, only=spec.name,
                       policy={spec.name: rules})
    return {"rules": rules.describe(), "deleted": result.deleted,
            "bytesFreed": result.bytes_to_free, "notes": result.notes,
            "kept": [d.name for d in result.decisions if not d.delete]}


def state_file(st: Path) -> Path:
    """Where the last prune of a spec is recorded."""
    return st / "prune.json"
