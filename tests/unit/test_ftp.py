"""FtpTarget against a real pyftpdlib server (FTP and FTPS) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from allsky_tasks.copies.ftp import FtpTarget
from allsky_tasks.errors import CopyError
from tests.helpers.cloud_servers import Proc, ftp_server, self_signed_cert


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[tuple[Proc, Path]]:
    root = tmp_path / "ftproot"
    root.mkdir()
    server = ftp_server(root, "allsky", "pw-123").start()
    try:
        yield server, root
    finally:
        server.stop()


def blob(tmp_path: Path, size: int, name: str = "a.tar.zst.age") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def read_back(t: FtpTarget, name: str) -> bytes:
    with t.open_read(name) as fh:
        return fh.read()


def test_store_hidden_verify_rename_list_delete(ftp, tmp_path: Path) -> None:
    server, root = ftp
    t = FtpTarget("remote", "127.0.0.1", "allsky", "pw-123", "allsky/backups", server.port)
    t.check_ready()
    src = blob(tmp_path, (2 << 20) + 5)
    moved: list[int] = []
    with open(src, "rb") as fh:
        hidden = t.put_hidden(fh, src.stat().st_size, src.name, moved.append)
    assert sum(moved) == src.stat().st_size
    assert not (root / "allsky/backups" / src.name).exists()
    assert [f.name for f in t.list_files()] == [hidden]
    assert t.remote_sha256(hidden) is None
    assert hashlib.sha256(read_back(t, hidden)).digest() == hashlib.sha256(src.read_bytes()).digest()
    t.publish(hidden, src.name)
    assert [(f.name, f.size) for f in t.list_files()] == [(src.name, src.stat().st_size)]
    assert (root / "allsky/backups" / src.name).read_bytes() == src.read_bytes()
    t.delete(src.name)
    assert t.list_files() == []
    t.close()


def test_ftps_with_a_checked_certificate(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "ftproot"
    root.mkdir()
    cert = self_signed_cert(tmp_path)
    server = ftp_server(root, "allsky", "pw", cert).start()
    try:
        src = blob(tmp_path, 300_000)
        untrusted = FtpTarget("remote", "127.0.0.1", "allsky", "pw", "b", server.port, tls=True)
        with pytest.raises(CopyError, match=r"(?s)remote \(ftps://allsky@127.0.0.1:.*certificate"):
            untrusted.check_ready()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        t = FtpTarget("remote", "127.0.0.1", "allsky", "pw", "b", server.port, tls=True)
        with open(src, "rb") as fh:
            t.put(fh, src.stat().st_size, src.name, lambda n: None)
        assert read_back(t, src.name) == src.read_bytes()
        assert (root / "b" / src.name).read_bytes() == src.read_bytes()
        t.close()
    finally:
        server.stop()


def test_wrong_password_is_named(ftp) -> None:
    server, _ = ftp
    t = FtpTarget("remote", "127.0.0.1", "allsky", "wrong", "x", server.port, source="env.json")
    with pytest.raises(CopyError, match=r"(?s)remote \(ftp://allsky@127.0.0.1.*530.*password.*env.json"):
        t.check_ready()


def test_server_stopped_mid_upload_then_the_next_run_copies(ftp, tmp_path: Path) -> None:
    server, root = ftp
    t = FtpTarget("remote", "127.0.0.1", "allsky", "pw-123", "b", server.port)
    src = blob(tmp_path, 8 << 20)
    before = src.read_bytes()
    seen: list[int] = []

    def stop(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            server.stop()

    with open(src, "rb") as fh, pytest.raises(CopyError, match=r"remote \(ftp://.*storing"):
        t.put(fh, src.stat().st_size, src.name, stop)
    assert not (root / "b" / src.name).exists()
    assert src.read_bytes() == before
    server.start()
    t = FtpTarget("remote", "127.0.0.1", "allsky", "pw-123", "b", server.port)
    with open(src, "rb") as fh:
        t.put(fh, src.stat().st_size, src.name, lambda n: None)
    assert (root / "b" / src.name).read_bytes() == before
    assert [f.name for f in t.list_files()] == [src.name]  # the stale hidden file was replaced
