"""Retention: pin known-good backups; prune old ones without ever losing a good one."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..environment import Environment, spec_files
from ..errors import InventoryError, ManifestError, SpecError
from .listing import Record, delete_backup, list_backups, load_record
from ..archive.manifest import sidecar_path, update_sidecar
from ..spec.load import load_spec


@dataclass(frozen=True)
class Item:
    """What the retention plan needs to know about one backup."""

    name: str
    group: str
    type: str
    timestamp: float
    pinned: bool = False
    verified: bool = False
    readable: bool = True
    mtime: float = 0.0  # tie-break within one second


@dataclass(frozen=True)
class Decision:
    """Keep or delete one backup, and why."""

    name: str
    group: str
    delete: bool
    reason: str


@dataclass
class PruneResult:
    """The plan, what was deleted, and notes (skipped specs, changed minds)."""

    decisions: list[Decision]
    deleted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def to_delete(self) -> list[Decision]:
        """The decisions that delete."""
        return [d for d in self.decisions if d.delete]


def group_of(record: Record) -> str:
    """Retention group: the spec name; Allsky-made/imported ones by type."""
    return record.spec if record.spec != "allsky" else f"allsky-{record.type}"


def item_of(record: Record) -> Item:
    """A listing record as a plan input."""
    return Item(name=record.name, group=group_of(record), type=record.type,
                timestamp=record.timestamp, pinned=record.pinned,
                verified=record.verified is True, readable=record.problem is None,
                mtime=record.mtime)


def plan_prune(items: list[Item], keep_last: Mapping[str, int | None],
               override: int | None = None) -> list[Decision]:
    """Keep the newest N per group, pinned ones, each group's newest verified one and the
    only good config backup; everything else in a group with a policy is deleted."""
    decisions: dict[str, Decision] = {}
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.group].append(item)
    for group, members in groups.items():
        members.sort(key=lambda i: (-i.timestamp, -i.mtime, i.name))
        n = override if override is not None else keep_last.get(group)
        newest_verified = next((i for i in members if i.verified and i.readable), None)
        for rank, item in enumerate(members):
            if not item.readable:
                why, delete = "unreadable: never pruned automatically", False
            elif n is None:
                why, delete = f"no retention policy for {group}", False
            elif item.pinned:
                why, delete = "pinned", False
            elif rank < n:
                why, delete = f"one of the newest {n} of {group}", False
            elif item is newest_verified:
                why, delete = f"newest verified backup of {group}", False
            else:
                why, delete = f"older than the newest {n} of {group}", True
            decisions[item.name] = Decision(item.name, group, delete, why)
    # Whatever the groups say, the last good config backup stays.
    good = [i for i in items if i.type == "config" and i.verified and i.readable]
    if good and all(decisions[i.name].delete for i in good):
        last = min(good, key=lambda i: (-i.timestamp, -i.mtime, i.name))
        decisions[last.name] = Decision(last.name, last.group, False,
                                        "the only good config backup")
    order = sorted(items, key=lambda i: (i.group, -i.timestamp, -i.mtime, i.name))
    return [decisions[i.name] for i in order]


def spec_retention(env: Environment) -> tuple[dict[str, int | None], list[str]]:
    """keep_last per spec name from the spec files; broken specs are skipped (noted)."""
    keep: dict[str, int | None] = {}
    notes: list[str] = []
    for path in spec_files(env.specs_dir):
        try:
            spec = load_spec(path, env, check_tree=False)
        except SpecError as e:
            notes.append(f"{path.name}: skipped ({e.problems[0]}); its backups are all kept")
            continue
        value = spec.retention.get("keep_last")
        keep[spec.name] = value if isinstance(value, int) and value >= 0 else None
    return keep, notes


def prune(dest: Path, env: Environment, keep_last: int | None = None,
          dry_run: bool = True) -> PruneResult:
    """Plan (and unless dry_run, carry out) the deletions the retention policy asks for."""
    if keep_last is not None and keep_last < 0:
        raise InventoryError(f"--keep-last must be 0 or more, not {keep_last}")
    policy, notes = spec_retention(env)
    records = list_backups(dest)
    result = PruneResult(plan_prune([item_of(r) for r in records], policy, keep_last), [],
                         notes)
    if dry_run:
        return result
    for decision in result.to_delete:
        path = dest / decision.name
        # Pinned or re-verified since the plan was made: the operator's latest word wins.
        if path.exists() and load_record(path).pinned:
            result.notes.append(f"{decision.name}: pinned meanwhile; kept")
            continue
        result.deleted += delete_backup(path)
    return result


def set_pinned(path: Path, pinned: bool) -> Record:
    """Store allskyTasks.pinned in the sidecar (made from the archive's metadata if missing)."""
    record = load_record(path)  # caches a sidecar from the archive's metadata if missing
    if not sidecar_path(path).exists():
        raise InventoryError(f"{path}: no sidecar and no readable metadata.json "
                             f"({record.problem}); cannot pin",
                             hint=f"run `allsky-tasks verify {path.name}` to see why")
    try:
        # The shared sidecar update: streamed for ours, whole JSON for other layouts.
        update_sidecar(path, {"pinned": pinned})
    except (OSError, ManifestError) as e:
        raise InventoryError(f"cannot write {sidecar_path(path)}: {e}") from e
    return load_record(path)
