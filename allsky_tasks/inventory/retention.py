"""Retention: pin known-good backups; prune old ones without ever losing a good one."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..archive.manifest import sidecar_path
from ..environment import Environment, spec_files
from ..errors import InventoryError, SpecError
from ..spec.load import load_spec
from ..spec.retention import Candidate, Rules, keep_reasons
from .listing import delete_backup, list_backups, load_record
from .record import Record, namespace


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
    part: str = ""  # a per-night set's night folder: its archives are kept per night


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
    bytes_to_free: int = 0  # archives and sidecars the plan deletes

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
                mtime=record.mtime, part=_night_of(record))


def _night_of(record: Record) -> str:
    """The night folder of a per-night set's archive ("" otherwise)."""
    if record.night_set is None:
        return ""
    per_night = namespace(record.metadata).get("perNight")
    return str(per_night.get("folder", "")) if isinstance(per_night, dict) else ""


def _rules(value: int | Rules | None) -> Rules | None:
    """A group's policy: a bare number is keep_last."""
    return Rules(keep_last=value) if isinstance(value, int) else value


def plan_prune(items: list[Item], keep_last: Mapping[str, int | Rules | None],
               override: int | None = None) -> list[Decision]:
    """Keep what each group's rules keep (borg prune's meaning), pinned ones, each group's
    newest verified one and the only good config backup; the rest of a group with rules goes.

    Only verified-good backups count toward the rules: one never read by our verify (or whose
    read failed) can neither push a good one out nor be deleted itself, so a planted archive
    dated newest never costs a backup that can be restored.
    """
    decisions: dict[str, Decision] = {}
    groups: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for item in items:
        groups[item.group, item.part].append(item)
    for (group, _part), members in groups.items():
        rules = _rules(override if override is not None else keep_last.get(group))
        good = [i for i in members if i.readable and i.verified]
        reasons = keep_reasons([Candidate(i.name, i.timestamp, i.pinned, i.verified, i.mtime)
                                for i in good], rules)
        for item in members:
            why = reasons.get(item.name)
            if not item.readable:
                why, delete = "unreadable: never pruned automatically", False
            elif rules is None:
                why, delete = f"no retention policy for {group}", False
            elif item.pinned and why is None:
                why, delete = "pinned", False
            elif not item.verified:
                why, delete = ("not verified: does not count toward the rules and is never "
                               "pruned automatically (allsky-tasks verify reads it)"), False
            elif why is None:
                why, delete = f"not kept by {group}'s rules ({rules.describe()})", True
            else:
                delete = False
                if why == "newest verified":
                    why = f"newest verified backup of {group}"
                elif why.startswith("keep_last #") and rules == Rules(keep_last=rules.keep_last):
                    why = f"one of the newest {rules.keep_last} verified of {group}"
            decisions[item.name] = Decision(item.name, group, delete, why)
    # Whatever the groups say, the last good config backup stays.
    good = [i for i in items if i.type == "config" and i.verified and i.readable]
    if good and all(decisions[i.name].delete for i in good):
        last = min(good, key=lambda i: (-i.timestamp, -i.mtime, i.name))
        decisions[last.name] = Decision(last.name, last.group, False,
                                        "the only good config backup")
    order = sorted(items, key=lambda i: (i.group, -i.timestamp, -i.mtime, i.name))
    return [decisions[i.name] for i in order]


def spec_retention(env: Environment) -> tuple[dict[str, Rules | None], list[str]]:
    """The keep rules per spec name from the spec files; broken specs are skipped (noted)."""
    keep: dict[str, Rules | None] = {}
    notes: list[str] = []
    for path in spec_files(env.specs_dir):
        try:
            spec = load_spec(path, env, check_tree=False)
        except SpecError as e:
            notes.append(f"{path.name}: skipped ({e.problems[0]}); its backups are all kept")
            continue
        keep[spec.name] = Rules.from_mapping(spec.retention)
    return keep, notes


def _size(path: Path) -> int:
    """Bytes of a backup and its sidecar (0 for what is gone)."""
    total = 0
    for p in (path, sidecar_path(path)):
        with contextlib.suppress(OSError):
            total += p.lstat().st_size
    return total


def prune(dest: Path, env: Environment, keep_last: int | None = None,
          dry_run: bool = True, only: str | None = None,
          policy: Mapping[str, Rules | None] | None = None) -> PruneResult:
    """Plan (and unless dry_run, carry out) the deletions the retention policy asks for.

    `only` limits it to one spec's backups (the chain's prune:<spec>), `policy` overrides the
    rules read from the spec files.
    """
    if keep_last is not None and keep_last < 0:
        raise InventoryError(f"--keep-last must be 0 or more, not {keep_last}")
    notes: list[str] = []
    if policy is None:
        policy, notes = spec_retention(env)
    from .advice import trust_warnings

    notes += [w.message for w in trust_warnings([dest])]
    items = [item_of(r) for r in list_backups(dest)]
    if only is not None:
        items = [i for i in items if i.group == only]
    result = PruneResult(plan_prune(items, policy, keep_last), [], notes)
    result.bytes_to_free = sum(_size(dest / d.name) for d in result.to_delete)
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
    """Pin or unpin in our state folder (archive/pins.py); the sidecar is never written.

    Only a backup that is not known to be bad can be pinned: one whose last full read failed,
    or that cannot be read at all, is refused.
    """
    from ..archive.pins import pin_store
    from ..archive.records import identity
    from .listing import _default_state

    record = load_record(path)
    if pinned and record.verified is False:
        why = record.verify_problems[0] if record.verify_problems else "its last full read failed"
        raise InventoryError(f"{path.name} failed verification ({why}); not pinned",
                             hint=f"`allsky-tasks verify {path.name}` reads it again; a backup "
                                  "that verified can be pinned")
    if pinned and record.problem:
        raise InventoryError(f"{path.name}: {record.problem}; not pinned",
                             hint=f"run `allsky-tasks verify {path.name}` to see why")
    try:
        pin_store(path, _default_state()).put(path, pinned, identity=identity(path.stat()))
    except OSError as e:
        raise InventoryError(f"cannot record the pin of {path.name}: {e.strerror or e}",
                             hint="check the backup folder's owner and permissions") from e
    return load_record(path)
