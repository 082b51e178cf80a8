"""schedule install|show|remove and status: real unit files checked by systemd-analyze, a cron
line that really runs, and status exit codes."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.schedule.units import parse_cron

from ..conftest import Site


def _cli(site: Site, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env={**site.environ(), **(env or {})}, text=True,
                          capture_output=True, timeout=300)


def _me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def test_systemd_units_are_valid_and_run_as_the_allsky_user(site: Site, tmp_path: Path) -> None:
    site.spec("cfg", "type: config\n")
    site.spec("nights", "type: images\nfolders: {last: 1}\n")
    root = tmp_path / "root"
    proc = _cli(site, "schedule", "install", "--root", str(root), "--backend", "systemd",
                "--spec", "cfg", "--at", "09:45", "--user", _me())
    assert proc.returncode == 0, proc.stderr
    units = root / "etc" / "systemd" / "system"
    service = (units / "allsky-tasks.service").read_text()
    timer = (units / "allsky-tasks.timer").read_text()
    assert f"\nUser={_me()}\n" in service and "\nType=oneshot\n" in service
    for key, value in (("ALLSKY_HOME", site.home), ("ALLSKY_SPECS_DIR", site.env.specs_dir),
                       ("ALLSKY_BACKUP_DIR", site.env.backup_dir)):
        assert f'\nEnvironment="{key}={value}"\n' in service
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M).group(1)
    assert shlex.split(exec_start) == [sys.executable, "-m", "allsky_tasks", "run", "--quiet",
                                       "--lock-wait", "3600", "backup:cfg"]
    assert "\nOnCalendar=*-*-* 09:45:00\n" in timer and "\nPersistent=true\n" in timer
    assert "\nRandomizedDelaySec=1800\n" in timer and "\nWantedBy=timers.target\n" in timer
    analyze = shutil.which("systemd-analyze")
    if analyze:
        check = subprocess.run([analyze, "verify", str(units / "allsky-tasks.timer"),
                                str(units / "allsky-tasks.service")],
                               capture_output=True, text=True, timeout=120)
        # It exits 0 on settings it ignores, so its complaints on stderr count too.
        assert check.returncode == 0 and check.stderr.strip() == "", check.stderr
    show = _cli(site, "schedule", "show", "--root", str(root))
    assert "daily at 09:45" in show.stdout and "next run: " in show.stdout
    assert "no run recorded yet" in show.stdout
    data = json.loads(_cli(site, "schedule", "show", "--root", str(root), "--json").stdout)
    assert data["schedule"]["nextRun"].split("T")[1].startswith("09:45")
    removed = _cli(site, "schedule", "remove", "--root", str(root))
    assert removed.returncode == 0 and not list(units.iterdir())
    assert "no schedule installed" in _cli(site, "schedule", "show", "--root", str(root)).stdout


def test_systemd_analyze_catches_a_broken_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("no systemd-analyze here")
    timer = tmp_path / "x.timer"
    timer.write_text("[Timer]\nOnCalendar=*-*-* 25:99:00\nPersistent=true\n")
    check = subprocess.run([analyze, "verify", str(timer)], capture_output=True, text=True)
    assert check.returncode != 0 or check.stderr.strip()  # the check above can fail


def test_cron_fallback_line_parses_and_runs_the_backup(site: Site, tmp_path: Path) -> None:
    site.spec("cfg", "type: config\n")
    root = tmp_path / "root"
    proc = _cli(site, "schedule", "install", "--root", str(root), "--backend", "cron",
                "--spec", "cfg", "--at", "23:50", "--user", _me())
    assert proc.returncode == 0, proc.stderr
    text = (root / "etc" / "cron.d" / "allsky-tasks").read_text()
    parsed = parse_cron(text)
    assert parsed is not None and parsed["user"] == _me()
    # 23:50 plus a random offset under 30 min, wrapping past midnight.
    minutes = (parsed["hour"] * 60 + parsed["minute"] - (23 * 60 + 50)) % 1440
    assert 0 <= minutes < 30
    assert parsed["environment"] == {"ALLSKY_HOME": str(site.home),
                                     "ALLSKY_SPECS_DIR": str(site.env.specs_dir),
                                     "ALLSKY_BACKUP_DIR": str(site.env.backup_dir)}
    assert parsed["argv"][-4:] == ["--quiet", "--lock-wait", "3600", "backup:cfg"]
    # The command cron would run, run by sh as cron does (without our environment).
    line = next(ln for ln in text.splitlines() if ln[:1].isdigit())
    command = line.split(None, 6)[6].replace("\\%", "%")
    # cron gives a job PATH and the user's HOME (here a folder of the test: the run keeps its
    # authentication key there, never in the real home).
    run = subprocess.run(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin",
                                                         "HOME": str(site.root)},
                         capture_output=True, text=True, timeout=300, cwd="/")
    assert run.returncode == 0, run.stderr
    assert len(site.archives()) == 1
    show = _cli(site, "schedule", "show", "--root", str(root))
    assert "cron schedule" in show.stdout and "last run of cfg: ok" in show.stdout


def test_bad_time_and_unknown_spec_are_schedule_errors(site: Site, tmp_path: Path) -> None:
    site.spec("cfg", "type: config\n")
    proc = _cli(site, "schedule", "install", "--root", str(tmp_path), "--at", "25:00")
    assert proc.returncode == 25 and "HH:MM" in proc.stderr
    proc = _cli(site, "schedule", "install", "--root", str(tmp_path), "--spec", "nope",
                "--user", _me())
    assert proc.returncode == 25 and "no spec named nope" in proc.stderr


def test_status_exits_26_when_the_newest_verified_config_backup_is_stale(site: Site) -> None:
    site.spec("cfg", "type: config\n")
    proc = _cli(site, "status")
    assert proc.returncode == 26 and "no backup of this spec yet" in proc.stdout
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    proc = _cli(site, "status", "--json")
    assert proc.returncode == 0, proc.stdout
    data = json.loads(proc.stdout)
    (spec,) = data["specs"]
    assert data["healthy"] and spec["last_run"]["result"] == "ok"
    assert spec["newest_verified"] == site.archives()[0].name
    assert any("No pinned" in w for w in data["warnings"])
    assert any("same filesystem" in w for w in data["warnings"])
    proc = _cli(site, "status", "--max-age-hours", "0")
    assert proc.returncode == 26 and "stale: the newest verified backup" in proc.stdout


def test_status_exits_26_after_a_failed_run(site: Site) -> None:
    site.spec("cfg", "type: config\n")
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    site.spec("cfg", "type: config\nsections: {nosuch: true}\n")
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 10
    proc = _cli(site, "status", "--json")
    assert proc.returncode == 26
    (spec,) = json.loads(proc.stdout)["specs"]
    assert spec["last_run"]["result"] == "failed" and spec["last_run"]["error"] == "SpecError"


def test_status_shows_each_spec_s_next_scheduled_run(site: Site, tmp_path: Path) -> None:
    site.spec("cfg", "type: config\n")
    site.spec("other", "type: config\n")
    root = tmp_path / "root"
    assert _cli(site, "schedule", "install", "--root", str(root), "--backend", "systemd",
                "--spec", "cfg", "--user", _me()).returncode == 0
    data = json.loads(_cli(site, "status", "--json", "--root", str(root)).stdout)
    by = {s["spec"]: s for s in data["specs"]}
    assert by["cfg"]["next_run"] == data["nextRun"] and "T10:30" in data["nextRun"]
    assert by["other"]["next_run"] is None
    assert any("not in the schedule" in w for w in by["other"]["warnings"])
