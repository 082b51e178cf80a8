"""`schedule test`: run the installed job once, exactly as the timer (or cron) would start it."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScheduleError
from .install import live, paths
from .installed import CRON_PATH, SYSTEMD_PATH, Installed, env_file_values, read
from .units import NAME


@dataclass
class Trial:
    """How one run of the installed job went."""

    job: Installed
    returncode: int
    how: str  # what was started, for the operator
    detail: str = ""


def _account(job: Installed) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(job.user or "")
    except KeyError:
        raise ScheduleError(f"the installed job runs as {job.user!r}, who does not exist here",
                            hint="install it again: allsky-tasks schedule install") from None


def job_environment(job: Installed, pw: pwd.struct_passwd) -> dict[str, str]:
    """The environment the job starts with: what systemd (or cron) gives, then the job's own."""
    if job.backend == "systemd":
        base = {"PATH": SYSTEMD_PATH, "HOME": pw.pw_dir, "USER": pw.pw_name,
                "LOGNAME": pw.pw_name, "SHELL": pw.pw_shell or "/bin/sh", "LANG": "C.UTF-8"}
        return {**base, **job.environment, **env_file_values(job.env_file)}
    # cron: its own few variables; the line itself sources the env file and sets the rest
    return {"PATH": CRON_PATH, "HOME": pw.pw_dir, "LOGNAME": pw.pw_name, "SHELL": "/bin/sh"}


def job_command(job: Installed) -> tuple[list[str], str]:
    """argv and working folder, as systemd (a system unit: /) or cron (the user's home) runs it."""
    if job.backend == "systemd":
        return job.argv, "/"
    assert job.cron_command is not None
    return ["/bin/sh", "-c", job.cron_command], ""


def run_installed(root: Path) -> Trial:
    """Start the installed job once as its user, wait for it, and say how it ended."""
    job = read(paths(root))
    if job is None:
        raise ScheduleError("no schedule installed", hint="allsky-tasks schedule install")
    if job.problem:
        raise ScheduleError(f"the installed schedule is broken: {job.problem}",
                            hint="install it again: allsky-tasks schedule install")
    if job.backend == "systemd" and live(root):
        return _via_systemd(job)
    pw = _account(job)
    if os.geteuid() not in (0, pw.pw_uid):
        raise ScheduleError(f"the job runs as {pw.pw_name}: run `schedule test` as {pw.pw_name} "
                            "or as root")
    argv, cwd = job_command(job)
    switch = {} if os.geteuid() == pw.pw_uid else {
        "user": pw.pw_uid, "group": pw.pw_gid,
        "extra_groups": os.getgrouplist(pw.pw_name, pw.pw_gid)}
    try:
        proc = subprocess.run(argv, env=job_environment(job, pw), cwd=cwd or pw.pw_dir,
                              **switch)  # type: ignore[call-overload]
    except OSError as e:
        return Trial(job, 127, argv[0], f"could not start: {e.strerror or e}")
    how = "the unit's ExecStart" if job.backend == "systemd" else "the cron line, by /bin/sh,"
    return Trial(job, int(proc.returncode), f"{how} as {pw.pw_name}")


def _via_systemd(job: Installed) -> Trial:
    """systemd runs it: `systemctl start` waits for a oneshot unit to finish."""
    if os.geteuid() != 0:
        raise ScheduleError("starting the systemd unit needs root",
                            hint="run `allsky-tasks schedule test` as the Allsky user: it asks "
                                 "sudo itself")
    service = f"{NAME}.service"
    start = subprocess.run(["systemctl", "start", service], capture_output=True, text=True)
    shown = subprocess.run(["systemctl", "show", service, "-p", "ExecMainStatus", "--value"],
                           capture_output=True, text=True, timeout=30)
    status = shown.stdout.strip()
    code = int(status) if status.isdigit() else (1 if start.returncode else 0)
    return Trial(job, code, f"systemctl start {service}",
                 (start.stderr or "").strip() + f" (journal: journalctl -u {service})")
