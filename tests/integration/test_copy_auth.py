"""Authenticated copies: a new card restores only what this Pi's key made, at every kind of target.

The attack: the age recipient is public (it is in the spec, keygen prints it), so whoever can
write to a copy target makes a valid `.tar.zst.age` and `.json.age`, or a plain `.tar.zst`
and `.json`, dated newest. `restore latest-config --from TARGET` must refuse it (exit 28,
naming the target and the copy); `--trust-target` restores it for an operator who chooses to;
the genuine copy restores byte-identical. Real servers: a tmpfs disk, OpenSSH's sshd, moto's
S3 over HTTP and `rclone serve webdav`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pyrage

from allsky_tasks.archive.authkey import KEY_ENV
from allsky_tasks.copies.mounts import PREFIXES_ENV
from tests.helpers.cloud_servers import Proc, make_bucket, rclone_webdav, s3_env, s3_server  # noqa: F401
from tests.helpers.disks import tmpfs
from tests.helpers.sshd import Sshd, sshd  # noqa: F401 - fixture

from ..conftest import Site, backup, make_site, tree_state
from .test_restore import comparable

DROP = ("config/myFiles/allsky.db", "config", "config/overlay", "config/logs", "config/myFiles")
ATTACKER_LOGIN = {"WEBUI_USERNAME": "mallory", "WEBUI_PASSWORD": "owned"}


def _run(site: Site, *argv: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    environ = {**site.environ(), PREFIXES_ENV: str(site.root / "media"), **(env or {})}
    return subprocess.run([sys.executable, *argv], cwd=site.root, env=environ, text=True,
                          capture_output=True, timeout=300)


def _cli(site: Site, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return _run(site, "-m", "allsky_tasks", *args, env=env)


def _forged(tmp_path: Path, genuine: Path) -> tuple[Path, Path]:
    """The attacker's config backup (their WebUI login in env.json), named a day later."""
    other = make_site(tmp_path / "attacker")
    env_file = other.home / "env.json"
    env_file.write_text(json.dumps({**json.loads(env_file.read_text()), **ATTACKER_LOGIN}))
    made = backup(other, "evil", "type: config\nservice: {pause: never}\n")
    stamp = re.search(r"(\d{8}-\d{6})", genuine.name).group(1)  # type: ignore[union-attr]
    later = datetime.strptime(stamp, "%Y%m%d-%H%M%S") + timedelta(days=1)
    name = f"allsky-config-backup-{later:%Y%m%d-%H%M%S}.tar.zst"
    archive = made.rename(made.with_name(name))
    side = made.with_name(made.name.replace(".tar.zst", ".json")).rename(
        archive.with_name(name.replace(".tar.zst", ".json")))
    data = json.loads(side.read_text())
    data["allskyTasks"]["archive"].update(name=name, sha256=hashlib.sha256(archive.read_bytes())
                                          .hexdigest())
    side.write_text(json.dumps(data))
    return archive, side


def _dav_put(tmp_path: Path, name: str, data: bytes) -> None:
    """Write a file through the WebDAV server, as any client of it can."""
    local = tmp_path / "dav-upload"
    local.write_bytes(data)
    subprocess.run(["rclone", "--config", str(tmp_path / "rclone.conf"), "copyto", str(local),
                    f"dav:allsky/{name}"], check=True, capture_output=True, timeout=120)


def _login(site: Site) -> dict[str, str]:
    data = json.loads((site.home / "env.json").read_text())
    return {k: data.get(k) for k in ATTACKER_LOGIN}


def test_a_new_card_restores_only_what_this_pis_key_made(
        site: Site, sshd: Sshd, s3_server: Proc, tmp_path: Path) -> None:  # noqa: F811
    make_bucket(s3_server.port, "allsky")
    served = tmp_path / "webdav"
    (served / "allsky").mkdir(parents=True)
    dav = rclone_webdav(served, tmp_path / "rclone.conf").start()
    nas = tmp_path / "nas" / "backups"
    try:
        with tmpfs(site.root / "media" / "usb") as usb:
            _drill(site, sshd, s3_server.port, tmp_path, usb / "allsky", nas, served / "allsky")
    finally:
        dav.stop()


def _drill(site: Site, server: Sshd, s3_port: int, tmp_path: Path, usb: Path, nas: Path,
           dav: Path) -> None:
    keep = tmp_path / "kept-off-the-pi"
    keep.mkdir()
    identity = keep / "identity.txt"
    made = _cli(site, "keygen", "-o", str(identity))
    assert made.returncode == 0, made.stderr
    recipient = made.stdout.strip()
    auth_key = keep / "allsky-tasks-auth.key"
    assert auth_key.exists() and "allsky-tasks-auth.key" in made.stderr
    enc = json.dumps({"recipients": [recipient]})
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: usb
    path: {usb}
    required: true
  - name: nas
    required: true
    ssh: {json.dumps(server.item(nas)["ssh"])}
  - name: b2
    required: true
    s3: {{bucket: allsky, prefix: pi, endpoint_url: "http://127.0.0.1:{s3_port}"}}
    encrypt: {enc}
  - name: gdrive
    required: true
    rclone: {{remote: "dav:allsky", config: "{tmp_path / 'rclone.conf'}"}}
    encrypt: {enc}
""")
    first = _cli(site, "run", "backup:cfg")
    assert first.returncode == 0, first.stdout + first.stderr
    [genuine] = site.archives()
    genuine_bytes = genuine.read_bytes()
    before = tree_state(site.home)
    for folder, stored in ((usb, genuine.name), (nas, genuine.name), (dav, genuine.name + ".age")):
        assert (folder / (stored + ".auth")).exists(), folder  # every copy carries its tag

    # The attacker writes to every target, with the public recipient where copies are encrypted.
    evil, evil_side = _forged(tmp_path, genuine)
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}")
    recipients = [pyrage.x25519.Recipient.from_str(recipient)]
    for folder in (usb, nas):
        shutil.copy(evil, folder / evil.name)
        shutil.copy(evil_side, folder / evil_side.name)
    for path in (evil, evil_side):
        sealed = pyrage.encrypt(path.read_bytes(), recipients)
        _dav_put(tmp_path, path.name + ".age", sealed)
        s3.put_object(Bucket="allsky", Key=f"pi/{path.name}.age", Body=sealed)

    # The card dies: a new one has no backups, no state and no key of its own.
    shutil.rmtree(site.env.backup_dir)
    new_card = {KEY_ENV: str(tmp_path / "new-card" / "allsky-tasks-auth.key")}
    restore = ("--yes", "--no-service", "--no-undo")
    for target, how in (("usb", ("--auth-key", str(auth_key))), ("nas", ("--auth-key", str(auth_key))),
                        ("b2", ("--identity", str(identity))), ("gdrive", ("--identity", str(identity)))):
        refused = _cli(site, "restore", "latest-config", "--from", target, *how, *restore, env=new_card)
        out = refused.stdout + refused.stderr
        assert refused.returncode == 28, (target, out)
        assert f"copy target {target}" in out and evil.name in out and "--trust-target" in out, out
        assert "Traceback" not in out and _login(site) != ATTACKER_LOGIN
        assert tree_state(site.home) == before  # nothing was written
    assert site.archives() == []

    # The operator who chooses to trust the target gets what is there.
    trusted = _cli(site, "restore", "latest-config", "--from", "usb", "--trust-target", *restore,
                   env=new_card)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert "--trust-target" in trusted.stdout and _login(site) == ATTACKER_LOGIN
    for path in site.env.backup_dir.glob("allsky-config-backup-*"):
        path.unlink()

    # The genuine copy restores byte-identical, encrypted and plain.
    for target, how in (("b2", ("--identity", str(identity))), ("nas", ("--auth-key", str(auth_key)))):
        done = _cli(site, "restore", genuine.name, "--from", target, *how, *restore, env=new_card)
        assert done.returncode == 0, (target, done.stdout + done.stderr)
        assert "authenticated" in done.stdout
        assert (site.env.backup_dir / genuine.name).read_bytes() == genuine_bytes
        assert comparable(tree_state(site.home), *DROP) == comparable(before, *DROP), target
        assert _login(site) != ATTACKER_LOGIN
        for path in site.env.backup_dir.glob("allsky-config-backup-*"):
            path.unlink()  # the fetched archive and its sidecar: the next one lands by name

    # A copy made before copies were authenticated (no tag) says what to do.
    (nas / (genuine.name + ".auth")).unlink()
    old = _cli(site, "restore", genuine.name, "--from", "nas", "--auth-key", str(auth_key), *restore,
               env=new_card)
    assert old.returncode == 28 and "no authentication tag" in old.stderr, old.stdout + old.stderr
    assert "next backup that copies there tags" in old.stderr and "--trust-target" in old.stderr

    # A tag the attacker made with a key of their own is another key's.
    other_key = tmp_path / "mallory.key"
    assert _cli(site, "keygen", "--auth-only", "-o", str(tmp_path / "x"),
                env={KEY_ENV: str(other_key)}).returncode == 0
    from allsky_tasks.archive import authkey
    from allsky_tasks.copies.auth import make_tag

    theirs = authkey.load(other_key)
    assert theirs is not None
    sealed = (dav / (evil.name + ".age")).read_bytes()
    _dav_put(tmp_path, evil.name + ".age.auth", make_tag(
        theirs, evil.name + ".age", len(sealed), hashlib.sha256(sealed).hexdigest()))
    other = _cli(site, "restore", "latest-config", "--from", "gdrive", "--identity", str(identity),
                 *restore, env=new_card)
    assert other.returncode == 28 and "tagged by another key" in other.stderr, other.stderr


def test_copies_made_before_tags_are_tagged_by_the_next_copy_run(site: Site, tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    site.spec("cfg", f"type: config\nservice: {{pause: never}}\ncopies:\n  - name: disk\n"
                     f"    path: {folder}\n    must_be_mounted: false\n    required: true\n")
    assert _cli(site, "run", "backup:cfg").returncode == 0
    [first] = site.archives()
    (folder / (first.name + ".auth")).unlink()  # as a copy made by an older version
    (site.home / "env.json").write_text('{"changed": 1}')
    again = _cli(site, "run", "backup:cfg")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (folder / (first.name + ".auth")).exists() and "tagged 1 earlier copies" in again.stdout
    fine = _cli(site, "restore", first.name, "--from", "disk", "--dry-run", "--no-service")
    assert fine.returncode == 0, fine.stdout + fine.stderr
