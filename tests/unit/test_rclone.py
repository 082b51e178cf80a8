"""RcloneTarget with Debian's rclone against `rclone serve webdav` on 127.0.0.1 and a local remote."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from allsky_tasks.copies.rclone import RcloneTarget
from allsky_tasks.copies.target import target_from_spec
from allsky_tasks.errors import CopyError
from tests.helpers.cloud_servers import Proc, need_binary, rclone_webdav


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[tuple[Proc, Path, Path]]:
    """A webdav server (served by rclone) of tmp_path/served, and a client config for `dav:`."""
    served = tmp_path / "served"
    served.mkdir()
    config = tmp_path / "rclone.conf"
    server = rclone_webdav(served, config).start()
    try:
        yield server, served, config
    finally:
        server.stop()


def target(config: Path, remote: str = "dav:allsky/backups", **more: object) -> RcloneTarget:
    return target_from_spec({"name": "gdrive", "rclone": {"remote": remote, "config": str(config),
                                                         **more}}, {})  # type: ignore[return-value]


def blob(tmp_path: Path, size: int, name: str = "a.tar.zst") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def read_back(t: RcloneTarget, name: str) -> bytes:
    with t.open_read(name) as fh:
        return fh.read()


def test_copy_to_a_hidden_name_then_rename_list_read_back_delete(dav, tmp_path: Path) -> None:
    _, served, config = dav
    t = target(config)
    t.check_ready()
    src = blob(tmp_path, 3 << 20)
    moved: list[int] = []
    with open(src, "rb") as fh:
        hidden = t.put_hidden(fh, src.stat().st_size, src.name, moved.append)
    assert sum(moved) == src.stat().st_size
    assert hidden == ".a.tar.zst.part"
    assert not (served / "allsky/backups/a.tar.zst").exists()  # not under the final name yet
    assert {f.name for f in t.list_files()} == {hidden}  # hidden files are listed (lsjson)
    assert t.remote_sha256(hidden) is None  # webdav has no SHA-256: the stage reads it back
    assert hashlib.sha256(read_back(t, hidden)).digest() == hashlib.sha256(src.read_bytes()).digest()
    t.publish(hidden, src.name)
    assert [(f.name, f.size) for f in t.list_files()] == [(src.name, src.stat().st_size)]
    assert (served / "allsky/backups/a.tar.zst").read_bytes() == src.read_bytes()
    t.delete(src.name)
    assert t.list_files() == []


def test_hashsum_is_used_where_the_remote_has_sha256(tmp_path: Path) -> None:
    need_binary("rclone", "rclone")
    config = tmp_path / "rclone.conf"
    config.write_text("[disk]\ntype = local\n")
    t = target(config, remote=f"disk:{tmp_path / 'remote'}")
    t.check_ready()
    src = blob(tmp_path, 100_000)
    with open(src, "rb") as fh:
        t.put(fh, src.stat().st_size, src.name, lambda n: None)
    assert t.remote_sha256(src.name) == hashlib.sha256(src.read_bytes()).hexdigest()
    data = bytearray((tmp_path / "remote" / src.name).read_bytes())
    data[5] ^= 1
    (tmp_path / "remote" / src.name).write_bytes(bytes(data))
    assert t.remote_sha256(src.name) != hashlib.sha256(src.read_bytes()).hexdigest()


def test_unknown_remote_and_missing_file_are_named(dav, tmp_path: Path) -> None:
    _, _, config = dav
    with pytest.raises(CopyError, match=r"(?s)gdrive \(nosuch:x\).*didn't find section.*rclone config"):
        target(config, remote="nosuch:x").check_ready()
    with pytest.raises(CopyError, match=r"gdrive \(dav:allsky/backups\): reading missing.tar.zst failed"):
        read_back(target(config), "missing.tar.zst")
    with pytest.raises(CopyError, match="needs `remote:path`"):
        target(config, remote="no-colon")


def test_server_stopped_mid_copy_leaves_no_final_name_and_the_next_run_copies(dav, tmp_path: Path) -> None:
    server, served, config = dav
    t = target(config, flags=["--bwlimit", "1M"])
    t.check_ready()
    src = blob(tmp_path, 6 << 20)
    before = src.read_bytes()
    seen: list[int] = []

    def stop_server(n: int) -> None:
        seen.append(n)
        if len(seen) == 1:
            server.stop()

    with open(src, "rb") as fh, pytest.raises(CopyError, match=r"gdrive \(dav:allsky/backups\): copying"):
        t.put(fh, src.stat().st_size, src.name, stop_server)
    assert not (served / "allsky/backups" / src.name).exists()
    assert src.read_bytes() == before
    server.start()
    t = target(config)
    with open(src, "rb") as fh:
        t.put(fh, src.stat().st_size, src.name, lambda n: None)
    assert (served / "allsky/backups" / src.name).read_bytes() == before


def test_a_refused_login_is_named_with_the_fix(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    config = tmp_path / "rclone.conf"
    server = rclone_webdav(served, config, login=("allsky", "right", "wrong")).start()
    try:
        with pytest.raises(CopyError, match=r"(?s)gdrive \(dav:allsky/backups\).*rclone config"):
            target(config).check_ready()
        assert list(served.iterdir()) == []
    finally:
        server.stop()
