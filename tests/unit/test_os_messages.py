"""OSErrors on paths become one plain sentence naming the file (errors.os_message), at every boundary."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from allsky_tasks.errors import RestoreError, os_message
from allsky_tasks.safefs import atomic_write_bytes
from tests.helpers.disks import tmpfs

from ..conftest import Site, archive_metadata, backup


def _error(fn) -> OSError:  # noqa: ANN001
    with pytest.raises(OSError) as info:
        fn()
    return info.value


def test_real_errors_read_as_plain_sentences_naming_the_file(tmp_path: Path) -> None:
    link = tmp_path / "settings.json"
    link.symlink_to("elsewhere.json")
    e = _error(lambda: os.open(link, os.O_RDONLY | os.O_NOFOLLOW))
    assert e.errno == errno.ELOOP
    text = os_message(e, link, "opening it")
    assert text.startswith(f"{link}: is a symbolic link") and "Too many levels" not in text
    assert text.endswith(", while opening it")
    sock_path = tmp_path / "allsky.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        e = _error(lambda: os.open(sock_path, os.O_RDONLY | os.O_NONBLOCK))
    assert e.errno == errno.ENXIO
    assert os_message(e) == f"{sock_path}: is a socket, FIFO or device, not a regular file"
    assert "No such device or address" not in os_message(e)


def test_a_full_disk_names_the_file_a_write_did_not(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "tiny", "64k") as disk:
        target = disk / "state.json"
        e = _error(lambda: atomic_write_bytes(target, os.urandom(1 << 20)))
        assert e.errno == errno.ENOSPC
        assert os_message(e) == f"{target}: the disk is full (No space left on device)"
        assert list(disk.iterdir()) == []  # the temp name is gone too


def _fill(disk: Path) -> None:
    """Fill a tmpfs to the last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_disk_while_writing_the_undo_backup_names_the_file(site: Site, tmp_path: Path) -> None:
    from allsky_tasks.restore.prepare import RestoreOptions
    from allsky_tasks.restore.run import restore

    archive = backup(site, "cfg", "type: config\n")
    before = (site.home / "env.json").read_bytes()
    with tmpfs(tmp_path / "full", "1m") as disk:
        _fill(disk)
        options = RestoreOptions(backup_dir=disk, legacy_modules=tmp_path / "no-opt", service=None)
        with pytest.raises(RestoreError) as info:
            restore(archive, site.home, options)
    text = str(info.value)
    assert "cannot take the undo backup" in text and "the disk is full (No space left on device)" in text
    assert f"{disk}" in text and "while writing the undo backup" in text
    assert "[Errno" not in text
    assert (site.home / "env.json").read_bytes() == before  # nothing was changed


@pytest.mark.parametrize("swap", ["symlink", "socket"])
def test_a_source_swapped_after_the_scan_is_named_in_plain_words(site: Site, swap: str) -> None:
    from .test_pack import _scan_then

    victim = site.home / "config" / "overlay" / "fonts" / "MyFont.ttf"
    holder: list[socket.socket] = []

    def change() -> None:
        victim.unlink()
        if swap == "symlink":
            victim.symlink_to("/etc/hostname")
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(victim))
            holder.append(sock)

    try:
        archive = _scan_then(site, "quick", "type: config\non_file_error: warn\n", change)
    finally:
        for sock in holder:
            sock.close()
    warnings = archive_metadata(archive)["allskyTasks"]["warnings"]
    [warning] = [w for w in warnings if "MyFont.ttf" in w]
    expected = "is a symbolic link" if swap == "symlink" else "is a socket, FIFO or device"
    assert warning.startswith(f"{victim}: {expected}") and "not archived" in warning
    assert "Too many levels" not in warning and "No such device" not in warning
