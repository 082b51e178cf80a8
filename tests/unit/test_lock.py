"""The destination lock: never through a link, never blocking, our error for a read-only folder."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from allsky_tasks.errors import DestinationError, LockError, UnsafePathError
from allsky_tasks.service.lock import LOCK_NAME, destination_lock


def test_lock_through_symlink_is_refused_and_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    dest = tmp_path / "backups"
    dest.mkdir()
    (dest / LOCK_NAME).symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link") as info, destination_lock(dest):
        pytest.fail("must not lock through a link")
    assert str(dest / LOCK_NAME) in str(info.value)
    assert victim.read_text() == "precious\n"


def test_lock_dangling_symlink_creates_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "backups"
    dest.mkdir()
    (dest / LOCK_NAME).symlink_to(tmp_path / "created-by-attacker")
    with pytest.raises(UnsafePathError), destination_lock(dest):
        pass
    assert not (tmp_path / "created-by-attacker").exists()


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_lock_that_is_not_a_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "backups"
    dest.mkdir()
    if kind == "fifo":
        os.mkfifo(dest / LOCK_NAME)
    else:
        (dest / LOCK_NAME).mkdir()
    with pytest.raises((UnsafePathError, DestinationError)) as info, destination_lock(dest):
        pass
    assert LOCK_NAME in str(info.value)


def test_second_holder_gets_lock_error(tmp_path: Path) -> None:
    with destination_lock(tmp_path), pytest.raises(LockError, match=f"pid {os.getpid()}"), \
            destination_lock(tmp_path):
        pass


@pytest.fixture
def readonly(tmp_path: Path) -> Iterator[Path]:
    """A real read-only filesystem (root ignores mode bits, not a ro mount)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_destination_is_our_error_naming_it(readonly: Path) -> None:
    with pytest.raises(DestinationError) as info, destination_lock(readonly):
        pass
    assert str(readonly) in str(info.value) and info.value.exit_code == 24
