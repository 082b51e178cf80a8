"""Install, show and remove the schedule: systemd units when systemd runs, else a cron.d file."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ScheduleError
from .units import NAME, Plan, cron_file, next_run, parse_cron, service_unit, timer_unit

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
                            hint="install the schedule as root: `sudo allsky-tasks schedule "
                                 "install ...`; the scheduled run itself runs as the Allsky "
                                 "user, not root") from e
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
    """Write the units (or the cron file) and enable them; what was done."""
    if backend == "auto":
        backend = "systemd" if systemd_running() else "cron"
    p = paths(root)
    done: dict[str, Any] = {"backend": backend, "files": [], "enabled": False}
    if backend == "systemd":
        _write(p["service"], service_unit(plan))
        _write(p["timer"], timer_unit(plan))
        done["files"] = [str(p["service"]), str(p["timer"])]
        p["cron"].unlink(missing_ok=True)
        if live(root):
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", f"{NAME}.timer")
            done["enabled"] = True
    elif backend == "cron":
        if p["timer"].exists() or p["service"].exists():
            remove(root)  # one schedule at a time
        offset = random.SystemRandom().randrange(max(1, plan.random_delay // 60))
        _write(p["cron"], cron_file(plan, offset))
        done["files"] = [str(p["cron"])]
        done["enabled"] = True  # cron reads /etc/cron.d itself
    else:
        raise ScheduleError(f"unknown backend {backend!r}: use systemd, cron or auto")
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
                                hint="run it as root: `sudo allsky-tasks schedule remove`") from e
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
    """The installed schedule: backend, time, user, command, next run; None if none."""
    now = now or datetime.now().astimezone()
    p = paths(root)
    if p["timer"].exists():
        timer, service = p["timer"].read_text(), p["service"].read_text() if p[
            "service"].exists() else ""
        m = re.search(r"^OnCalendar=\*-\*-\* (\d\d):(\d\d):00$", timer, re.M)
        at = f"{m.group(1)}:{m.group(2)}" if m else None
        delay = re.search(r"^RandomizedDelaySec=(\d+)$", timer, re.M)
        user = re.search(r"^User=(.*)$", service, re.M)
        cmd = re.search(r"^ExecStart=(.*)$", service, re.M)
        info: dict[str, Any] = {"backend": "systemd", "files": [str(p["service"]), str(p["timer"])], "at": at,
                "randomDelaySeconds": int(delay.group(1)) if delay else 0,
                "user": user.group(1) if user else None, "command": cmd.group(1) if cmd else None}
        info["systemdNext"] = _systemd_next() if live(root) else None
    elif p["cron"].exists():
        parsed = parse_cron(p["cron"].read_text())
        if parsed is None:
            return {"backend": "cron", "files": [str(p["cron"])], "at": None, "problem":
                    "no schedule line found"}
        at = f"{parsed['hour']:02d}:{parsed['minute']:02d}"
        info = {"backend": "cron", "files": [str(p["cron"])], "at": at, "randomDelaySeconds": 0,
                "user": parsed["user"], "command": " ".join(parsed["argv"])}
    else:
        return None
    info["nextRun"] = next_run(info["at"], now).isoformat(timespec="minutes") if info["at"] else None
    return info
