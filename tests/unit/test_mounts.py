"""Mount checks: a tmpfs is a mounted disk, a plain folder (the unplugged disk) is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from allsky_tasks.copies.mounts import PREFIXES_ENV, mount_problem, must_be_mounted, require_mounted
from allsky_tasks.errors import DestinationError
from tests.helpers.disks import tmpfs


def test_default_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PREFIXES_ENV, raising=False)
    assert must_be_mounted(Path("/media/usb/allskybackups"), None)
    assert must_be_mounted(Path("/run/media/pi/disk/x"), None)
    assert must_be_mounted(Path("/mnt"), None)
    assert not must_be_mounted(Path("/mntx/a"), None)
    assert not must_be_mounted(Path("/home/pi/allskybackups"), None)
    assert not must_be_mounted(Path("/media/usb"), False)
    assert must_be_mounted(Path("/home/pi/nas"), True)


def test_prefixes_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PREFIXES_ENV, f"{tmp_path / 'media'}:/elsewhere")
    assert must_be_mounted(tmp_path / "media" / "usb" / "x", None)
    assert not must_be_mounted(Path("/media/usb"), None)


def test_tmpfs_is_mounted_and_plain_folder_is_not(tmp_path: Path) -> None:
    home = tmp_path / "allsky"
    home.mkdir()
    plain = tmp_path / "media" / "usb"
    plain.mkdir(parents=True)
    problem = mount_problem(plain / "allskybackups", home)
    assert problem is not None and "not mounted" in problem
    with pytest.raises(DestinationError) as err:
        require_mounted(plain / "allskybackups", home, "nightly: destination", True)
    assert "nightly: destination" in str(err.value) and err.value.exit_code == 24
    assert not (plain / "allskybackups").exists()
    with tmpfs(tmp_path / "media" / "disk", "1m") as disk:
        assert mount_problem(disk / "allskybackups", home) is None
        require_mounted(disk / "allskybackups", home, "x", True)
