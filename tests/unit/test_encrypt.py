"""age encryption of copies: pyrage streams, keygen, SSH recipients, wrong identities, tampering."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pyrage", reason="the Python package pyrage is not installed")

from allsky_tasks.copies.encrypt import (  # noqa: E402
    AgeEncryptor,
    decryptor,
    encrypt_stream,
    encryptor_for,
    keygen,
    load_identities,
    parse_recipients,
)
from allsky_tasks.errors import EncryptionError  # noqa: E402


def seal(data: bytes, recipients: list[str]) -> bytes:
    out = io.BytesIO()
    AgeEncryptor(recipients).encrypt(io.BytesIO(data), out)
    return out.getvalue()


def test_keygen_writes_a_0600_identity_and_returns_its_recipient(tmp_path: Path) -> None:
    ident = tmp_path / "backup-key.txt"
    old = os.umask(0)
    try:
        recipient = keygen(ident)
    finally:
        os.umask(old)
    assert recipient.startswith("age1")
    assert stat.S_IMODE(ident.stat().st_mode) == 0o600
    assert f"# public key: {recipient}" in ident.read_text()
    with pytest.raises(EncryptionError, match="already exists"):
        keygen(ident)
    assert f"# public key: {recipient}" in ident.read_text()  # not overwritten


def test_round_trip_and_the_ciphertext_hides_the_plaintext(tmp_path: Path) -> None:
    ident = tmp_path / "id.txt"
    recipient = keygen(ident)
    secret = b'{"REMOTESERVER_PASSWORD": "hunter2-very-secret"}' * 3000
    sealed = seal(secret, [recipient])
    assert b"hunter2" not in sealed and secret[:40] not in sealed
    written = io.BytesIO()
    size, digest = encrypt_stream(io.BytesIO(secret), written, parse_recipients([recipient]))
    assert (size, digest) == (len(written.getvalue()), hashlib.sha256(written.getvalue()).hexdigest())
    assert digest != hashlib.sha256(sealed).hexdigest()  # a new file key every time
    out = io.BytesIO()
    AgeEncryptor([recipient], ident).decrypt(io.BytesIO(sealed), out)
    assert out.getvalue() == secret


def test_the_age_binary_reads_what_we_write(tmp_path: Path) -> None:
    age = shutil.which("age")
    if not age:
        pytest.skip("age not found: install the Debian package age")
    ident = tmp_path / "id.txt"
    data = os.urandom(200_000)
    (tmp_path / "x.age").write_bytes(seal(data, [keygen(ident)]))
    plain = subprocess.run([age, "-d", "-i", str(ident), str(tmp_path / "x.age")], capture_output=True,
                           check=True).stdout
    assert plain == data


def test_ssh_public_keys_are_recipients_and_private_keys_identities(tmp_path: Path) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not found: install the Debian package openssh-client")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    data = b"config archive bytes" * 100
    sealed = seal(data, [key.with_suffix(".pub").read_text().strip()])
    out = io.BytesIO()
    decryptor(key).decrypt(io.BytesIO(sealed), out)
    assert out.getvalue() == data


def test_wrong_identity_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    sealed = seal(b"x" * 1000, [keygen(tmp_path / "right.txt")])
    wrong = tmp_path / "wrong.txt"
    keygen(wrong)
    out = io.BytesIO()
    with pytest.raises(EncryptionError, match="does not match any recipient"):
        decryptor(wrong).decrypt(io.BytesIO(sealed), out)
    assert out.getvalue() == b""
    with pytest.raises(EncryptionError, match="an identity is needed"):
        AgeEncryptor([keygen(tmp_path / "third.txt")]).decrypt(io.BytesIO(sealed), out)
    with pytest.raises(EncryptionError, match="missing.txt: cannot be read"):
        decryptor(tmp_path / "missing.txt")
    (tmp_path / "junk.txt").write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    (tmp_path / "junk.txt").chmod(0o600)
    with pytest.raises(EncryptionError, match="junk.txt: not an age identity"):
        load_identities(tmp_path / "junk.txt")


def test_tampered_or_truncated_ciphertext_is_refused(tmp_path: Path) -> None:
    ident = tmp_path / "id.txt"
    data = os.urandom(300_000)
    sealed = bytearray(seal(data, [keygen(ident)]))
    sealed[200_000] ^= 0x01
    with pytest.raises(EncryptionError, match="damaged or was altered"):
        decryptor(ident).decrypt(io.BytesIO(bytes(sealed)), io.BytesIO())
    sealed[200_000] ^= 0x01
    with pytest.raises(EncryptionError, match="damaged or was altered"):
        decryptor(ident).decrypt(io.BytesIO(bytes(sealed[:-50])), io.BytesIO())


def test_bad_recipients_are_named_and_items_choose_encryption(tmp_path: Path) -> None:
    with pytest.raises(EncryptionError, match=r"copies\[nas\].encrypt.recipients: recipient 'age1nope'"):
        encryptor_for({"name": "nas", "encrypt": {"recipients": ["age1nope"]}})
    with pytest.raises(EncryptionError, match="no recipients"):
        parse_recipients([])
    recipient = keygen(tmp_path / "id.txt")
    spec_level = {"recipients": [recipient]}
    assert encryptor_for({"name": "usb"}, None) is None
    assert encryptor_for({"name": "usb", "encrypt": False}, spec_level) is None
    enc = encryptor_for({"name": "nas"}, spec_level)
    assert enc is not None and enc.suffix == ".age" and enc.recipients == [recipient]


def test_sealed_ciphertext_is_kept_after_a_failure_and_reused_then_removed(tmp_path: Path) -> None:
    from allsky_tasks.copies.encrypt import sealed

    backups, work = tmp_path / "backups", tmp_path / "backups" / ".allsky-tasks" / "work"
    backups.mkdir()
    archive = backups / "allsky-config-backup-20260301-120000.tar.zst"
    archive.write_bytes(os.urandom(100_000))
    enc = AgeEncryptor([keygen(tmp_path / "id.txt")])
    with pytest.raises(RuntimeError), sealed(archive, enc, work) as (path, size, sha):
        first = path.read_bytes()
        assert (size, sha) == (len(first), hashlib.sha256(first).hexdigest())
        raise RuntimeError("network gone")
    assert path.read_bytes() == first  # kept for the next run
    with sealed(archive, enc, work) as (again, size2, sha2):
        assert again == path and again.read_bytes() == first and sha2 == sha
    assert not path.exists() and list(work.iterdir()) == []  # removed after success
    # Another recipient list or a changed archive: encrypted afresh.
    with pytest.raises(RuntimeError), sealed(archive, enc, work) as (path, _, sha):
        raise RuntimeError("again")
    other = AgeEncryptor([keygen(tmp_path / "id2.txt")])
    with sealed(archive, other, work) as (path2, _, sha_other):
        assert path2 != path and sha_other != sha
    # The archive is pruned: its kept ciphertext goes at the next run's start.
    archive2 = backups / "allsky-config-backup-20260302-120000.tar.zst"
    archive2.write_bytes(b"x" * 10)
    archive.unlink()
    with sealed(archive2, enc, work):
        assert not path.exists()
