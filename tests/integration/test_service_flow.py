"""The service pause end to end: a real stand-in service, doit runs, signals."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site, gnu_tar_extract
from ..helpers.service_fixture import row_count, service_spec, standin_running, start_standin, started_pids, wait_until

DB = "config/myFiles/allsky.db"


def _spec(site: Site, name: str, service: dict, extra: str = "") -> None:
    """A config spec with the databases section and the given service mapping."""
    site.spec(name, f"type: config\nsections: {{databases: true}}\n{extra}"
                    f"service: {json.dumps(service)}\n")


def _run(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m allsky_tasks run ...` as an operator (or cron) would."""
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "run", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)


def _sidecar(site: Site) -> dict:
    """The sidecar of the only archive."""
    (archive,) = site.archives()
    return json.loads(sidecar_path(archive).read_text())


@pytest.mark.parametrize("pause", ["always", "never"])
@pytest.mark.parametrize("wal", [False, True], ids=["rollback", "wal"])
def test_database_captured_consistently_while_service_writes(site: Site, svc: Path, pause: str,
                                                             wal: bool, tmp_path: Path) -> None:
    db = site.home / DB
    start_standin(svc, db, wal=wal)
    wait_until(lambda: row_count(db) > 20, "rows from the stand-in")
    _spec(site, "db", service_spec(svc, db=db, wal=wal, pause=pause))
    before = row_count(db)
    proc = _run(site, "backup:db")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_until(lambda: standin_running(svc), "the service running again")
    after = row_count(db)
    meta = _sidecar(site)
    out = tmp_path / "out"
    gnu_tar_extract(site.archives()[0], out)
    con = sqlite3.connect(out / DB)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    rows = con.execute("SELECT count(*) FROM frames").fetchone()[0]
    assert before <= rows <= after
    assert not (out / f"{DB}-wal").exists()
    service = meta["allskyTasks"]["service"]
    assert service["stopped"] is (pause == "always")
    assert service["was_running"] in (True, None)
    assert meta["allskyTasks"]["databases"][0]["integrity"] == "ok"
    if pause == "always":
        assert service["restarted"] is True and service["paused_seconds"] >= 0


def test_service_stopped_before_backup_stays_stopped(site: Site, svc: Path) -> None:
    _spec(site, "db", service_spec(svc, pause="always"))
    proc = _run(site, "backup:db")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not standin_running(svc)
    assert _sidecar(site)["allskyTasks"]["service"]["was_running"] is False


def test_pack_failure_still_restarts_service(site: Site, svc: Path) -> None:
    start_standin(svc)
    victim = site.home / "config" / "myFiles" / "db_data.json"
    service = service_spec(svc, pause="always")
    # The stop command also swaps a selected file for a symlink, as a meddling process
    # might: pack must refuse to follow it and fail, and the service must come back.
    service["commands"]["stop"] = ["sh", "-c", f"{shlex.join(service['commands']['stop'])}"
                                   f" && rm {victim} && ln -s /etc/hostname {victim}"]
    site.spec("db", f"type: config\nsections: {{databases: true}}\n"
                    f"service: {json.dumps(service)}\n")
    proc = _run(site, "backup:db")
    assert proc.returncode == 14, proc.stdout + proc.stderr
    assert "db_data.json: is a symbolic link" in proc.stdout and "while opening it to pack" in proc.stdout
    assert standin_running(svc)
    assert site.archives() == []


def test_not_enough_space_refuses_before_stopping_anything(site: Site, svc: Path,
                                                          tmp_path: Path) -> None:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        start_standin(svc)
        site.spec("db", f"type: config\nsections: {{databases: true}}\ndestination: {mount}\n"
                        f"service: {json.dumps(service_spec(svc, pause='always'))}\n")
        proc = _run(site, "backup:db")
        assert proc.returncode == 12, proc.stdout + proc.stderr
        assert "[SpaceError]" in proc.stdout and str(mount) in proc.stdout
        assert standin_running(svc) and len(started_pids(svc)) == 1  # never stopped
        assert [p.name for p in mount.iterdir()] in ([], [".allsky-tasks.lock"])
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def _slow_spec(site: Site, svc: Path) -> None:
    """A spec whose pack takes seconds: incompressible data at zstd level 19."""
    (site.home / "darks" / "big.raw").write_bytes(os.urandom(48 << 20))
    site.spec("slow", "type: config\nsections: {databases: true, darks: true}\nlevel: 19\n"
                      f"service: {json.dumps(service_spec(svc, pause='always'))}\n")


def _start_slow_backup(site: Site, svc: Path) -> subprocess.Popen[str]:
    """Start a backup and return once it is packing with the service stopped."""
    start_standin(svc)
    _slow_spec(site, svc)
    proc = subprocess.Popen([sys.executable, "-m", "allsky_tasks", "run", "backup:slow"],
                            cwd=site.root, env=site.environ(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    dest = site.env.backup_dir
    wait_until(lambda: not standin_running(svc) and dest.exists()
               and any(p.name.endswith(".part") for p in dest.iterdir()), "pack under way", 120)
    return proc


def test_sigterm_mid_pack_restarts_service_and_leaves_no_archive(site: Site, svc: Path) -> None:
    proc = _start_slow_backup(site, svc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "pack interrupted (received SIGTERM)" in out and "Traceback" not in out
    assert standin_running(svc), out
    dest = site.env.backup_dir
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]
    assert site.archives() == []
    assert not (dest / ".allsky-tasks" / "service-paused.json").exists()


def test_sigkill_mid_pack_is_recovered_by_the_next_run(site: Site, svc: Path) -> None:
    proc = _start_slow_backup(site, svc)
    proc.kill()
    proc.wait(timeout=60)
    marker = site.env.backup_dir / ".allsky-tasks" / "service-paused.json"
    assert marker.exists() and not standin_running(svc)
    (site.home / "darks" / "big.raw").write_bytes(b"small now")  # let the next run be quick
    again = _run(site, "backup:slow")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "was left stopped by an interrupted backup" in again.stdout + again.stderr
    assert again.stdout.count("was left stopped by an interrupted backup") == 1  # summary
    assert standin_running(svc) and not marker.exists()
    assert len(site.archives()) == 1
    assert not [p for p in site.env.backup_dir.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("start", ["null", "matching"])
def test_a_leftover_marker_naming_a_live_unrelated_pid_is_recovered(site: Site, svc: Path,
                                                                    start: str) -> None:
    # The killed run's pid now belongs to some live process (pid reuse, a reboot): the
    # destination lock, not the pid, says no run is active, so the next run recovers.
    proc = _start_slow_backup(site, svc)
    proc.kill()
    proc.wait(timeout=60)
    marker = site.env.backup_dir / ".allsky-tasks" / "service-paused.json"
    assert marker.exists() and not standin_running(svc)
    unrelated = subprocess.Popen(["sleep", "300"])
    try:
        stat = Path(f"/proc/{unrelated.pid}/stat").read_text()
        data = json.loads(marker.read_text())
        data.update(pid=unrelated.pid, pid_start=int(stat[stat.rindex(")") + 2:].split()[19])
                    if start == "matching" else None)
        marker.write_text(json.dumps(data))
        (site.home / "darks" / "big.raw").write_bytes(b"small now")  # let the next run be quick
        again = _run(site, "backup:slow")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "was left stopped by an interrupted backup" in again.stdout + again.stderr
        assert standin_running(svc) and not marker.exists()
        assert len(site.archives()) == 1
    finally:
        unrelated.kill()
        unrelated.wait()


def test_service_that_will_not_stop_aborts_with_exit_15(site: Site, svc: Path) -> None:
    start_standin(svc)
    _spec(site, "db", service_spec(svc, refuse_stop=True, timeout=5))
    proc = _run(site, "backup:db")
    assert proc.returncode == 15, proc.stdout + proc.stderr
    assert "could not stop service standin" in proc.stdout
    assert standin_running(svc)
    assert site.archives() == []


def test_service_that_will_not_start_exits_16_and_keeps_the_archive(site: Site,
                                                                    svc: Path) -> None:
    start_standin(svc)
    _spec(site, "db", service_spec(svc, refuse_start=True, timeout=5))
    proc = _run(site, "backup:db")
    assert proc.returncode == 16, proc.stdout + proc.stderr
    assert "could not be started again" in proc.stdout
    (archive,) = site.archives()
    assert sidecar_path(archive).exists()
    # The marker stays, so the next run retries the start.
    assert (site.env.backup_dir / ".allsky-tasks" / "service-paused.json").exists()
