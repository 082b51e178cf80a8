"""Off-device copies end to end: a USB copy and an SSH copy, inventory, verify --target, restore --from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from allsky_tasks.copies import records
from allsky_tasks.copies.mounts import PREFIXES_ENV
from allsky_tasks.environment import PROJECT_DIR
from tests.helpers.disks import tmpfs
from tests.helpers.sshd import Sshd

from ..conftest import Site, tree_state
from .test_restore import comparable

DB = "config/myFiles/allsky.db"


def _run(site: Site, *argv: str) -> subprocess.CompletedProcess[str]:
    env = site.environ()
    env[PREFIXES_ENV] = str(site.root / "media")
    return subprocess.run([sys.executable, *argv], cwd=site.root, env=env, text=True,
                          capture_output=True, timeout=300)


def _doit(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(site, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), *args)


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(site, "-m", "allsky_tasks", *args)


def test_usb_and_ssh_copies_list_verify_and_restore_from_the_server(
        site: Site, sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    remote = tmp_path / "server" / "backups"
    ssh = sshd.item(remote)["ssh"]
    with tmpfs(site.root / "media" / "usb") as usb:
        site.spec("cfg", f"""description: Config, copied to USB and the NAS
type: config
sections: {{modules: true, databases: true}}
service: {{pause: never}}
copies:
  - name: usb
    path: {usb}/allsky
    required: true
  - name: nas
    required: true
    keep_last: 3
    ssh: {json.dumps(ssh)}
""")
        listed = _doit(site, "list", "--all")
        assert "copy:cfg" in listed.stdout and "Config, copied to USB and the NAS" in listed.stdout
        first = _doit(site, "backup:cfg")
        assert first.returncode == 0, first.stdout + first.stderr
        [archive] = site.archives()
        before = tree_state(site.home)
        for folder in (usb / "allsky", remote):
            assert (folder / archive.name).read_bytes() == archive.read_bytes()
            assert (folder / (archive.name[:-8] + ".json")).exists()
        recs = {r["target"]: r for r in records.all_records(site.env.backup_dir)}
        assert recs["nas"]["copies"][archive.name]["method"] == "hashed at the target"
        assert recs["usb"]["copies"][archive.name]["method"] == "read back"

        sshd.kill()  # a no-op run opens no connection: the record and a stat of the USB copy
        second = _doit(site, "backup:cfg")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "-- copy:cfg" in second.stdout and "-- pack:cfg" in second.stdout
        sshd.start()

        out = _cli(site, "list").stdout
        line = next(x for x in out.splitlines() if x.strip().startswith(f"{archive.name}: "))
        assert "Copies" in out and "usb: verified" in line and "nas: verified" in line
        assert "same filesystem" not in out  # the advice to copy elsewhere is followed

        # A flipped byte at the server: verify --target catches it (exit 22), then a fresh copy.
        copy = remote / archive.name
        good = copy.read_bytes()
        bad = bytearray(good)
        bad[len(bad) // 3] ^= 0x08
        copy.write_bytes(bytes(bad))
        check = _cli(site, "verify", "--target", "nas", archive.name)
        assert check.returncode == 22 and "nas" in check.stderr + check.stdout
        copy.write_bytes(good)
        assert _cli(site, "verify", "--target", "nas", archive.name).returncode == 0

        # The card dies: the local archive is gone, the config is damaged.
        archive.unlink()
        archive.with_name(archive.name[:-8] + ".json").unlink()
        held = _cli(site, "list", "--target", "nas")
        assert archive.name in held.stdout and "local archive gone" in held.stdout
        settings = site.home / "config" / "settings_RPi_HQ.json"
        settings.write_text(json.dumps({**json.loads(settings.read_text()), "angle": 99}))
        (site.home / "env.json").unlink()
        restored = _cli(site, "restore", archive.name, "--from", "nas", "--yes", "--no-service",
                        "--no-undo")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "fetched" in restored.stdout
        after = tree_state(site.home)
        drop = (DB, "config", "config/overlay", "config/logs", "config/myFiles")
        assert comparable(after, *drop) == comparable(before, *drop)
        assert (site.env.backup_dir / archive.name).read_bytes() == good
        assert not list((site.env.backup_dir / ".allsky-tasks").glob("fetch/*/*"))


def test_disaster_drill_new_card_one_command_from_the_server(
        site: Site, sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    import shutil

    remote = tmp_path / "server" / "backups"
    site.spec("cfg", f"type: config\nservice: {{pause: never}}\ncopies:\n  - name: nas\n"
                     f"    required: true\n    ssh: {json.dumps(sshd.item(remote)['ssh'])}\n")
    assert _doit(site, "backup:cfg").returncode == 0
    before = tree_state(site.home)
    # New card: no backups, no records, no specs, no key (its copy was kept off the Pi); the
    # config files are the installer's.
    key = Path(os.environ["ALLSKY_TASKS_AUTH_KEY"])
    kept = shutil.copy(key, tmp_path / "kept-allsky-tasks-auth.key")
    key.unlink()
    shutil.rmtree(site.env.backup_dir)
    for spec in site.env.specs_dir.iterdir():
        spec.unlink()
    (site.home / "env.json").write_text("{}")
    (site.home / "config" / "overlay" / "config" / "overlay.json").unlink(missing_ok=True)
    url = (f"ssh://root@127.0.0.1:{sshd.port}{remote}?key_file={sshd.client_key}"
           f"&known_hosts={sshd.known_hosts}")
    [name] = [p.name for p in remote.iterdir() if p.name.endswith(".tar.zst")]
    check = _cli(site, "verify", "--target", url, name)  # no record: against the sidecar
    assert check.returncode == 0 and "vs the sidecar" in check.stdout, check.stdout + check.stderr
    run = _cli(site, "restore", "latest-config", "--from", url, "--auth-key", str(kept), "--yes",
               "--no-service", "--no-undo")
    assert run.returncode == 0, run.stdout + run.stderr
    drop = (DB, "config", "config/overlay", "config/logs", "config/myFiles")
    assert comparable(tree_state(site.home), *drop) == comparable(before, *drop)
