"""`allsky-tasks schedule install|show|remove` and `allsky-tasks status [--json]`."""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
from pathlib import Path
from typing import Any

from ..environment import from_environ, spec_files
from ..errors import ScheduleError, UnhealthyError


def _root(args: argparse.Namespace) -> Path:
    """Where /etc is (tests: a temporary folder)."""
    from ..schedule.install import ROOT_ENV

    return Path(args.root or os.environ.get(ROOT_ENV) or "/")


def _default_user() -> str:
    """The Allsky user: the owner of the Allsky home (else whoever ran sudo, else us)."""
    env = from_environ()
    try:
        uid = env.home.stat().st_uid
        if uid != 0:
            return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        pass
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name


def cmd_install(args: argparse.Namespace) -> int:
    """Write and enable the timer (or cron entry)."""
    from ..schedule.install import install, show
    from ..schedule.units import Plan, parse_at

    env = from_environ()
    parse_at(args.at)
    known = {p.stem for p in spec_files(env.specs_dir)}
    unknown = [s for s in args.spec if s not in known]
    if unknown:
        raise ScheduleError(f"no spec named {', '.join(unknown)} in {env.specs_dir}",
                            hint=f"known specs: {', '.join(sorted(known)) or 'none'}")
    user = args.user or _default_user()
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise ScheduleError(f"no user {user!r} on this machine", hint="pass --user") from None
    environment = (("ALLSKY_HOME", str(env.home)), ("ALLSKY_SPECS_DIR", str(env.specs_dir)),
                   ("ALLSKY_BACKUP_DIR", str(env.backup_dir)),
                   *((("ALLSKY_IMAGES", str(env.images)),) if env.images else ()))
    plan = Plan(user=user, at=args.at, command=(sys.executable, "-m", "allsky_tasks"),
                environment=environment, specs=tuple(args.spec), lock_wait=args.lock_wait)
    done = install(plan, _root(args), args.backend)
    for f in done["files"]:
        print(f"wrote {f}")
    info = show(_root(args)) or {}
    print(f"{done['backend']}: {', '.join(args.spec) or 'every spec'} daily at {args.at} "
          f"as {user}; next run {info.get('nextRun')}"
          + (" (plus up to 30 min random delay)" if done["backend"] == "systemd" else ""))
    if not done["enabled"]:
        print("not enabled (systemd is not running here, or --root is not /): "
              "systemctl daemon-reload && systemctl enable --now allsky-tasks.timer")
    return 0


def _last_results() -> dict[str, Any]:
    """spec -> its recorded last run."""
    from ..monitor.runlog import last_runs

    return last_runs(from_environ())


def cmd_show(args: argparse.Namespace) -> int:
    """The installed schedule, its next run and the last result per spec."""
    from ..schedule.install import show

    info = show(_root(args))
    runs = _last_results()
    if args.json:
        print(json.dumps({"schedule": info, "lastRuns": runs}, indent=2))
        return 0
    if info is None:
        print("no schedule installed (allsky-tasks schedule install)")
    else:
        print(f"{info['backend']} schedule: daily at {info['at']} as {info.get('user')}")
        print(f"  next run: {info.get('systemdNext') or info['nextRun']}"
              + (f" (+ up to {info['randomDelaySeconds'] // 60} min)"
                 if info.get("randomDelaySeconds") and not info.get("systemdNext") else ""))
        print(f"  command:  {info.get('command')}")
        print(f"  files:    {', '.join(info['files'])}")
    for spec, run in sorted(runs.items()):
        print(f"  last run of {spec}: {run.get('result')} at {run.get('time')}"
              + (f" ({run.get('error')}: {run.get('message')})" if run.get("error") else ""))
    if not runs:
        print("  no run recorded yet")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Disable and delete the schedule."""
    from ..schedule.install import remove

    removed = remove(_root(args))
    print("\n".join(f"removed {r}" for r in removed) or "no schedule was installed")
    return 0


def _scheduled_specs(schedule: dict[str, Any] | None) -> set[str] | None:
    """Specs the installed schedule backs up (None: every spec); empty without a schedule."""
    if not schedule:
        return set()
    words = str(schedule.get("command") or "").split()
    named = {w.removeprefix("backup:") for w in words if w.startswith("backup:")}
    return named or None


def cmd_status(args: argparse.Namespace) -> int:
    """Per spec health; exit 26 when one is unhealthy."""
    from ..monitor.status import spec_status
    from ..schedule.install import show

    env = from_environ()
    specs, overall = spec_status(env, args.spec or None, args.max_age_hours)
    schedule = show(_root(args))
    next_run = (schedule or {}).get("systemdNext") or (schedule or {}).get("nextRun")
    healthy = all(s.healthy for s in specs)
    scheduled = _scheduled_specs(schedule)
    for s in specs:  # the next run that backs this spec up, if the schedule includes it
        s.next_run = next_run if scheduled is None or s.spec in scheduled else None
        if schedule and s.next_run is None:
            s.warnings.append("not in the schedule (allsky-tasks schedule install --spec ...)")
    if args.json:
        print(json.dumps({"healthy": healthy, "nextRun": next_run, "schedule": schedule,
                          "specs": [s.to_dict() for s in specs],
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
        for w in overall:
            print(f"\nwarning: {w}")
    return 0 if healthy else UnhealthyError.exit_code


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `schedule` and `status`."""
    from ..monitor.status import DEFAULT_MAX_AGE_HOURS
    from ..schedule.units import DEFAULT_AT, DEFAULT_LOCK_WAIT

    p = subs.add_parser("schedule", help="install, show or remove the daily scheduled run",
                        description="A systemd timer + service (cron.d without systemd) that "
                                    "runs `allsky-tasks run --quiet` as the Allsky user.")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, help_ in (("install", cmd_install, "write and enable the schedule"),
                              ("show", cmd_show, "the schedule, next run and last results"),
                              ("remove", cmd_remove, "disable and delete the schedule")):
        a = acts.add_parser(name, help=help_, description=help_)
        a.add_argument("--root", metavar="DIR",
                       help="install below DIR instead of / (also ALLSKY_SCHEDULE_ROOT)")
        a.set_defaults(func=func)
        if name == "install":
            a.add_argument("--at", default=DEFAULT_AT, metavar="HH:MM",
                           help=f"daily time (default {DEFAULT_AT}: after Allsky's "
                                "end-of-night work)")
            a.add_argument("--spec", action="append", default=[], metavar="NAME",
                           help="a spec to run (repeatable; default every spec)")
            a.add_argument("--user", help="run as this user (default: the Allsky home's owner)")
            a.add_argument("--backend", choices=("auto", "systemd", "cron"), default="auto",
                           help="auto: systemd when it runs, else cron")
            a.add_argument("--lock-wait", type=int, default=DEFAULT_LOCK_WAIT, metavar="S",
                           help=f"wait for another run this long (default {DEFAULT_LOCK_WAIT})")
        if name == "show":
            a.add_argument("--json", action="store_true", help="machine-readable output")
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
