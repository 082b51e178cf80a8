"""Free space: Allsky's byte format, the refusal message, a real tiny filesystem."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from allsky_tasks.backup.space import MIN_MARGIN, check_space, existing_parent, format_bytes, free_bytes, required_bytes
from allsky_tasks.errors import SpaceError


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"),
    (20 * 1024 ** 2, "20.0 MB"), (int(18.4 * 1024 ** 2), "18.4 MB"), (3 * 1024 ** 3, "3.0 GB"),
    (5 * 1024 ** 4, "5.0 TB"), (2048 * 1024 ** 4, "2048.0 TB"),
])
def test_format_bytes_like_allsky(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_required_has_a_relative_and_a_minimum_margin() -> None:
    assert required_bytes(1000) == 1000 + MIN_MARGIN
    assert required_bytes(10 << 30) == (10 << 30) + (1 << 30)
    assert required_bytes(1000, margin=0.5, min_margin=0) == 1500


def test_check_space_refuses_with_both_numbers_and_what_to_do(tmp_path: Path) -> None:
    dest = tmp_path / "allskybackups"
    with pytest.raises(SpaceError) as info:
        check_space(dest, 3 << 30, free=1 << 30)
    err = info.value
    assert err.exit_code == 12
    message = str(err)
    assert str(dest) in message
    assert "3.0 GB" in message and "1.0 GB" in message  # needed and free, in human units
    assert "delete or move old backups" in message and "destination" in message


def test_check_space_accepts_enough_room(tmp_path: Path) -> None:
    check_space(tmp_path, 1 << 30, free=(1 << 30) + (200 << 20))
    check_space(tmp_path, 100, margin=0, min_margin=0, free=100)


def test_check_space_margin_alone_can_refuse(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="margin"):
        check_space(tmp_path, 1 << 20, free=32 << 20)  # the archive fits, the 64 MiB margin not
    check_space(tmp_path, 1 << 20, min_margin=0, free=32 << 20)


def test_free_bytes_of_a_destination_not_created_yet(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "b" / "allskybackups"
    assert existing_parent(missing) == tmp_path
    st = os.statvfs(tmp_path)
    assert abs(free_bytes(missing) - st.f_bavail * st.f_frsize) < (64 << 20)  # others write too


@pytest.fixture
def tiny(tmp_path: Path):
    """A 1 MiB tmpfs (skipped where mounting is not allowed)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)
    if proc.returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_real_small_filesystem(tiny: Path) -> None:
    free = free_bytes(tiny / "allskybackups")
    assert 0 < free <= 1 << 20
    with pytest.raises(SpaceError) as info:
        check_space(tiny / "allskybackups", 2 << 20, min_margin=0)
    assert str(tiny / "allskybackups") in str(info.value)
    assert "2.0 MB" in str(info.value)
    check_space(tiny, 100 << 10, min_margin=0)
    with pytest.raises(SpaceError):
        check_space(tiny, 100 << 10)  # the default 64 MiB margin does not fit on 1 MiB
