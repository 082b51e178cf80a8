"""A scheduled run that fails for any reason still leaves its record, a WebUI message and an
unhealthy `status`; no specs is an error; two runs at once never race over the state."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.service.lock import RUN_LOCK_NAME

from ..conftest import Site
from ..helpers.service_fixture import kill_standins, service_spec, standin_running, start_standin

CONFIG = "type: config\nservice: {pause: never}\n"


def _cli(site: Site, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env={**site.environ(), **(env or {})}, text=True,
                          capture_output=True, timeout=300)


def _record(site: Site, spec: str) -> dict:
    return json.loads((site.env.state_dir / "runs" / f"{spec}.json").read_text())


def _messages(site: Site) -> str:
    path = site.home / "config" / "messages.txt"
    return path.read_text() if path.exists() else ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file another user owns")
def test_a_failed_recover_reaches_the_record_the_webui_and_status(site: Site) -> None:
    site.spec("cfg", CONFIG)
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    # A restore journal another user planted (or left): recover refuses to act on it.
    journal = site.env.state_dir / "restore-journal.json"
    journal.write_text(json.dumps({"pid": 1 << 22, "archive": "x", "members": []}))
    os.chown(journal, 12345, 12345)
    proc = _cli(site, "run", "--quiet", "backup:cfg")
    assert proc.returncode == 27, proc.stdout + proc.stderr
    record = _record(site, "cfg")
    assert record["result"] == "failed" and record["error"] == "UnsafePathError"
    assert "restore-journal.json" in record["message"] and "uid 12345" in record["message"]
    assert "backup cfg failed (UnsafePathError)" in _messages(site)
    status = _cli(site, "status", "cfg")
    assert status.returncode == 26 and "restore-journal.json" in status.stdout


def test_a_traceback_in_doit_still_records_the_run_and_tells_the_webui(site: Site) -> None:
    site.spec("cfg", CONFIG)
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    site.env.dep_file.write_bytes(b"this is not a database, a torn write on the SD card" * 100)
    proc = _cli(site, "run", "--quiet", "backup:cfg")
    assert proc.returncode == 3 and "Traceback" in proc.stderr  # doit's own
    record = _record(site, "cfg")
    assert record["result"] == "failed" and record["error"] == "DatabaseException"
    assert str(site.env.dep_file) in record["message"]
    assert "file is not a database" in record["message"]
    assert "backup cfg failed (DatabaseException): " in _messages(site)
    assert _cli(site, "status").returncode == 26
    run = json.loads((site.env.state_dir / "runs" / ".last-run.json").read_text())
    assert run["result"] == "failed" and run["exitCode"] == 3


def test_no_specs_is_an_error_for_run_and_unhealthy_for_status(site: Site, tmp_path: Path) -> None:
    gone = {"ALLSKY_SPECS_DIR": str(tmp_path / "moved-away")}
    proc = _cli(site, "run", "--quiet", env=gone)
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert "moved-away" in proc.stderr and "does not exist" in proc.stderr
    assert "allsky-tasks init" in proc.stderr and "Traceback" not in proc.stderr
    assert "the backup run failed (SpecError)" in _messages(site)
    status = _cli(site, "status", "--json", env=gone)
    assert status.returncode == 26
    data = json.loads(status.stdout)
    assert data["healthy"] is False and data["specs"] == []
    assert any("no backup specs" in p for p in data["problems"])
    # An empty folder is the same.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(site, "run", env={"ALLSKY_SPECS_DIR": str(empty)}).returncode == 10
    assert _cli(site, "status", env={"ALLSKY_SPECS_DIR": str(empty)}).returncode == 26
    # `run list` runs no backup: no error.
    assert _cli(site, "run", "list", env=gone).returncode == 0


def test_a_held_run_lock_stops_the_second_run_before_it_touches_any_state(site: Site) -> None:
    site.spec("cfg", CONFIG)
    site.env.state_dir.mkdir(parents=True)
    fd = os.open(site.env.state_dir / RUN_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        proc = _cli(site, "run", "--quiet", "backup:cfg")
        assert proc.returncode == 13, proc.stdout + proc.stderr
        assert "LockError" in proc.stderr and "pid 4242" in proc.stderr
        assert not (site.env.state_dir / "specs" / "cfg").exists()  # nothing of the spec touched
        proc = _cli(site, "run", "--quiet", "--lock-wait", "1", "backup:cfg")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _record(site, "cfg")["result"] == "skipped"
        assert not (site.env.state_dir / "specs" / "cfg").exists()
    finally:
        os.close(fd)
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0


def test_two_runs_at_once_end_in_a_clean_lock_error_never_a_scan_error(site: Site) -> None:
    site.spec("cfg", CONFIG)
    site.spec("other", CONFIG)
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "allsky_tasks", "run", "--quiet"],
                                  cwd=site.root, env=site.environ(), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        for p in procs:
            p.stdout.close()  # type: ignore[union-attr]
            p.stderr.close()  # type: ignore[union-attr]
        codes = sorted(code for code, _ in results)
        assert codes in ([0, 0], [0, 13]), results
        assert not any("ScanError" in err or "scan.jsonl.part" in err for _, err in results)
        (site.home / "config" / "settings.json").touch()  # something new for the next round


def test_resume_judges_the_service_only_by_this_run_s_pause(site: Site, tmp_path: Path) -> None:
    svc = tmp_path / "svc"
    svc.mkdir()
    start_standin(svc)
    try:
        site.spec("db", f"type: config\nservice: {json.dumps(service_spec(svc))}\n")
        # A run that packs (stopping and starting the service) but ends before resume...
        assert _cli(site, "run", "--quiet", "pack:db").returncode == 0
        assert standin_running(svc)
        # ... then the operator stops Allsky. The next run packs nothing, stops nothing.
        subprocess.run(service_spec(svc)["commands"]["stop"], check=True, timeout=60)
        proc = _cli(site, "run", "--quiet", "backup:db")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not standin_running(svc)  # left as the operator left it
        assert _record(site, "db")["result"] == "ok"
    finally:
        kill_standins(svc)
