"""Leftovers of killed copies at every target kind: the next copy there removes ours, only ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.copies.mounts import PREFIXES_ENV
from allsky_tasks.environment import PROJECT_DIR
from tests.helpers.cloud_servers import ftp_server, make_bucket, rclone_webdav, s3_env, s3_server  # noqa: F401
from tests.helpers.sshd import Sshd, sshd  # noqa: F401 - fixture

from ..conftest import Site

# A killed copy of an older archive and of its sidecar (our temp names), and strangers' files.
STALE = [".allsky-config-backup-20000101-000000.tar.zst.part",
         ".allsky-config-backup-20000101-000000.json.part"]
FOREIGN = [".somebody-elses.part", ".allsky-notes.txt.part", "allsky-config-backup-notes.part"]


def _doit(site: Site, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**site.environ(), PREFIXES_ENV: str(site.root / "media"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), *args],
                          cwd=site.root, env=environ, text=True, capture_output=True, timeout=300)


def _plant(folder: Path) -> None:
    """What an interrupted copy (and other software) left in the target's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in STALE + FOREIGN:
        (folder / name).write_bytes(os.urandom(4096))


def _spec(site: Site, copies_item: str) -> None:
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: there
    required: true
{copies_item}""")


def _check(site: Site, folder: Path, run: subprocess.CompletedProcess[str]) -> None:
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    [archive] = site.archives()
    names = sorted(p.name for p in folder.iterdir())
    assert archive.name in names, names  # the copy itself went there
    assert not [n for n in STALE if n in names], names
    assert [n for n in FOREIGN if n in names] == FOREIGN  # never anything but our pattern
    for name in STALE:
        assert f"removed {name} at there, left by an interrupted copy" in out, out


@contextmanager
def _path_target(site: Site, tmp_path: Path, **_: Any) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "usb" / "allsky"
    yield folder, f"    path: {folder}\n    must_be_mounted: false\n"


@contextmanager
def _ssh_target(site: Site, tmp_path: Path, server: Sshd, **_: Any) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "server" / "backups"
    yield folder, f"    ssh: {json.dumps(server.item(folder)['ssh'])}\n"


@contextmanager
def _rclone_target(site: Site, tmp_path: Path, **_: Any) -> Iterator[tuple[Path, str]]:
    served = tmp_path / "dav"
    served.mkdir()
    server = rclone_webdav(served, tmp_path / "rclone.conf").start()
    try:
        yield served / "allsky", (f"    rclone: {{remote: \"dav:allsky\", config: \"{tmp_path / 'rclone.conf'}\"}}\n"
                                  "    encrypt: false\n")
    finally:
        server.stop()


@contextmanager
def _ftp_target(site: Site, tmp_path: Path, **_: Any) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "ftproot"
    root.mkdir()
    server = ftp_server(root, "allsky", "s3cret").start()
    settings = site.home / "config" / "settings.json"
    data = json.loads(settings.read_text())
    data["remoteserverprotocol"] = "ftp"
    settings.write_text(json.dumps(data))
    env = json.loads((site.home / "env.json").read_text())
    env.update(REMOTESERVER_HOST="127.0.0.1", REMOTESERVER_PORT=str(server.port),
               REMOTESERVER_USER="allsky", REMOTESERVER_PASSWORD="s3cret")
    (site.home / "env.json").write_text(json.dumps(env))
    try:
        yield root / "allskybackups", "    allsky_remote: server\n    encrypt: false\n"
    finally:
        server.stop()


TARGETS: dict[str, Callable[..., Any]] = {"path": _path_target, "ssh": _ssh_target,
                                          "rclone": _rclone_target, "ftp": _ftp_target}


@pytest.mark.parametrize("kind", list(TARGETS))
def test_the_next_copy_removes_our_leftovers_and_nothing_else(site: Site, tmp_path: Path, kind: str,
                                                             request: pytest.FixtureRequest) -> None:
    extra = {"server": request.getfixturevalue("sshd")} if kind == "ssh" else {}
    with TARGETS[kind](site, tmp_path, **extra) as (folder, item):
        _plant(folder)
        _spec(site, item)
        _check(site, folder, _doit(site, "backup:cfg"))


def test_a_copy_killed_mid_transfer_leaves_a_part_the_next_run_removes(site: Site, tmp_path: Path) -> None:
    """The real thing: `rclone serve` killed while a copy streams into its hidden name."""
    served = tmp_path / "dav"
    served.mkdir()
    conf = tmp_path / "rclone.conf"
    server = rclone_webdav(served, conf).start()
    big = site.home / "config" / "myFiles" / "big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(os.urandom(24 << 20))  # incompressible: the archive is about 24 MB
    _spec(site, f"    rclone: {{remote: \"dav:allsky\", config: \"{conf}\", flags: [--bwlimit, 2M]}}\n"
                "    encrypt: false\n")
    site.spec("cfg", (site.env.specs_dir / "cfg.yaml").read_text().replace(
        "type: config\n", "type: config\nsections: {myfiles: true}\n"))
    proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), "backup:cfg"],
                            cwd=site.root, env={**site.environ(), PREFIXES_ENV: str(site.root / "media")},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        start = time.monotonic()
        while time.monotonic() - start < 240:
            parts = list((served / "allsky").glob(".*.part")) if (served / "allsky").exists() else []
            if parts and parts[0].stat().st_size > (1 << 20):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the copy never started")
        server.stop()  # the server dies mid-copy: the hidden name stays behind
    finally:
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out
    [left] = [p.name for p in (served / "allsky").glob(".*.part")]
    assert left.startswith(".allsky-config-backup-")
    big.write_bytes(b"changed")  # the next run packs a new archive: the old part is nobody's to resume
    server = rclone_webdav(served, conf).start()  # a new port, written into conf
    try:
        site.spec("cfg", (site.env.specs_dir / "cfg.yaml").read_text().replace(", flags: [--bwlimit, 2M]", ""))
        run = _doit(site, "backup:cfg")
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
        assert f"removed {left} at there, left by an interrupted copy" in out, out
        assert not list((served / "allsky").glob(".*.part"))
    finally:
        server.stop()


def test_s3_aborts_our_unfinished_uploads_and_no_one_elses(site: Site, s3_server: Any) -> None:  # noqa: F811
    import boto3

    make_bucket(s3_server.port, "allsky")
    endpoint = f"http://127.0.0.1:{s3_server.port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    for key in ("pi/allsky-config-backup-20000101-000000.tar.zst", "pi/someone-elses.bin",
                "other-prefix/allsky-config-backup-20000101-000000.tar.zst"):
        client.create_multipart_upload(Bucket="allsky", Key=key)
    _spec(site, f"    s3: {{bucket: allsky, prefix: pi, endpoint_url: \"{endpoint}\"}}\n    encrypt: false\n")
    run = _doit(site, "backup:cfg")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    left = sorted(u["Key"] for u in client.list_multipart_uploads(Bucket="allsky").get("Uploads", []))
    assert left == ["other-prefix/allsky-config-backup-20000101-000000.tar.zst", "pi/someone-elses.bin"]
    assert "removed allsky-config-backup-20000101-000000.tar.zst (unfinished upload) at there" in out, out
