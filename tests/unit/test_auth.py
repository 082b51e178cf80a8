"""The device's authentication key, copy tags and tagged verification records."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from allsky_tasks.archive import authkey
from allsky_tasks.archive.records import RecordStore, make_record
from allsky_tasks.copies.auth import check_tag, make_tag, precheck
from allsky_tasks.errors import CopyAuthError, UnsafePathError


def test_the_key_is_made_once_private_and_refused_when_loose_or_foreign(tmp_path: Path) -> None:
    path = tmp_path / "auth.key"
    key, made = authkey.ensure(path)
    again, made_again = authkey.ensure(path)
    assert made and not made_again and again.secret == key.secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key.secret) == 32
    assert key.secret.hex() not in repr(key)  # the secret is never shown
    path.chmod(0o640)
    with pytest.raises(UnsafePathError, match="others may read"):
        authkey.load(path)
    assert authkey.load(path, ours=False) is not None  # one handed in from outside: only read
    path.chmod(0o600)
    os.chown(path, 4321, 4321)
    with pytest.raises(UnsafePathError, match="owned by uid 4321"):
        authkey.load(path)
    bad = tmp_path / "bad.key"
    bad.write_text("AGE-SECRET-KEY-1...\n")
    bad.chmod(0o600)
    with pytest.raises(UnsafePathError, match="not an allsky-tasks authentication key"):
        authkey.load(bad)


def test_a_copy_tag_covers_name_size_and_sha256(tmp_path: Path) -> None:
    key, _ = authkey.ensure(tmp_path / "a.key")
    other, _ = authkey.ensure(tmp_path / "b.key")
    data = os.urandom(1000)
    sha = hashlib.sha256(data).hexdigest()
    name = "allsky-config-backup-20260101-000000.tar.zst.age"
    tag = make_tag(key, name, len(data), sha)
    check_tag(key, name, len(data), sha, tag, "usb")  # the genuine copy passes
    for args, why in (((name, len(data) + 1, sha), "not what this device copied"),
                      ((name, len(data), "0" * 64), "not what this device copied"),
                      (("allsky-config-backup-20990101-000000.tar.zst.age", len(data), sha),
                       "not genuine")):
        with pytest.raises(CopyAuthError, match=why) as err:
            check_tag(key, *args, tag, "usb")
        assert err.value.exit_code == 28 and "copy target usb" in str(err.value)
    with pytest.raises(CopyAuthError, match="tagged by another key"):
        check_tag(other, name, len(data), sha, tag, "usb")
    with pytest.raises(CopyAuthError, match="no authentication tag") as err:
        precheck(key, name, None, "usb")
    assert "--trust-target" in str(err.value)
    forged = json.loads(tag)
    forged["sha256"] = "1" * 64  # a claim changed, the MAC kept
    with pytest.raises(CopyAuthError, match="not genuine"):
        precheck(key, name, json.dumps(forged).encode(), "usb")


def test_a_verification_record_counts_only_with_our_tag(tmp_path: Path) -> None:
    state = tmp_path / "backups" / ".allsky-tasks"
    archive = tmp_path / "backups" / "allsky-config-backup-20260101-000000.tar.zst"
    state.mkdir(parents=True)
    archive.write_bytes(b"x" * 100)
    store = RecordStore(state)
    store.put(archive, make_record(os.stat(archive), True, sha256="a" * 64, kind="ours"))
    assert RecordStore(state).get(archive)["ok"] is True  # type: ignore[index]
    data = json.loads(store.path.read_text())
    assert data["format"] == 2 and len(data["archives"][archive.name]["tag"]) == 64
    data["archives"][archive.name]["spec"] = "forged"  # any change voids the tag
    store.path.write_text(json.dumps(data))
    assert RecordStore(state).get(archive) is None
    del data["archives"][archive.name]["tag"]  # as an older version wrote it
    store.path.write_text(json.dumps(data))
    assert RecordStore(state).get(archive) is None and RecordStore(state).load() == {}
    with pytest.raises(ValueError, match="SHA-256"):
        store.put(archive, make_record(os.stat(archive), True))  # a good verdict names its bytes
