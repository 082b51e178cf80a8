"""The smaller things an operator meets: root runs for the Allsky user, a mistyped task name, plan
and an unplugged USB disk, a disk that fills during verify, and what the demo's output says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.copies.mounts import PREFIXES_ENV

from ..conftest import Site
from ..helpers.disks import tmpfs
from ..helpers.sshd import Sshd, sshd  # noqa: F401 - the fixture
from .test_allsky_user import shared  # noqa: F401 - the fixture
from .test_schedule_user import Operator, operator  # noqa: F401 - the fixture

CONFIG = "type: config\nservice: {pause: never}\n"
SPEC_SSH = ("type: config\nsections: {{modules: true}}\nservice: {{pause: never}}\n"
            "copies:\n  - name: nas\n    required: true\n    ssh: {item}\n")


def _cli(site: Site, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env={**site.environ(), **(env or {})}, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_root_run_with_the_allsky_user_s_environment_uses_that_user_s_state(
        operator: Operator) -> None:  # noqa: F811
    op = operator
    assert op.login("allsky-tasks run --quiet backup:cfg").returncode == 0
    spec_json = op.state / "specs" / "cfg" / "spec.json"
    assert spec_json.stat().st_uid == op.pw.pw_uid
    # `sudo -E allsky-tasks run`: root, with the user's ALLSKY_* and HOME; nothing changed, so
    # the chain reads the user's state (validate is up to date).
    env = {"PATH": "/usr/bin:/bin", "HOME": str(op.home),
           "ALLSKY_SPECS_DIR": str(op.home / "allsky-backup-specs"),
           "ALLSKY_HOME": str(op.home / "allsky"), "SUDO_USER": op.pw.pw_name}
    proc = subprocess.run([f"{op.venv}/bin/allsky-tasks", "run", "--quiet", "backup:cfg"],
                          env=env, text=True, capture_output=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(list((op.home / "allskybackups").glob("allsky-config-*.tar.zst"))) == 1
    assert spec_json.stat().st_uid == op.pw.pw_uid  # handed back to the user
    assert op.login("allsky-tasks run --quiet backup:cfg").returncode == 0


def test_a_mistyped_task_points_at_commands_that_exist(site: Site) -> None:
    site.spec("cfg", CONFIG)
    proc = _cli(site, "run", "bakup:cfg")
    assert proc.returncode == 3
    assert "allsky-tasks help" not in proc.stderr and '"allsky-tasks list"' not in proc.stderr
    assert '"allsky-tasks run list" to see available tasks' in proc.stderr
    assert "did you mean backup:cfg" in proc.stderr
    listed = _cli(site, "run", "list")  # what the hint says works
    assert listed.returncode == 0 and "backup " in listed.stdout


def test_plan_refuses_an_unmounted_usb_destination_as_run_does(site: Site, tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "usb").mkdir(parents=True)  # the mount point, with no disk on it
    site.spec("usb", CONFIG + f"destination: {media / 'usb' / 'allsky'}\n")
    env = {PREFIXES_ENV: str(media)}
    plan = _cli(site, "plan", "usb", env=env)
    assert plan.returncode == 24, plan.stdout + plan.stderr
    assert "NOT MOUNTED" in plan.stdout and "fits" not in plan.stdout.split("NOT MOUNTED")[0][-40:]
    assert "not on a mounted disk" in plan.stderr
    run = _cli(site, "run", "--quiet", "backup:usb", env=env)
    assert run.returncode == 24  # the same answer
    assert not (media / "usb" / "allsky").exists()


def test_a_disk_that_fills_during_verify_names_the_file_and_is_a_space_error(
        site: Site, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        site.spec("cfg", CONFIG + f"destination: {disk}\n"
                                  "free_space: {margin_percent: 0, min_free_mb: 0}\n")
        assert _cli(site, "run", "--quiet", "manifest:cfg").returncode == 0
        try:
            with open(disk / "filler", "wb") as fh:  # to the last block
                while True:
                    fh.write(b"\1" * 4096)
                    fh.flush()
        except OSError:
            pass
        proc = _cli(site, "run", "--quiet", "backup:cfg")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 12, out  # SpaceError, not 24 ("not mounted")
        assert f"{disk}/.allsky-tasks/verify.json: the disk is full (No space left on device)" in out
        assert "while verify wrote it" in out and "Traceback" not in out


def test_the_output_of_a_run_says_each_thing_once_and_counts_plainly(site: Site, real_pause: None) -> None:
    from ..helpers.service_fixture import kill_standins, service_spec

    svc = site.root / "svc"
    svc.mkdir()  # the stand-in is not started: Allsky was stopped by the operator
    try:
        site.spec("db", "type: config\nsections: {databases: true}\n"
                        f"service: {json.dumps(service_spec(svc))}\n")
        site.spec("other", CONFIG)
        proc = _cli(site, "run", "backup:db", "backup:other")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        kill_standins(svc)
    out = proc.stdout
    assert out.count("was not running") == 1, out  # said once, at pack
    verify_db = [ln for ln in out.splitlines() if ln.startswith("verify db:")]
    assert len(verify_db) == 1, out  # its own archive, not other's too
    # scan counts members, plan counts files (as Allsky's dialog): scan says both.
    scan = next(ln for ln in out.splitlines() if ln.startswith("scan db:"))
    files = int(scan.split(" members (")[1].split(" files")[0])
    assert " files, the rest folders and links)" in scan
    plan = _cli(site, "plan", "db")
    total = next(ln for ln in plan.stdout.splitlines() if ln.strip().startswith("Total selected"))
    assert f" {files} " in total, (scan, total)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_the_documented_ssh_disaster_command_works_as_written(
        operator: Operator, sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811
    op = operator
    ssh_dir = op.home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    key = ssh_dir / "id_ed25519_backup"  # the name docs/copies.md gives the NAS key
    shutil.copy(sshd.client_key, key)
    shutil.copy(sshd.known_hosts, ssh_dir / "known_hosts")  # the host key accepted once
    for path in (ssh_dir, key, ssh_dir / "known_hosts"):
        os.chown(path, op.pw.pw_uid, op.pw.pw_gid)
    key.chmod(0o600)
    remote = tmp_path / "nas" / "backups"
    item = {**sshd.item(remote)["ssh"], "key_file": "~/.ssh/id_ed25519_backup"}
    item.pop("known_hosts")  # the user's own ~/.ssh/known_hosts, as on a Pi
    (op.home / "allsky-backup-specs" / "cfg.yaml").write_text(
        SPEC_SSH.format(item=json.dumps(item)))
    assert op.login("allsky-tasks run --quiet backup:cfg").returncode == 0
    settings = (op.home / "allsky" / "config" / "settings.json").read_bytes()
    # The card dies: no config, no backups, no specs; the NAS key is back in ~/.ssh.
    for gone in ("allsky/config", "allskybackups", "allsky-backup-specs"):
        shutil.rmtree(op.home / gone)
    url = f"ssh://root@127.0.0.1:{sshd.port}{remote}"  # as docs/copies.md writes it: no ?key_file=
    proc = op.login(f"allsky-tasks restore latest-config --from '{url}' --yes --no-service")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fresh or empty Allsky install" in proc.stdout
    assert (op.home / "allsky" / "config" / "settings.json").read_bytes() == settings
    # Without that key the same command is refused by the server, naming the target.
    key.rename(ssh_dir / "elsewhere")
    shutil.rmtree(op.home / "allsky" / "config")
    refused = op.login(f"allsky-tasks restore latest-config --from '{url}' --yes --no-service")
    assert refused.returncode == 22 and "127.0.0.1" in refused.stderr
