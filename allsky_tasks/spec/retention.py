"""Keep rules (keep_last/daily/weekly/monthly, as `borg prune` means them): pure, no I/O.

Used by local prune (inventory/retention.py) and by the copies' target prune alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Rule order as borg applies them. keep_last is borg's --keep-last, except that two backups
# made in the same second count as two (borg's is --keep-secondly; ours can share a second).
RULES = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")
_PERIODS: dict[str, Callable[[time.struct_time], str] | None] = {
    "keep_last": None,  # every backup is a period of its own
    "keep_daily": lambda t: time.strftime("%Y-%m-%d", t),
    "keep_weekly": lambda t: time.strftime("%G-%V", t),  # ISO week, as borg
    "keep_monthly": lambda t: time.strftime("%Y-%m", t),
}


@dataclass(frozen=True)
class Candidate:
    """One backup as the keep rules see it."""

    name: str
    timestamp: float  # seconds since the epoch
    pinned: bool = False
    verified: bool = False
    tiebreak: float = 0.0  # e.g. the file's mtime, for backups made in the same second


@dataclass(frozen=True)
class Rules:
    """How many backups each rule keeps (0: the rule is off)."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Rules | None:
        """From a spec's `retention:` mapping; None when no rule is set (keep everything)."""
        values = {k: int(v) for k, v in (data or {}).items() if k in RULES and v}
        return cls(**values) if values else None

    def describe(self) -> str:
        """e.g. `last 3, daily 7`."""
        return ", ".join(f"{r.removeprefix('keep_')} {getattr(self, r)}" for r in RULES
                         if getattr(self, r)) or "nothing"


def newest_first(items: Sequence[Candidate]) -> list[Candidate]:
    """Newest first; ties broken by tiebreak, then name (deterministic)."""
    return sorted(items, key=lambda c: (-c.timestamp, -c.tiebreak, c.name))


def _apply(ordered: list[Candidate], rule: str, n: int, kept: dict[str, str]) -> None:
    """borg's prune_split: the newest backup of each of the n newest periods not yet kept
    (in local time, as borg)."""
    if n <= 0:
        return
    period_of, last, count, item = _PERIODS[rule], None, 0, None
    for item in ordered:
        period = period_of(time.localtime(item.timestamp)) if period_of else item.name
        if period == last:
            continue
        last = period
        if item.name not in kept:
            count += 1
            kept[item.name] = f"{rule} #{count}"
            if count == n:
                return
    # Fewer periods than asked: borg (1.2.5+) keeps the oldest backup too.
    if item is not None and item.name not in kept:
        kept[item.name] = f"{rule} (oldest)"


def keep_reasons(items: Sequence[Candidate], rules: Rules | None) -> dict[str, str]:
    """Name -> why it is kept, for every backup to keep; the others may be deleted.

    Pinned backups and the newest verified one are always kept; no rules keep everything.
    """
    ordered = newest_first(items)
    if rules is None:
        return {c.name: "no retention rules" for c in ordered}
    # The rules alone decide exactly as borg prune would; the protections come on top.
    kept: dict[str, str] = {}
    for rule in RULES:
        _apply(ordered, rule, getattr(rules, rule), kept)
    for c in ordered:
        if c.pinned:
            kept[c.name] = "pinned"
    newest_verified = next((c for c in ordered if c.verified), None)
    if newest_verified is not None:
        kept.setdefault(newest_verified.name, "newest verified")
    return {c.name: kept[c.name] for c in ordered if c.name in kept}
