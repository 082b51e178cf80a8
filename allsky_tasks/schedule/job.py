"""The scheduled job's user and paths, resolved for the Allsky user (never for root) and checked.

`sudo` resets HOME and drops ALLSKY_* variables, so nothing here reads root's home: `~` and
the defaults are the Allsky user's, and every path must exist for that user and be theirs
before a unit or cron line naming it is written.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..environment import PROJECT_DIR, default_backup_dir, spec_files
from ..errors import ScheduleError
from .units import refuse_control

SPECS_DEFAULT = "allsky-backup-specs"  # what `allsky-tasks init` makes in the user's home
@dataclass(frozen=True)
class Job:
    """Who runs the scheduled backup, and the paths it works with."""

    user: str
    uid: int
    gid: int
    user_home: Path
    home: Path
    backup_dir: Path
    specs_dir: Path
    images: Path | None = None

    def environment(self) -> tuple[tuple[str, str], ...]:
        """The ALLSKY_* variables the job runs with."""
        return (("ALLSKY_HOME", str(self.home)), ("ALLSKY_SPECS_DIR", str(self.specs_dir)),
                ("ALLSKY_BACKUP_DIR", str(self.backup_dir)),
                *((("ALLSKY_IMAGES", str(self.images)),) if self.images else ()))


def _user(name: str | None, environ: Mapping[str, str], home: str | None) -> pwd.struct_passwd:
    """The Allsky user: --user, else us when not root, else whoever ran sudo, else the home's owner."""
    if not name and os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    if not name and environ.get("SUDO_USER") not in (None, "", "root"):
        name = environ["SUDO_USER"]
    if not name and home:
        try:
            uid = os.stat(home).st_uid
            if uid != 0:
                return pwd.getpwuid(uid)
        except (OSError, KeyError):
            pass
    if not name:
        raise ScheduleError("running as root, and nothing says which user runs the backups",
                            hint="run `allsky-tasks schedule install` as the Allsky user (it "
                                 "asks sudo itself), or pass --user pi")
    try:
        return pwd.getpwnam(refuse_control("user", name))
    except KeyError:
        raise ScheduleError(f"no user {name!r} on this machine", hint="pass --user") from None


def _expand(value: str, user_home: str) -> Path:
    """A path as the Allsky user means it: `~` is their home, not root's."""
    if value == "~" or value.startswith("~/"):
        value = user_home + value[1:]
    return Path(os.path.expanduser(os.path.expandvars(value))).absolute()


def resolve(environ: Mapping[str, str], *, user: str | None = None, home: str | None = None,
            backup_dir: str | None = None, specs_dir: str | None = None,
            images: str | None = None) -> Job:
    """The job for the Allsky user: explicit values, else ALLSKY_*, else that user's defaults."""
    home = home or environ.get("ALLSKY_HOME") or None
    pw = _user(user, environ, home)
    at = pw.pw_dir
    home_path = _expand(home or "~/allsky", at)
    images = images or environ.get("ALLSKY_IMAGES") or None
    backups = backup_dir or environ.get("ALLSKY_BACKUP_DIR") or None
    specs = specs_dir or environ.get("ALLSKY_SPECS_DIR") or None
    if specs is None:
        own = Path(at) / SPECS_DEFAULT
        specs_path = own if os.path.isdir(own) else PROJECT_DIR / "backup_specs"
    else:
        specs_path = _expand(specs, at)
    return Job(user=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, user_home=Path(at), home=home_path,
               backup_dir=_expand(backups, at) if backups else default_backup_dir(home_path),
               specs_dir=specs_path, images=_expand(images, at) if images else None)


def _owner(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except KeyError:
        return f"uid {path.stat().st_uid}"


def _nearest(path: Path) -> Path:
    """The path itself, or its nearest folder that exists."""
    while not os.path.exists(path) and path != path.parent:
        path = path.parent
    return path


def ownership_problems(job: Job) -> list[str]:
    """Paths that belong to another user (root may own the specs folder, nothing else)."""
    problems = []
    for what, path, root_ok in (("ALLSKY_HOME", job.home, False),
                                ("ALLSKY_BACKUP_DIR", _nearest(job.backup_dir), False),
                                ("ALLSKY_SPECS_DIR", job.specs_dir, True)):
        try:
            uid = path.stat().st_uid
        except OSError:
            continue  # the access check names it
        if uid != job.uid and not (root_ok and uid == 0):
            problems.append(f"{what} {path} belongs to {_owner(path)}, not to {job.user}")
    return problems


# Run as the job's user with the job's interpreter: proves the interpreter and the package are
# reachable, and checks each path with that user's own rights.
_PROBE = r"""
import json, os, sys
import allsky_tasks
home, backups, specs = sys.argv[1:4]
out = []
def need(what, path, mode, kind):
    if not os.path.isdir(path):
        out.append(f"{what} {path} " + ("is not a folder" if os.path.exists(path) else "does not exist"))
    elif not os.access(path, mode):
        out.append(f"{what} {path} is not {kind} by this user")
need("ALLSKY_HOME", home, os.R_OK | os.X_OK, "readable")
need("ALLSKY_SPECS_DIR", specs, os.R_OK | os.X_OK, "readable")
b = backups
while not os.path.exists(b) and os.path.dirname(b) != b:
    b = os.path.dirname(b)
if not os.path.isdir(b) or not os.access(b, os.W_OK | os.X_OK):
    how = "written" if b == backups else f"created (in {b})"
    out.append(f"ALLSKY_BACKUP_DIR {backups} cannot be {how} by this user")
print(json.dumps(out))
"""


def access_problems(job: Job, python: str) -> list[str]:
    """What the job's user cannot reach, found by running the job's interpreter as that user."""
    if os.geteuid() not in (0, job.uid):
        return []  # cannot act as them; the ownership check still applies
    switch = {"user": job.uid, "group": job.gid,
              "extra_groups": os.getgrouplist(job.user, job.gid)} if os.geteuid() != job.uid else {}
    env = {"HOME": str(job.user_home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    try:
        proc = subprocess.run([python, "-c", _PROBE, str(job.home), str(job.backup_dir),
                               str(job.specs_dir)], env=env, cwd="/", capture_output=True,
                              text=True, timeout=120, **switch)  # type: ignore[call-overload]
    except OSError as e:
        return [f"the interpreter {python} cannot run allsky-tasks as {job.user}: "
                f"{e.strerror or e} (a venv below a folder {job.user} cannot enter, e.g. /root?)"]
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"the interpreter {python} cannot run allsky-tasks as {job.user}: {last} (a venv "
                f"below a folder {job.user} cannot enter, e.g. /root?)"]
    try:
        found = json.loads(proc.stdout)
    except ValueError:
        return [f"checking the paths as {job.user} printed {proc.stdout[:200]!r}"]
    return [str(p) for p in found] if isinstance(found, list) else []


def check(job: Job, python: str, specs: tuple[str, ...] = ()) -> None:
    """Refuse a job that would fail every night: raise one ScheduleError naming each problem."""
    for what, value in (("user", job.user), ("interpreter", python),
                        *((k, v) for k, v in job.environment()),
                        *(("spec", s) for s in specs)):
        refuse_control(what, value)
    problems = access_problems(job, python) + ownership_problems(job)
    if not problems:
        known = {p.stem for p in spec_files(job.specs_dir)}
        if not known:
            problems.append(f"ALLSKY_SPECS_DIR {job.specs_dir} holds no backup specs (*.yaml)")
        unknown = [s for s in specs if s not in known]
        if unknown and known:
            raise ScheduleError(f"no spec named {', '.join(unknown)} in {job.specs_dir}",
                                hint=f"known specs: {', '.join(sorted(known))}")
    if problems:
        raise ScheduleError("the scheduled run would fail: " + "; ".join(problems)
                            + "; nothing was written",
                            hint=f"the job runs as {job.user} with these paths; pass --user, "
                                 "--home, --backup-dir or --specs-dir (or run `allsky-tasks "
                                 "schedule install` in the Allsky user's own shell)")

