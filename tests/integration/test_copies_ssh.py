"""Copies over SSH to a real OpenSSH server on 127.0.0.1 (Debian's openssh-server)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from allsky_tasks.copies import records
from allsky_tasks.copies.ssh import SshTarget, hidden_name
from allsky_tasks.copies.stage import copy_archive, verify_copy
from allsky_tasks.errors import CopyError
from tests.helpers.sshd import Sshd


def _archive(folder: Path, size: int) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "allsky-images-backup-20260301-120000.tar.zst"
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_copy_hashes_at_the_server_and_verify_catches_a_flipped_byte(
        sshd: Sshd, tmp_path: Path) -> None:
    archive, sha = _archive(tmp_path / "backups", 2_000_000)
    remote = tmp_path / "remote" / "allsky"
    item = sshd.item(remote)
    entry = copy_archive(SshTarget(item, {}), item, archive, None, sha, "imgs", lambda n: None)
    assert entry["method"] == "hashed at the target"
    assert (remote / archive.name).read_bytes() == archive.read_bytes()
    assert not (remote / hidden_name(archive.name)).exists()
    assert copy_archive(SshTarget(item, {}), item, archive, None, sha, "imgs",
                        lambda n: None)["method"] == "already there"
    copy = remote / archive.name
    data = bytearray(copy.read_bytes())
    data[123_456] ^= 0x40
    copy.write_bytes(bytes(data))
    result = verify_copy(SshTarget(item, {}), tmp_path / "backups", archive.name)
    assert result["ok"] is False and "SHA-256" in result["problem"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == sha  # local untouched


def test_unknown_and_changed_host_key_and_wrong_key_are_clear_errors(
        sshd: Sshd, tmp_path: Path) -> None:
    archive, sha = _archive(tmp_path / "backups", 10_000)
    remote = tmp_path / "remote"
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    item = sshd.item(remote, known_hosts=str(empty))
    with pytest.raises(CopyError) as err:
        copy_archive(SshTarget(item, {}), item, archive, None, sha, "x", lambda n: None)
    assert "not known" in str(err.value) and "127.0.0.1" in str(err.value)
    assert "ssh-keyscan" in str(err.value)
    other = tmp_path / "other_key"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(Path(str(other) + '.pub').read_text().split()[:2])}\n")
    item = sshd.item(remote, known_hosts=str(changed))
    with pytest.raises(CopyError) as err:
        copy_archive(SshTarget(item, {}), item, archive, None, sha, "x", lambda n: None)
    assert "CHANGED" in str(err.value) and "ssh-keygen -R" in str(err.value)
    item = sshd.item(remote, key_file=str(other))
    with pytest.raises(CopyError) as err:
        copy_archive(SshTarget(item, {}), item, archive, None, sha, "x", lambda n: None)
    assert "refused the login" in str(err.value) and "nas" in str(err.value)
    assert not remote.exists() or list(remote.iterdir()) == []


def test_sshd_killed_mid_transfer_then_the_next_run_resumes(sshd: Sshd, tmp_path: Path) -> None:
    archive, sha = _archive(tmp_path / "backups", 12_000_000)
    remote = tmp_path / "remote"
    item = sshd.item(remote)
    partial = remote / hidden_name(archive.name)
    target = SshTarget(item, {})
    target.limit_kbps = 16_000  # 2 MB/s: the kill lands mid-transfer

    def killer() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size > 2_000_000:
                sshd.kill()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    with pytest.raises(CopyError) as err:
        copy_archive(target, item, archive, None, sha, "imgs", lambda n: None)
    thread.join()
    assert "nas" in str(err.value)
    assert not (remote / archive.name).exists()  # nothing under the final name
    kept = partial.stat().st_size
    assert 2_000_000 < kept < 12_000_000
    assert partial.read_bytes() == archive.read_bytes()[:kept]
    sshd.start()
    moved: list[int] = []
    entry = copy_archive(SshTarget(item, {}), item, archive, None, sha, "imgs", moved.append)
    assert moved[0] == kept  # resumed: the kept bytes were not sent again
    assert entry["ok"] and (remote / archive.name).read_bytes() == archive.read_bytes()
    assert not partial.exists()
    assert records.load(tmp_path / "backups", "imgs", "nas")["copies"][archive.name]["ok"] is True


def test_sftp_only_account_reads_copies_back(tmp_path: Path) -> None:
    from tests.helpers.sshd import require_openssh

    require_openssh()
    server = Sshd(tmp_path / "sftp-only").setup()
    config = server.root / "sshd_config"
    config.write_text(config.read_text() + "ForceCommand internal-sftp\n")
    server.start()
    try:
        archive, sha = _archive(tmp_path / "backups", 1_500_000)
        remote = tmp_path / "remote" / "deep" / "folder"  # created with sftp mkdir, step by step
        item = server.item(remote)
        context = {"state_dir": tmp_path / "backups" / ".allsky-tasks"}
        entry = copy_archive(SshTarget(item, context), item, archive, None, sha, "imgs",
                             lambda n: None)
        assert entry["method"] == "read back"
        assert (remote / archive.name).read_bytes() == archive.read_bytes()
        assert verify_copy(SshTarget(item, context), tmp_path / "backups",
                           archive.name)["ok"] is True
        assert not list((tmp_path / "backups" / ".allsky-tasks").glob(".sftp-get-*"))
    finally:
        server.kill()
