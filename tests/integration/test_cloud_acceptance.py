"""Cloud copies end to end: encrypted copies to S3 (moto), an rclone remote and Allsky's Remote
Server (sftp to a real sshd), a no-op second run, restore from each, tampering, wrong identity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3

from allsky_tasks.copies import records
from allsky_tasks.environment import PROJECT_DIR
from tests.helpers.cloud_servers import make_bucket, rclone_webdav
from tests.helpers.sshd import Sshd

from ..conftest import Site, tree_state
from .test_restore import comparable

DB = "config/myFiles/allsky.db"
DROP = (DB, "config", "config/overlay", "config/logs", "config/myFiles")


def _run(site: Site, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=site.root, env=site.environ(), text=True,
                          capture_output=True, timeout=300)


def _doit(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(site, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), *args)


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(site, "-m", "allsky_tasks", *args)


def _remote_server_settings(site: Site, sshd: Sshd) -> None:  # noqa: F811 - pytest fixture
    """What an operator who already uploads images over sftp entered in Allsky's WebUI."""
    settings = site.home / "config" / "settings.json"  # a hard link to settings_<camera>.json
    data = json.loads(settings.read_text())
    data.update(useremoteserver=True, remoteserverprotocol="sftp", remoteserverimagedir="/var/www/allsky")
    with open(settings, "r+") as fh:  # in place: the hard link stays
        fh.truncate(0)
        fh.write(json.dumps(data, indent=4))
    env_file = site.home / "env.json"
    env = json.loads(env_file.read_text())
    env.update(REMOTESERVER_HOST="127.0.0.1", REMOTESERVER_PORT=str(sshd.port), REMOTESERVER_USER="root",
               REMOTESERVER_SSH_KEY_FILE=str(sshd.client_key))
    env_file.write_text(json.dumps(env, indent=4))


def test_three_encrypted_copies_restore_from_each_tamper_and_wrong_identity(
        site: Site, sshd: Sshd, s3_server, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    make_bucket(s3_server.port, "allsky")
    served = tmp_path / "webdav"
    served.mkdir()
    dav = rclone_webdav(served, tmp_path / "rclone.conf").start()
    remote_dir = tmp_path / "remote-server" / "allskybackups"
    try:
        _remote_server_settings(site, sshd)
        identity = tmp_path / "identity.txt"
        made = _cli(site, "keygen", "--output", str(identity))
        assert made.returncode == 0, made.stderr
        recipient = made.stdout.strip()
        assert recipient.startswith("age1") and "SOMEWHERE OTHER THAN THIS PI" in made.stderr
        enc = json.dumps({"recipients": [recipient]})
        site.spec("cfg", f"""description: Config, encrypted to the cloud
type: config
sections: {{modules: true, databases: true}}
service: {{pause: never}}
copies:
  - name: b2
    required: true
    s3: {{bucket: allsky, prefix: pi-north, endpoint_url: "http://127.0.0.1:{s3_server.port}"}}
    encrypt: {enc}
  - name: gdrive
    required: true
    rclone: {{remote: "dav:allsky", config: "{tmp_path / 'rclone.conf'}"}}
    encrypt: {enc}
  - name: remote
    required: true
    allsky_remote: {{use: server, folder: "{remote_dir}", known_hosts: "{sshd.known_hosts}"}}
    encrypt: {enc}
""")
        first = _doit(site, "backup:cfg")
        assert first.returncode == 0, first.stdout + first.stderr
        [archive] = site.archives()
        before = tree_state(site.home)
        stored = archive.name + ".age"
        recs = {r["target"]: r for r in records.all_records(site.env.backup_dir)}
        assert set(recs) == {"b2", "gdrive", "remote"}
        for name, rec in recs.items():
            entry = rec["copies"][archive.name]
            assert entry["ok"] and entry["encrypted"] and entry["stored"] == stored, (name, entry)
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
        blobs = {
            "b2": s3.get_object(Bucket="allsky", Key=f"pi-north/{stored}")["Body"].read(),
            "gdrive": (served / "allsky" / stored).read_bytes(),
            "remote": (remote_dir / stored).read_bytes(),
        }
        # No plaintext env.json (passwords) in any copy, nor a plaintext sidecar beside it.
        env_text = (site.home / "env.json").read_bytes()
        secrets = [v.encode() for v in json.loads(env_text).values() if isinstance(v, str) and len(v) >= 6]
        for name, data in blobs.items():
            assert data.startswith(b"age-encryption.org/v1\n"), name
            assert env_text not in data and not any(s in data for s in secrets), name
        assert sorted(p.name for p in remote_dir.iterdir()) == sorted(
            [stored, stored + ".auth", archive.name[:-8] + ".json.age"])

        second = _doit(site, "backup:cfg")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "-- copy:cfg" in second.stdout and "-- pack:cfg" in second.stdout

        # Ciphertext altered at the target: verify --target catches it, restore refuses it.
        bad = bytearray(blobs["remote"])
        bad[len(bad) // 2] ^= 0x10
        (remote_dir / stored).write_bytes(bytes(bad))
        check = _cli(site, "verify", "--target", "remote", archive.name)
        assert check.returncode == 22 and "remote" in check.stderr, check.stdout + check.stderr

        # The card dies: the local archive and its sidecar are gone.
        archive.unlink()
        archive.with_name(archive.name[:-8] + ".json").unlink()
        refused = _cli(site, "restore", archive.name, "--from", "remote", "--identity", str(identity),
                       "--yes", "--no-service", "--no-undo")
        assert refused.returncode != 0 and "remote" in refused.stderr, refused.stdout + refused.stderr
        assert site.archives() == []
        (remote_dir / stored).write_bytes(blobs["remote"])

        wrong = tmp_path / "wrong.txt"
        assert _cli(site, "keygen", "-o", str(wrong)).returncode == 0
        denied = _cli(site, "restore", archive.name, "--from", "b2", "--identity", str(wrong),
                      "--yes", "--no-service", "--no-undo")
        assert denied.returncode == 23, denied.stdout + denied.stderr
        assert "does not match any recipient" in denied.stderr and site.archives() == []
        missing = _cli(site, "restore", archive.name, "--from", "b2", "--yes", "--no-service", "--no-undo")
        assert missing.returncode == 23 and "--identity" in missing.stderr
        assert tree_state(site.home) == before  # nothing was written by the refused restores

        # rclone's own config variable, so `rclone:dav:allsky` (no spec needed) finds the remote
        monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "rclone.conf"))
        for target in ("b2", "gdrive", "remote", "rclone:dav:allsky"):
            settings = site.home / "config" / "settings_RPi_HQ.json"
            settings.write_text(json.dumps({**json.loads(settings.read_text()), "angle": 99}))
            if target != "remote":
                (site.home / "env.json").unlink()
            # (Restoring from Allsky's Remote Server needs its settings: on a fresh install the
            # operator enters them again in the WebUI, or uses --from ssh://user@host/folder.)
            done = _cli(site, "restore", archive.name, "--from", target, "--identity", str(identity),
                        "--yes", "--no-service", "--no-undo")
            assert done.returncode == 0, (target, done.stdout + done.stderr)
            assert comparable(tree_state(site.home), *DROP) == comparable(before, *DROP), target
            [back] = site.archives()
            assert back.name == archive.name
            back.unlink()
            for side in site.env.backup_dir.glob("allsky-config-backup-*.json"):
                side.unlink()
    finally:
        dav.stop()
