"""Install, show and remove the schedule: systemd units when systemd runs, else a cron.d file."""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ScheduleError
from . import installed
from .units import NAME, Plan, cron_file, next_run, service_unit, timer_unit

ROOT_ENV = "ALLSKY_SCHEDULE_ROOT"  # tests install below a temporary folder instead of /


def systemd_running() -> bool:
    """Whether this machine booted with systemd (as sd_booted() decides)."""
    return Path("/run/systemd/system").is_dir()


def paths(root: Path) -> dict[str, Path]:
    """Where the schedule's files go below `root` (normally /)."""
    units = root / "etc" / "systemd" / "system"
    return {"service": units / f"{NAME}.service", "timer": units / f"{NAME}.timer",
            "cron": root / "etc" / "cron.d" / NAME}


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a root-owned config file via a temporary name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(mode)
        os.replace(tmp, path)
    except PermissionError as e:
        raise ScheduleError(f"cannot write {path}: permission denied",
                            hint="run `allsky-tasks schedule install` as the Allsky user: it "
                                 "asks sudo to write root's files; the scheduled run itself "
                                 "runs as the Allsky user, not root") from e
    except OSError as e:
        raise ScheduleError(f"cannot write {path}: {e.strerror or e}") from e


def _systemctl(*args: str) -> None:
    """Run systemctl; its failure is a ScheduleError naming the command."""
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ScheduleError(f"`systemctl {' '.join(args)}` failed: "
                            f"{(proc.stderr or proc.stdout).strip()}")


def live(root: Path) -> bool:
    """Whether units written below `root` are the running system's (enable them)."""
    return root.resolve() == Path("/") and systemd_running()


def install(plan: Plan, root: Path, backend: str = "auto") -> dict[str, Any]:
    """Write the units (or the cron file) and enable them; what was done.

    Every file's text is made (and so checked) before the first one is written.
    """
    if backend == "auto":
        backend = "systemd" if systemd_running() else "cron"
    p = paths(root)
    if backend == "systemd":
        texts = {p["service"]: service_unit(plan), p["timer"]: timer_unit(plan)}
    elif backend == "cron":
        offset = random.SystemRandom().randrange(max(1, plan.random_delay // 60))
        texts = {p["cron"]: cron_file(plan, offset)}
    else:
        raise ScheduleError(f"unknown backend {backend!r}: use systemd, cron or auto")
    done: dict[str, Any] = {"backend": backend, "files": [str(f) for f in texts], "enabled": False}
    if backend == "cron" and (p["timer"].exists() or p["service"].exists()):
        remove(root)  # one schedule at a time
    for path, text in texts.items():
        _write(path, text)
    if backend == "systemd":
        p["cron"].unlink(missing_ok=True)
        if live(root):
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", f"{NAME}.timer")
            done["enabled"] = True
    else:
        done["enabled"] = True  # cron reads /etc/cron.d itself
    return done


def remove(root: Path) -> list[str]:
    """Disable and delete whatever schedule is installed; the files removed."""
    p = paths(root)
    if p["timer"].exists() and live(root):
        _systemctl("disable", "--now", f"{NAME}.timer")
    removed = []
    for key in ("timer", "service", "cron"):
        try:
            p[key].unlink()
            removed.append(str(p[key]))
        except FileNotFoundError:
            continue
        except PermissionError as e:
            raise ScheduleError(f"cannot remove {p[key]}: permission denied",
                                hint="run `allsky-tasks schedule remove` as the Allsky user: "
                                     "it asks sudo itself") from e
    if removed and live(root) and any(r.endswith((".timer", ".service")) for r in removed):
        _systemctl("daemon-reload")
    return removed


def _systemd_next() -> str | None:
    """systemd's own next elapse of the timer (random delay included), if it can tell."""
    if not shutil.which("systemctl"):
        return None
    proc = subprocess.run(["systemctl", "show", f"{NAME}.timer", "-p", "NextElapseUSecRealtime",
                           "--value"], capture_output=True, text=True, timeout=30)
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value and value != "n/a" else None


def show(root: Path, now: datetime | None = None) -> dict[str, Any] | None:
    """The installed schedule: backend, time, user, command, environment, next run; None if none."""
    now = now or datetime.now().astimezone()
    job = installed.read(paths(root))
    if job is None:
        return None
    info: dict[str, Any] = {"backend": job.backend, "files": job.files, "at": job.at,
                            "randomDelaySeconds": job.random_delay, "user": job.user,
                            "command": shlex.join(job.argv) if job.argv else None,
                            "environment": job.environment, "environmentFile": job.env_file}
    if job.problem:
        info["problem"] = job.problem
    info["systemdNext"] = _systemd_next() if job.backend == "systemd" and live(root) else None
    info["nextRun"] = next_run(job.at, now).isoformat(timespec="minutes") if job.at else None
    return info
