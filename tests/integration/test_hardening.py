"""Issue 16 end to end: recovery in every run, lock order, forged markers, through real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site
from ..helpers.service_fixture import service_spec, standin_running, start_standin
from .test_service_flow import _run, _start_slow_backup

MARKER = Path(".allsky-tasks") / "service-paused.json"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_pack_then_broken_spec_still_restarts_the_service(site: Site, svc: Path) -> None:
    proc = _start_slow_backup(site, svc)
    proc.kill()
    proc.wait(timeout=60)
    marker = site.env.backup_dir / MARKER
    assert marker.exists() and not standin_running(svc)
    spec = site.env.specs_dir / "slow.yaml"
    spec.write_text(spec.read_text() + "folders: {last: -3}\nbogus: true\n")  # schema errors
    again = _run(site, "backup:slow")
    assert again.returncode == 10, again.stdout + again.stderr
    assert "was left stopped by an interrupted backup" in again.stdout
    assert standin_running(svc) and not marker.exists()


def test_recovery_does_not_depend_on_the_spec_that_left_the_marker(site: Site, svc: Path) -> None:
    proc = _start_slow_backup(site, svc)
    proc.kill()
    proc.wait(timeout=60)
    (site.env.specs_dir / "slow.yaml").unlink()  # gone; its service is found by the marker's unit
    site.spec("other", "type: config\nservice: {pause: never}\n")
    # The default commands (systemctl) cannot start the stand-in: a spec of that unit can.
    site.spec("standin-unit", "type: config\n"
                              f"service: {json.dumps(service_spec(svc, pause='never'))}\n")
    marker = site.env.backup_dir / MARKER
    data = json.loads(marker.read_text())
    data["spec"] = "standin-unit"
    marker.write_text(json.dumps(data))
    again = _run(site, "backup:other")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started it again" in again.stdout
    assert standin_running(svc) and not marker.exists()


def test_forged_marker_in_the_backup_folder_runs_nothing(site: Site, svc: Path, tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    site.spec("db", "type: config\nsections: {databases: true}\n"
                    f"service: {json.dumps(service_spec(svc, pause='always'))}\n")
    state = site.env.backup_dir / ".allsky-tasks"
    state.mkdir(parents=True)
    evil = ["sh", "-c", f"touch {pwned}"]
    (state / "service-paused.json").write_text(json.dumps(
        {"unit": "standin", "spec": "db", "pid": _dead_pid(),
         "commands": {"start": evil, "stop": evil, "status": evil}}))
    proc = _run(site, "backup:db")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not pwned.exists()
    assert standin_running(svc)  # started by the spec's own command, then paused and resumed


def test_foreign_marker_fails_every_run_and_says_why(site: Site, svc: Path) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    state = site.env.backup_dir / ".allsky-tasks"
    state.mkdir(parents=True)
    marker = state / "service-paused.json"
    marker.write_text(json.dumps({"unit": "allsky", "pid": _dead_pid()}))
    os.chown(marker, 4321, 4321)
    proc = _run(site, "backup:cfg")
    assert proc.returncode == 27, proc.stdout + proc.stderr
    assert "owned by uid 4321" in proc.stdout and str(marker) in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr and site.archives() == []


def test_second_run_does_not_wipe_the_first_runs_work(site: Site, svc: Path) -> None:
    first = _start_slow_backup(site, svc)
    work = site.env.backup_dir / ".allsky-tasks" / "specs" / "slow" / "work"
    before = sorted(p.name for p in work.rglob("*"))
    second = _run(site, "backup:slow")
    assert second.returncode == 13, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stdout or "another backup run" in second.stdout
    assert set(before) <= {p.name for p in work.rglob("*")}
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    (archive,) = site.archives()
    assert sidecar_path(archive).exists() and standin_running(svc)
