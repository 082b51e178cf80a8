"""`status`: per spec the last run, the newest verified backup's age, copies and warnings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..environment import Environment, spec_files
from ..errors import SpecError
from .runlog import last_runs

DEFAULT_MAX_AGE_HOURS = 36.0  # a nightly schedule plus its random delay and some slack


def copies_from_state(env: Environment, spec: str) -> list[dict[str, Any]]:
    """The hook for copies: <state>/specs/<spec>/copies.json (a list of {target, archive,
    time, ok}) when the copies stage writes it; [] until then."""
    path = env.state_dir / "specs" / spec / "copies.json"
    try:
        from ..safefs import read_bytes

        data = json.loads(read_bytes(path, 4 << 20, owned=True))
    except (OSError, ValueError, Exception):  # noqa: BLE001 - no record, no copies shown
        return []
    return data if isinstance(data, list) else data.get("copies", []) if isinstance(
        data, dict) else []


# Replaceable: the copies stage may point this at its own record of each spec's copies.
COPIES: Callable[[Environment, str], list[dict[str, Any]]] = copies_from_state


@dataclass
class SpecStatus:
    """One spec's health."""

    spec: str
    destination: str | None = None
    last_run: dict[str, Any] | None = None
    newest_verified: str | None = None
    newest_verified_age_hours: float | None = None
    backups: int = 0
    copies: list[dict[str, Any]] = field(default_factory=list)
    next_run: str | None = None  # filled in by the caller from the installed schedule
    problems: list[str] = field(default_factory=list)  # make it unhealthy
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No problem (warnings alone do not make a spec unhealthy)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "healthy": self.healthy}


def spec_status(env: Environment, names: list[str] | None = None,
                max_age_hours: float = DEFAULT_MAX_AGE_HOURS, now: float | None = None
                ) -> tuple[list[SpecStatus], list[str]]:
    """Each spec's status, and warnings about the backups as a whole."""
    from ..inventory.advice import listing_warnings
    from ..inventory.listing import list_backups
    from ..inventory.record import Record
    from ..spec.load import load_spec

    now = time.time() if now is None else now
    runs = last_runs(env)
    out: list[SpecStatus] = []
    listings: dict[Path, list[Record]] = {}
    for path in spec_files(env.specs_dir):
        if names and path.stem not in names:
            continue
        st = SpecStatus(path.stem, last_run=runs.get(path.stem))
        out.append(st)
        try:
            spec = load_spec(path, env, check_tree=False)
        except SpecError as e:
            st.problems.append(f"the spec does not load: {e.problems[0]}")
            continue
        st.destination = str(spec.destination)
        if spec.destination not in listings:
            listings[spec.destination] = list_backups(spec.destination)
        mine = [r for r in listings[spec.destination] if r.spec == spec.name]
        st.backups = len(mine)
        verified = [r for r in mine if r.verified is True and not r.problem]
        if st.last_run and st.last_run.get("result") == "failed":
            st.problems.append(f"the last run ({st.last_run.get('time')}) failed: "
                               f"{st.last_run.get('error')}: {st.last_run.get('message')}")
        elif st.last_run and st.last_run.get("result") == "skipped":
            st.warnings.append(f"the last run was skipped: {st.last_run.get('message')}")
        if not verified:
            st.problems.append("never verified: no verified backup of this spec"
                               if mine else "no backup of this spec yet")
        else:
            newest = verified[0]
            age = (now - newest.timestamp) / 3600
            st.newest_verified, st.newest_verified_age_hours = newest.name, round(age, 1)
            if age > max_age_hours:
                st.problems.append(f"stale: the newest verified backup is {age:.0f} hours old "
                                   f"(more than {max_age_hours:g})")
        st.copies = COPIES(env, spec.name)
    from ..inventory.advice import trust_warnings

    overall = [f"{w.message} Fix: {w.command}"
               for w in trust_warnings(sorted({env.backup_dir, *listings}))]
    for dest, records in listings.items():
        for advice in listing_warnings(records, dest, env.home, max_age_days=1e9, now=now):
            if "No pinned" in advice.message or "same filesystem" in advice.message:
                overall.append(f"{advice.message} Fix: {advice.command}")
    return out, list(dict.fromkeys(overall))
