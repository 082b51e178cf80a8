"""`allsky-tasks schedule install|show|test|remove`.

Run as the Allsky user from a normal login shell: the job is resolved there (that user's home,
backup folder and specs folder), checked, and only writing root's files goes through sudo,
with the venv's absolute interpreter (sudo's secure_path never finds `allsky-tasks`).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import ScheduleError


def _root(args: argparse.Namespace) -> Path:
    """Where /etc is (tests: a temporary folder)."""
    from ..schedule.install import ROOT_ENV

    return Path(args.root or os.environ.get(ROOT_ENV) or "/")


def _needs_sudo(args: argparse.Namespace) -> bool:
    """Root's files (below /etc, or a --root folder we cannot write) from a user other than root."""
    if os.geteuid() == 0:
        return False
    etc = _root(args) / "etc"
    while not os.path.exists(etc) and etc != etc.parent:
        etc = etc.parent
    return not os.access(etc, os.W_OK)


def _root_flag(args: argparse.Namespace) -> list[str]:
    """--root for the command run again through sudo (which drops ALLSKY_SCHEDULE_ROOT)."""
    from ..schedule.install import ROOT_ENV

    root = args.root or os.environ.get(ROOT_ENV)
    return ["--root", str(Path(root).absolute())] if root else []


def sudo_line(argv: list[str]) -> list[str]:
    """The same command as root: sudo with this venv's interpreter, by its absolute path."""
    return ["sudo", sys.executable, "-m", "allsky_tasks", *argv]


def _via_sudo(argv: list[str]) -> int:
    """Run this command again through sudo (it may ask for the password)."""
    line = sudo_line(argv)
    if not shutil.which("sudo"):
        raise ScheduleError("writing the schedule needs root, and sudo is not installed",
                            hint=f"run as root: {shlex.join(line[1:])}")
    print(f"allsky-tasks: root's files need sudo: {shlex.join(line)}", file=sys.stderr)
    return subprocess.run(line).returncode


def _job(args: argparse.Namespace) -> Any:
    from ..schedule.job import resolve

    return resolve(os.environ, user=args.user, home=args.home, backup_dir=args.backup_dir,
                   specs_dir=args.specs_dir, images=args.images)


def _print_environment(environment: dict[str, str], env_file: str | None,
                       indent: str = "  ") -> None:
    for key, value in environment.items():
        print(f"{indent}{key}={value}")
    if env_file:
        state = "present" if os.path.exists(env_file) else "absent (optional)"
        print(f"{indent}{env_file}: {state} (notification settings)")


def cmd_install(args: argparse.Namespace) -> int:
    """Resolve and check the job as the Allsky user, then write and enable the timer."""
    from ..schedule.install import install, show
    from ..schedule.job import check
    from ..schedule.units import Plan, parse_at

    parse_at(args.at)
    job = _job(args)
    python = sys.executable
    check(job, python, tuple(args.spec))
    if _needs_sudo(args):
        flags = ["--user", job.user, "--home", str(job.home), "--backup-dir", str(job.backup_dir),
                 "--specs-dir", str(job.specs_dir), "--at", args.at, "--backend", args.backend,
                 "--lock-wait", str(args.lock_wait),
                 *(["--images", str(job.images)] if job.images else []),
                 *(w for s in args.spec for w in ("--spec", s))]
        return _via_sudo(["schedule", "install", *flags, *_root_flag(args)])
    plan = Plan(user=job.user, at=args.at, command=(python, "-m", "allsky_tasks"),
                environment=job.environment(), specs=tuple(args.spec), lock_wait=args.lock_wait)
    done = install(plan, _root(args), args.backend)
    for f in done["files"]:
        print(f"wrote {f}")
    info = show(_root(args)) or {}
    at = info.get("at") or args.at  # cron: --at plus the random offset chosen now
    print(f"{done['backend']}: {', '.join(args.spec) or 'every spec'} daily at {at} "
          f"as {job.user}; next run {info.get('nextRun')}"
          + (" (plus up to 30 min random delay)" if done["backend"] == "systemd" else
             f" (--at {args.at} plus a random offset)" if at != args.at else ""))
    _print_environment(dict(job.environment()), info.get("environmentFile"))
    if not done["enabled"]:
        print("not enabled (systemd is not running here, or --root is not /): "
              "systemctl daemon-reload && systemctl enable --now allsky-tasks.timer")
    print("try it once now, exactly as the timer runs it: allsky-tasks schedule test")
    return 0


def _last_results(environment: dict[str, str] | None = None) -> dict[str, Any]:
    """spec -> its recorded last run (in the job's backup folder when a job is installed)."""
    from ..environment import from_environ as env_of
    from ..monitor.runlog import last_runs

    return last_runs(env_of(environment) if environment else env_of())


def _path_problems(info: dict[str, Any]) -> list[str]:
    """The installed job's folders that are gone or belong to another user now."""
    from ..schedule.job import Job, ownership_problems

    env = info.get("environment") or {}
    try:
        pw = pwd.getpwnam(info.get("user") or "")
    except KeyError:
        return [f"the job's user {info.get('user')!r} does not exist"]
    problems = [f"{key} {env[key]} does not exist" for key in ("ALLSKY_HOME", "ALLSKY_SPECS_DIR")
                if key in env and not os.path.isdir(env[key])]
    if all(k in env for k in ("ALLSKY_HOME", "ALLSKY_BACKUP_DIR", "ALLSKY_SPECS_DIR")):
        job = Job(pw.pw_name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir), Path(env["ALLSKY_HOME"]),
                  Path(env["ALLSKY_BACKUP_DIR"]), Path(env["ALLSKY_SPECS_DIR"]))
        problems += ownership_problems(job)
    return problems


def cmd_show(args: argparse.Namespace) -> int:
    """The installed schedule, the environment it runs with, its next run and last results."""
    from ..schedule.install import show

    info = show(_root(args))
    runs = _last_results((info or {}).get("environment"))
    problems = _path_problems(info) if info else []
    if args.json:
        print(json.dumps({"schedule": info, "problems": problems, "lastRuns": runs}, indent=2))
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
        print("  environment:")
        _print_environment(info.get("environment") or {}, info.get("environmentFile"), " " * 4)
        for p in problems + ([info["problem"]] if info.get("problem") else []):
            print(f"  PROBLEM: {p}")
    for spec, run in sorted(runs.items()):
        print(f"  last run of {spec}: {run.get('result')} at {run.get('time')}"
              + (f" ({run.get('error')}: {run.get('message')})" if run.get("error") else ""))
    if not runs:
        print("  no run recorded yet")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Run the installed job once as the timer would; report how it went; its exit code."""
    from ..schedule.install import live, paths, show
    from ..schedule.installed import read
    from ..schedule.trial import run_installed

    job = read(paths(_root(args)))
    me = pwd.getpwuid(os.geteuid()).pw_name
    if job is not None and os.geteuid() != 0 and (job.user != me or (
            job.backend == "systemd" and live(_root(args)))):
        return _via_sudo(["schedule", "test", *_root_flag(args)])
    info = show(_root(args)) or {}
    print(f"running the scheduled job once, as {info.get('user')}, with:", file=sys.stderr)
    _print_environment(info.get("environment") or {}, info.get("environmentFile"))
    trial = run_installed(_root(args))
    runs = _last_results(trial.job.environment or None)
    print(f"scheduled job ({trial.how}): exit {trial.returncode}"
          + (" (ok)" if trial.returncode == 0 else " (FAILED: see the lines above and "
             "`allsky-tasks status`)") + (f"; {trial.detail}" if trial.detail else ""))
    for spec, run in sorted(runs.items()):
        print(f"  {spec}: {run.get('result')} at {run.get('time')}"
              + (f" ({run.get('error')}: {run.get('message')})" if run.get("error") else ""))
    return trial.returncode


def cmd_remove(args: argparse.Namespace) -> int:
    """Disable and delete the schedule."""
    from ..schedule.install import remove

    if _needs_sudo(args):
        return _via_sudo(["schedule", "remove", *_root_flag(args)])
    removed = remove(_root(args))
    print("\n".join(f"removed {r}" for r in removed) or "no schedule was installed")
    return 0


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `schedule`."""
    from ..schedule.units import DEFAULT_AT, DEFAULT_LOCK_WAIT

    p = subs.add_parser("schedule", help="install, show, test or remove the daily scheduled run",
                        description="A systemd timer + service (cron.d without systemd) that "
                                    "runs `allsky-tasks run --quiet` as the Allsky user. Run it "
                                    "as that user: it asks sudo to write root's files.")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, help_ in (("install", cmd_install, "check and write and enable the schedule"),
                              ("show", cmd_show, "the schedule, its environment, next run and "
                                                 "last results"),
                              ("test", cmd_test, "run the installed job once, as the timer "
                                                 "would; exit with its exit code"),
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
            a.add_argument("--user", help="run as this user (default: you; as root: whoever "
                                          "ran sudo, else the Allsky home's owner)")
            for flag, var in (("--home", "ALLSKY_HOME"), ("--backup-dir", "ALLSKY_BACKUP_DIR"),
                              ("--specs-dir", "ALLSKY_SPECS_DIR"), ("--images", "ALLSKY_IMAGES")):
                a.add_argument(flag, metavar="DIR", help=f"the job's {var} (default: {var}, "
                                                         "else the user's default)")
            a.add_argument("--backend", choices=("auto", "systemd", "cron"), default="auto",
                           help="auto: systemd when it runs, else cron")
            a.add_argument("--lock-wait", type=int, default=DEFAULT_LOCK_WAIT, metavar="S",
                           help=f"wait for another run this long (default {DEFAULT_LOCK_WAIT})")
        if name == "show":
            a.add_argument("--json", action="store_true", help="machine-readable output")

