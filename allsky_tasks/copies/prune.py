"""Retention at a target: keep the newest `keep_last` copies of a spec, delete only our own files.

Never deleted: a pinned backup (pinned in our state, or when it was copied), the
newest verified copy of the spec, and any file the target's record does not name (the tool
did not write it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import records
from .target import Target

_STAMP = re.compile(r"(\d{8}-\d{6})(?:-(\d+))?\.tar\.")


@dataclass(frozen=True)
class TargetDecision:
    """Keep or delete one recorded copy, and why."""

    archive: str
    delete: bool
    reason: str


def _order(name: str) -> tuple[str, int, str]:
    """Newest first by the archive name's timestamp and -N counter."""
    m = _STAMP.search(name)
    return (m.group(1), int(m.group(2) or 0), name) if m else ("", 0, name)


def _pinned(backup_dir: Path, entry: dict[str, Any]) -> bool:
    """Pinned now (our state's pins) or when it was copied (the local one may be gone)."""
    from ..archive.pins import is_pinned

    return bool(entry.get("pinned")) or is_pinned(backup_dir / entry["archive"])


def plan_target_prune(backup_dir: Path, target: str, spec: str, keep_last: int
                      ) -> list[TargetDecision]:
    """What prune at one target would do for one spec's copies."""
    copies = records.load(backup_dir, spec, target)["copies"]
    mine = sorted((e for e in copies.values() if e.get("spec") == spec),
                  key=lambda e: _order(e["archive"]), reverse=True)
    newest_ok = next((e["archive"] for e in mine if e.get("ok") is True), None)
    out = []
    for rank, entry in enumerate(mine):
        name = entry["archive"]
        if rank < keep_last:
            out.append(TargetDecision(name, False, f"one of the newest {keep_last}"))
        elif name == newest_ok:
            out.append(TargetDecision(name, False, "newest verified copy"))
        elif _pinned(backup_dir, entry):
            out.append(TargetDecision(name, False, "pinned"))
        else:
            out.append(TargetDecision(name, True, f"older than the newest {keep_last}"))
    return out


def prune_target(target: Target, backup_dir: Path, spec: str, keep_last: int | None
                 ) -> list[str]:
    """Delete the copies the plan does not keep (archive and sidecar); return their names."""
    if not keep_last:
        return []
    decisions = [d for d in plan_target_prune(backup_dir, target.name, spec, keep_last)
                 if d.delete]
    if not decisions:
        return []
    record = records.load(backup_dir, spec, target.name)
    present = {f.name for f in target.list_files()}
    deleted = []
    for decision in decisions:
        entry = record["copies"][decision.archive]
        for key in ("sidecar", "stored", "auth"):  # the archive late: a half-pruned copy stays listed
            stored = entry.get(key)
            if stored and stored in present:
                target.delete(stored)
        del record["copies"][decision.archive]
        records.save(backup_dir, record)
        deleted.append(decision.archive)
    return deleted
