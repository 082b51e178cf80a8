"""`allsky-tasks status [SPEC ...] [--json]`: health per spec, exit 26 when one is unhealthy."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..environment import from_environ
from ..errors import UnhealthyError


def _root(args: argparse.Namespace) -> Path:
    """Where /etc is (tests: a temporary folder)."""
    from ..schedule.install import ROOT_ENV

    return Path(args.root or os.environ.get(ROOT_ENV) or "/")


def _scheduled_specs(schedule: dict[str, Any] | None) -> set[str] | None:
    """Specs the installed schedule backs up (None: every spec); empty without a schedule."""
    if not schedule:
        return set()
    words = str(schedule.get("command") or "").split()
    named = {w.removeprefix("backup:") for w in words if w.startswith("backup:")}
    return named or None


def _overall_problems(env: Any, specs: list[Any], names: list[str]) -> list[str]:
    """Problems of the whole setup: no specs at all (nightly runs would back up nothing),
    a named spec that does not exist, a last run that failed before any spec ran."""
    from ..monitor.runlog import last_run

    problems = []
    if not specs and not names:
        problems.append(f"no backup specs in {env.specs_dir} (ALLSKY_SPECS_DIR): every run "
                        "backs up nothing; `allsky-tasks init` makes them")
    found = {s.spec for s in specs}
    problems += [f"no spec named {n} in {env.specs_dir}" for n in names if n not in found]
    run = last_run(env)
    if run and run.get("result") == "failed" and not names and not found & set(run.get("specs") or []):
        # Not shown under any spec (no spec ran, or the spec is gone): shown here.
        problems.append(f"the last run ({run.get('time')}) failed: "
                        f"{run.get('error')}: {run.get('message')}")
    return problems


def cmd_status(args: argparse.Namespace) -> int:
    """Per spec health; exit 26 when one is unhealthy."""
    from ..monitor.status import spec_status
    from ..schedule.install import show

    env = from_environ()
    specs, overall = spec_status(env, args.spec or None, args.max_age_hours)
    problems = _overall_problems(env, specs, args.spec)
    schedule = show(_root(args))
    next_run = (schedule or {}).get("systemdNext") or (schedule or {}).get("nextRun")
    healthy = all(s.healthy for s in specs) and not problems
    scheduled = _scheduled_specs(schedule)
    for s in specs:  # the next run that backs this spec up, if the schedule includes it
        s.next_run = next_run if scheduled is None or s.spec in scheduled else None
        if schedule and s.next_run is None:
            s.warnings.append("not in the schedule (allsky-tasks schedule install --spec ...)")
    if args.json:
        print(json.dumps({"healthy": healthy, "nextRun": next_run, "schedule": schedule,
                          "specs": [s.to_dict() for s in specs], "problems": problems,
                          "warnings": overall}, indent=2))
    else:
        print(f"next scheduled run: {next_run or 'none (allsky-tasks schedule install)'}")
        for s in specs:
            run = s.last_run or {}
            print(f"\n{s.spec}: {'ok' if s.healthy else 'UNHEALTHY'}")
            print(f"  next run:        {s.next_run or 'not scheduled'}")
            print(f"  last run:        {run.get('result', 'never')} {run.get('time', '')}".rstrip())
            print("  newest verified: " + (f"{s.newest_verified} "
                                            f"({s.newest_verified_age_hours} h old)"
                                            if s.newest_verified else "none"))
            for c in s.copies:
                print(f"  copy:            {c}")
            for p in s.problems:
                print(f"  PROBLEM: {p}")
            for w in s.warnings:
                print(f"  warning: {w}")
        for p in problems:
            print(f"\nPROBLEM: {p}")
        for w in overall:
            print(f"\nwarning: {w}")
    return 0 if healthy else UnhealthyError.exit_code


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `status`."""
    from ..monitor.status import DEFAULT_MAX_AGE_HOURS

    p = subs.add_parser("status", help="health per spec (exit 26 when unhealthy)",
                        description="Per spec: last run, newest verified backup's age, copies, "
                                    "next scheduled run, warnings. Exit 26 when unhealthy.")
    p.add_argument("spec", nargs="*", help="only these specs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--max-age-hours", type=float, default=DEFAULT_MAX_AGE_HOURS, metavar="H",
                   help="unhealthy when the newest verified backup is older "
                        f"(default {DEFAULT_MAX_AGE_HOURS:g})")
    p.add_argument("--root", metavar="DIR", help="where the schedule's /etc is (tests)")
    p.set_defaults(func=cmd_status)
