"""Hardening end to end: recovery in every run, lock order, forged markers, through real runs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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
    # The first run's own temporary files (SQLite capture copies, .part names) come and go as
    # it works; its job folders must survive the second run.
    def lasting() -> set[str]:
        return {p.name for p in work.rglob("*")
                if ".capture" not in p.name and ".part" not in p.name}

    before = lasting()
    assert before, "the first run has a work folder"
    second = _run(site, "backup:slow")
    assert second.returncode == 13, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stdout or "another backup run" in second.stdout
    assert before <= lasting()
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    (archive,) = site.archives()
    assert sidecar_path(archive).exists() and standin_running(svc)


# --- sources that turn into FIFOs: nothing blocks, the service comes back ---

def _fifo_swap_spec(site: Site, svc: Path, victim: Path, on_file_error: str = "fail") -> None:
    """A spec whose stop command swaps a selected file for a FIFO (between scan and pack)."""
    service = service_spec(svc, pause="always")
    service["commands"]["stop"] = ["sh", "-c", f"{shlex.join(service['commands']['stop'])}"
                                   f" && rm {victim} && mkfifo {victim}"]
    site.spec("db", f"type: config\nsections: {{databases: true}}\non_file_error: {on_file_error}\n"
                    f"service: {json.dumps(service)}\n")


def test_config_file_swapped_for_a_fifo_fails_pack_and_restarts(site: Site, svc: Path) -> None:
    start_standin(svc)
    victim = site.home / "config" / "myFiles" / "db_data.json"
    _fifo_swap_spec(site, svc, victim)
    proc = _run(site, "backup:db")  # the helper's timeout fails the test if pack blocks
    assert proc.returncode == 14, proc.stdout + proc.stderr
    assert f"{victim}: is no longer a regular file" in proc.stdout
    assert standin_running(svc) and site.archives() == []


def test_fifo_swapped_in_with_warn_is_left_out(site: Site, svc: Path) -> None:
    start_standin(svc)
    victim = site.home / "config" / "myFiles" / "db_data.json"
    _fifo_swap_spec(site, svc, victim, on_file_error="warn")
    proc = _run(site, "backup:db")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is no longer a regular file" in proc.stdout
    (archive,) = site.archives()
    assert "config/myFiles/db_data.json" not in json.dumps(
        [r["path"] for r in json.loads(sidecar_path(archive).read_text())["allskyTasks"]["manifest"]])
    assert standin_running(svc)


@pytest.mark.parametrize("name", ["version", "variables.json"])
def test_optional_install_file_as_fifo_never_blocks(site: Site, name: str) -> None:
    path = site.home / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    proc = _run(site, "backup:cfg")
    if name == "version":
        # Read without blocking, and refused at validate: restore refuses a config backup of
        # an unknown version, so none is written.
        assert proc.returncode == 10, proc.stdout + proc.stderr
        assert "cannot read the Allsky version" in proc.stdout and site.archives() == []
        return
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(site.archives()) == 1


def test_max_pause_stops_pack_and_restarts_the_service(site: Site, svc: Path) -> None:
    start_standin(svc)
    (site.home / "darks" / "big.raw").write_bytes(os.urandom(48 << 20))
    service = service_spec(svc, pause="always")
    service["max_pause"] = 0.5
    site.spec("slow", "type: config\nsections: {databases: true, darks: true}\nlevel: 19\n"
                      f"service: {json.dumps(service)}\n")
    proc = _run(site, "backup:slow")
    assert proc.returncode == 14, proc.stdout + proc.stderr
    assert "service.max_pause" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert standin_running(svc) and site.archives() == []
    assert not [p for p in site.env.backup_dir.iterdir() if p.name.endswith(".part")]
    assert not (site.env.backup_dir / MARKER).exists()


# --- every file of the state and backup folders: never through a link ---

STATE_FILES = ["spec.json", "scan.jsonl", "scan.json", "fingerprint", "plan.json", "pack.json",
               "manifest.json", "verify.json"]


@pytest.mark.parametrize("name", STATE_FILES + ["../../spec-docs.json", "sidecar", "scan.jsonl.part"])
def test_state_file_planted_as_symlink_is_never_written_through(site: Site, tmp_path: Path,
                                                              name: str) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    first = _run(site, "backup:cfg")
    assert first.returncode == 0, first.stdout + first.stderr
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    st = site.env.backup_dir / ".allsky-tasks" / "specs" / "cfg"
    if name == "sidecar":
        (archive,) = site.archives()
        path = sidecar_path(archive)
        archive.unlink()  # the next run packs again and writes a sidecar of its own
    else:
        path = st / name
    path.unlink(missing_ok=True)
    path.symlink_to(victim)
    (site.home / "config" / "overlay" / "new-file.txt").parent.mkdir(parents=True, exist_ok=True)
    (site.home / "config" / "overlay" / "new-file.txt").write_text("changed\n")
    site.spec("cfg", "type: config\nservice: {pause: never}\ndescription: edited\n")
    again = _run(site, "backup:cfg")
    out = again.stdout + again.stderr
    assert victim.read_text() == "precious\n", out
    assert "Traceback" not in out, out
    # Either the link was replaced by our own file, or the run refused it, naming it.
    assert again.returncode in (0, 27), out
    if again.returncode == 27:
        assert "symbolic link" in out and str(path) in out
    else:
        assert not path.is_symlink() or name in ("scan.jsonl.part", "sidecar")  # new name


def test_stage_files_planted_as_fifo_do_not_hang(site: Site) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    assert _run(site, "backup:cfg").returncode == 0
    st = site.env.backup_dir / ".allsky-tasks" / "specs" / "cfg"
    for name in ("fingerprint", "scan.jsonl"):
        (st / name).unlink()
        os.mkfifo(st / name)
    again = _run(site, "backup:cfg")
    assert again.returncode == 27, again.stdout + again.stderr
    assert "not a regular file" in again.stdout


# --- read-only and full folders: our errors, with the path and the exit code ---

def _mount(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


def test_read_only_destination_is_destination_error(site: Site, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    _mount(ro, "size=1m,ro")
    try:
        site.spec("cfg", f"type: config\nservice: {{pause: never}}\ndestination: {ro}\n")
        proc = _run(site, "backup:cfg")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 24, out
        assert "[DestinationError]" in out and str(ro) in out and "Traceback" not in out
        plain = site.doit("backup:cfg")
        # plain doit: 2, as a failed task leaves its dependants unmet (doit's TaskError)
        assert plain.returncode == 2 and "Traceback" not in plain.stdout + plain.stderr
        assert "[DestinationError]" in plain.stdout
    finally:
        subprocess.run(["umount", "-l", str(ro)])


def test_read_only_backup_folder_is_destination_error(site: Site, tmp_path: Path) -> None:
    ro = site.env.backup_dir
    _mount(ro, "size=1m,ro")
    try:
        site.spec("cfg", "type: config\nservice: {pause: never}\n")
        proc = _run(site, "backup:cfg")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 24, out
        assert "[DestinationError]" in out and str(ro) in out and "Traceback" not in out
    finally:
        subprocess.run(["umount", "-l", str(ro)])


def test_full_disk_at_the_manifest_stage_is_manifest_error(site: Site, tmp_path: Path) -> None:
    dest = tmp_path / "full"
    _mount(dest, "size=72m")
    try:
        site.spec("cfg", f"type: config\nservice: {{pause: never}}\ndestination: {dest}\n")
        packed = site.doit("pack:cfg")
        assert packed.returncode == 0, packed.stdout + packed.stderr
        filler = dest / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
        try:
            while os.write(fd, b"\1" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        proc = _run(site, "manifest:cfg")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 17, out
        assert "[ManifestError]" in out and "No space left" in out and "Traceback" not in out
        assert not [p for p in dest.iterdir() if p.name.startswith(".") and "part" in p.name]
    finally:
        subprocess.run(["umount", "-l", str(dest)])


# --- input limits through doit: a rejected spec fails its own validate and nothing else ---

def test_alias_bomb_and_huge_spec_fail_only_their_validate(site: Site) -> None:
    from tests.unit.test_yaml_safe import BOMB

    (site.env.specs_dir / "bomb.yaml").write_text(BOMB)
    with (site.env.specs_dir / "huge.yaml").open("wb") as fh:
        fh.truncate(52 << 20)
    site.spec("dup", "type: config\nformat: allsky\nformat: zstd\n")
    site.spec("cfg", "description: the good one\ntype: config\nservice: {pause: never}\n")
    listed = site.doit("list", "--all")
    assert listed.returncode == 0 and "the good one" in listed.stdout, listed.stdout + listed.stderr
    proc = site.doit("backup")  # every spec (plain doit runs the config specs only)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out
    assert "aliases expand to more than" in out and "more than the 1048576 bytes" in out
    assert "duplicate key 'format' (lines 2 and 3)" in out
    assert len(site.archives()) == 1  # cfg still ran
    docs = site.env.backup_dir / ".allsky-tasks" / "spec-docs.json"
    assert docs.stat().st_size < 4096


# --- the backup folder as a hostile place for list, verify and import ---

def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=120)


def test_list_and_verify_never_follow_or_block_in_the_backup_folder(site: Site, tmp_path: Path) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    assert _run(site, "backup:cfg").returncode == 0
    (archive,) = site.archives()
    dest = site.env.backup_dir
    outside = tmp_path / "outside.tar.zst"
    outside.write_bytes(archive.read_bytes())
    (dest / "allsky-config-backup-20990101-000000.tar.zst").symlink_to(outside)
    os.mkfifo(dest / "allsky-config-backup-20990102-000000.tar.zst")
    sidecar = sidecar_path(archive)
    sidecar.unlink()
    os.mkfifo(sidecar)  # the sidecar swapped for a FIFO
    listed = _cli(site, "list")
    out = listed.stdout + listed.stderr
    assert listed.returncode == 0 and "Traceback" not in out, out
    assert "20990101" not in listed.stdout and "20990102" not in listed.stdout
    assert archive.name.removesuffix(".tar.zst") in listed.stdout
    verified = _cli(site, "verify", "allsky-config-backup-20990101-000000")
    assert verified.returncode != 0 and "Traceback" not in verified.stdout + verified.stderr


def test_import_of_a_fifo_does_not_block(site: Site, tmp_path: Path) -> None:
    fifo = tmp_path / "upload.tar.gz"
    os.mkfifo(fifo)
    proc = _cli(site, "import", str(fifo))
    assert proc.returncode == 20 and str(fifo) in proc.stderr  # refused, not read
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("what", ["state-folder", "doit-db"])
def test_state_folder_or_doit_database_as_link_is_refused(site: Site, tmp_path: Path, what: str) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.sqlite3"
    victim.write_text("precious\n")
    state = site.env.backup_dir / ".allsky-tasks"
    if what == "state-folder":
        site.env.backup_dir.mkdir()
        state.symlink_to(elsewhere)
    else:
        state.mkdir(parents=True)
        (state / "doit.sqlite3").symlink_to(victim)
    proc = _run(site, "backup:cfg")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 27, out
    assert "Traceback" not in out and ("symbolic link" in out or "is a link" in out)
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.sqlite3"]
    assert site.archives() == []


@pytest.mark.parametrize("how", ["other-owner", "group-writable", "folder-link"])
def test_forged_spec_json_in_the_state_folder_runs_nothing(site: Site, svc: Path, tmp_path: Path,
                                                          how: str) -> None:
    """spec.json carries the service commands: a forged or foreign one is refused, never run."""
    site.spec("db", "type: config\nsections: {databases: true}\n"
                    f"service: {json.dumps(service_spec(svc, pause='always'))}\n")
    start_standin(svc)
    assert _run(site, "backup:db").returncode == 0
    st = site.env.backup_dir / ".allsky-tasks" / "specs" / "db"
    pwned = tmp_path / "PWNED"
    data = json.loads((st / "spec.json").read_text())
    data["service"]["commands"] = {a: ["sh", "-c", f"touch {pwned}"] for a in ("stop", "start", "status")}
    if how == "folder-link":
        forged = tmp_path / "forged"
        forged.mkdir()
        (forged / "spec.json").write_text(json.dumps(data))
        os.rename(st, tmp_path / "moved-away")
        st.symlink_to(forged)
    else:
        (st / "spec.json").write_text(json.dumps(data))
        if how == "other-owner":
            os.chown(st / "spec.json", 4321, 4321)
        else:
            (st / "spec.json").chmod(0o664)
    (site.home / "config" / "myFiles" / "db_data.json").write_text('{"changed": true}')
    proc = _run(site, "pack:db")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 27, out
    assert not pwned.exists() and "Traceback" not in out and standin_running(svc)


def test_summary_paused_time_ends_when_something_else_restarts_the_service(site: Site, svc: Path) -> None:
    proc = _start_slow_backup(site, svc)
    start_standin(svc)  # an operator starts Allsky again while pack is still running
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "started again by something else" in out
    (archive,) = site.archives()
    sidecar = json.loads(sidecar_path(archive).read_text())
    service = sidecar["allskyTasks"]["service"]
    assert service["restarted"] is False
    pack_seconds = json.loads((site.env.backup_dir / ".allsky-tasks" / "specs" / "slow" / "pack.json")
                              .read_text())["results"][0]["seconds"]
    assert service["paused_seconds"] < pack_seconds
