"""safefs: files in the backup and state folders are never opened through a link or blocking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from allsky_tasks.errors import UnsafePathError
from allsky_tasks.safefs import atomic_write_bytes, check_owned, make_dir, open_file, open_regular, read_bytes


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


@pytest.mark.parametrize("mode", ["rb", "r", "wb", "w", "ab"])
def test_open_file_refuses_a_symlink(tmp_path: Path, victim: Path, mode: str) -> None:
    link = tmp_path / "state.json"
    link.symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link") as info:
        open_file(link, mode)
    assert str(link) in str(info.value)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("mode", ["rb", "wb"])
def test_open_file_refuses_a_fifo_without_blocking(tmp_path: Path, mode: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_file(fifo, mode)


def test_open_regular_refuses_a_folder_and_a_device(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(UnsafePathError):
        open_regular(tmp_path / "d")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_regular(Path("/dev/null"))


def test_read_bytes_limit_and_owned(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bytes(path, 100) == b"x" * 100
    with pytest.raises(UnsafePathError, match="more than the 99"):
        read_bytes(path, 99)
    path.chmod(0o666)
    with pytest.raises(UnsafePathError, match="writable by group or others"):
        read_bytes(path, owned=True)
    path.chmod(0o600)
    os.chown(path, 4321, -1)
    with pytest.raises(UnsafePathError, match="owned by uid 4321"):
        read_bytes(path, owned=True)
    with pytest.raises(UnsafePathError):
        check_owned(path, path.stat())


def test_atomic_write_replaces_a_link_instead_of_writing_through(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "scan.json"
    link.symlink_to(victim)
    atomic_write_bytes(link, b"{}\n")
    assert not link.is_symlink() and link.read_bytes() == b"{}\n"
    assert victim.read_text() == "precious\n"


def test_atomic_write_through_a_planted_temp_link(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "pack.json"
    (tmp_path / f".pack.json.part-{os.getpid()}").symlink_to(victim)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and victim.read_text() == "precious\n"


def test_make_dir_refuses_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "work").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        make_dir(tmp_path / "work")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafePathError):
        make_dir(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()
    assert make_dir(tmp_path / "a" / "b").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="root trusts the Allsky user's files; needs root")
def test_root_trusts_the_allsky_home_s_owner_and_nobody_else(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from allsky_tasks import safefs

    monkeypatch.setattr(safefs, "TRUSTED_UIDS", set())
    home, state = tmp_path / "allsky", tmp_path / "spec.json"
    home.mkdir()
    state.write_text("{}")
    state.chmod(0o640)
    os.chown(home, 4242, 4242)
    os.chown(state, 4242, 4242)
    with pytest.raises(UnsafePathError, match="uid 4242"):
        check_owned(state, state.stat())  # root alone trusts only root's
    safefs.trust_owner_of(home)
    check_owned(state, state.stat())  # the Allsky user's own file: fine for root now
    os.chown(state, 4343, 4343)
    with pytest.raises(UnsafePathError, match="uid 4343"):
        check_owned(state, state.stat())  # a third user's: refused
    os.chown(state, 4242, 4242)
    state.chmod(0o666)
    with pytest.raises(UnsafePathError, match="writable by group or others"):
        check_owned(state, state.stat())
