"""Names from a target's listing: a name holding a newline never forges an entry, on real servers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.copies.ssh import SshTarget
from allsky_tasks.copies.target import RemoteFile, Target, target_from_spec
from allsky_tasks.restore.fetch import pick
from tests.helpers.cloud_servers import ftp_server, make_bucket, rclone_webdav, s3_env, s3_server  # noqa: F401
from tests.helpers.sshd import Sshd, require_openssh

REAL = "allsky-config-backup-20260101-000000.tar.zst"
PHANTOM = "allsky-config-backup-20990101-000000.tar.zst"  # newer than REAL: `latest` would pick it


def _forgers(crlf: bool = True) -> list[str]:
    """File names that, printed raw one per line, make a listing show PHANTOM (999 bytes):
    as `sftp ls -l` prints files, and as MLSD does (lines end with CR LF)."""
    names = [f"evil\n-rw-r--r--    1 0        0             999 Jan  1 00:00 {PHANTOM}",
             f"evil\ntype=file;size=999; {PHANTOM}", f"{PHANTOM}\n"]
    return names + ([f"evil\r\ntype=file;size=999;modify=20990101000000; {PHANTOM}"] if crlf else [])


def _plant(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REAL).write_bytes(b"a real copy")
    for name in _forgers():
        (folder / name).write_bytes(b"x")


def _check(target: Target) -> None:
    files = target.list_files()
    names = [f.name for f in files]
    assert REAL in names and PHANTOM not in names, names
    assert all(name.isprintable() for name in names), names
    assert RemoteFile(REAL, len(b"a real copy")) in files
    assert pick(target, "latest-config") == REAL


@contextmanager
def _ssh(tmp_path: Path, sftp_only: bool) -> Iterator[Target]:
    require_openssh()
    server = Sshd(tmp_path / "sshd").setup()
    if sftp_only:
        config = server.root / "sshd_config"
        config.write_text(config.read_text() + "ForceCommand internal-sftp\n")
    server.start()
    folder = tmp_path / "server" / "backups"
    _plant(folder)
    target = SshTarget(server.item(folder), {"state_dir": tmp_path / "state"})
    try:
        target.check_ready()
        assert target._shell is not sftp_only
        yield target
    finally:
        target.close()
        server.kill()


@pytest.mark.parametrize("sftp_only", [False, True], ids=["shell", "sftp-only"])
def test_ssh_listing_cannot_be_forged_by_a_name(tmp_path: Path, sftp_only: bool) -> None:
    with _ssh(tmp_path, sftp_only) as target:
        _check(target)


def test_ftp_listing_cannot_be_forged_by_a_name(tmp_path: Path) -> None:
    from allsky_tasks.copies.ftp import FtpTarget

    root = tmp_path / "ftproot"
    _plant(root / "backups")
    server = ftp_server(root, "allsky", "pw").start()
    target = FtpTarget("ftp", "127.0.0.1", "allsky", "pw", "backups", server.port)
    try:
        _check(target)
    finally:
        target.close()
        server.stop()


def test_rclone_listing_cannot_be_forged_by_a_name(tmp_path: Path) -> None:
    served = tmp_path / "dav"
    _plant(served / "allsky")
    server = rclone_webdav(served, tmp_path / "rclone.conf").start()
    try:
        _check(target_from_spec({"name": "dav", "rclone": {"remote": "dav:allsky",
                                                           "config": str(tmp_path / "rclone.conf")}}, {}))
    finally:
        server.stop()


def test_path_listing_refuses_names_with_control_characters(tmp_path: Path) -> None:
    folder = tmp_path / "usb" / "allsky"
    _plant(folder)
    _check(target_from_spec({"name": "usb", "path": str(folder), "must_be_mounted": False},
                            {"home": tmp_path / "home", "spec": "x"}))


def test_s3_listing_refuses_names_with_control_characters(s3_server: Any) -> None:  # noqa: F811
    import boto3

    make_bucket(s3_server.port, "allsky")
    endpoint = f"http://127.0.0.1:{s3_server.port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    # moto takes no newline in a key (a real S3 does); other control characters it does.
    for name in [REAL, f"{PHANTOM}\x01", f"evil\x7f{PHANTOM}", f"evil\t{PHANTOM}", f"{PHANTOM}\x85"]:
        client.put_object(Bucket="allsky", Key=f"pi/{name}",
                          Body=io.BytesIO(b"a real copy" if name == REAL else b"x"))
    target = target_from_spec({"name": "b2", "s3": {"bucket": "allsky", "prefix": "pi",
                                                    "endpoint_url": endpoint}}, {"home": Path("/"), "spec": "x"})
    _check(target)
    assert json.dumps([f.name for f in target.list_files()]) == json.dumps([REAL])
