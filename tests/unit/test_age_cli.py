"""age through the `age` program (where pyrage has no wheel): the same files as pyrage, both ways."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.copies import encrypt as enc
from allsky_tasks.errors import EncryptionError

pytestmark = pytest.mark.skipif(not shutil.which("age") or not shutil.which("age-keygen"),
                                reason="needs the age program (apt-get install age)")
DATA = os.urandom(3 << 20) + b"tail"  # more than one pipe buffer and one chunk


def _with(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setenv(enc.BACKEND_ENV, backend)
    assert enc.backend() == backend


def _seal(recipients: list[str]) -> bytes:
    out = io.BytesIO()
    size, sha = enc.encrypt_stream(io.BytesIO(DATA), out, enc.parse_recipients(recipients))
    assert size == len(out.getvalue())
    return out.getvalue()


def _open(data: bytes, identity: Path) -> bytes:
    out = io.BytesIO()
    enc.decrypt_stream(io.BytesIO(data), out, enc.load_identities(identity))
    return out.getvalue()


def test_the_program_and_pyrage_read_each_other_s_files(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    _with(monkeypatch, "cli")
    identity = tmp_path / "id.txt"
    recipient = enc.keygen(identity)
    assert recipient.startswith("age1") and oct(identity.stat().st_mode & 0o777) == "0o600"
    shown = subprocess.run(["age-keygen", "-y", str(identity)], capture_output=True, text=True)
    assert shown.stdout.strip() == recipient
    by_cli = _seal([recipient])
    assert by_cli.startswith(b"age-encryption.org/v1\n") and _open(by_cli, identity) == DATA
    _with(monkeypatch, "pyrage")
    assert _open(by_cli, identity) == DATA  # pyrage reads the program's file
    by_pyrage = _seal([recipient])
    _with(monkeypatch, "cli")
    assert _open(by_pyrage, identity) == DATA  # and the other way round


def test_ssh_keys_work_through_the_program(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _with(monkeypatch, "cli")
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sealed = _seal([(tmp_path / "key.pub").read_text().strip()])
    assert _open(sealed, key) == DATA


def test_wrong_identity_damage_and_bad_recipients_are_named(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    _with(monkeypatch, "cli")
    recipient = enc.keygen(tmp_path / "a.txt")
    enc.keygen(tmp_path / "b.txt")
    sealed = _seal([recipient])
    with pytest.raises(EncryptionError, match="does not match any recipient"):
        _open(sealed, tmp_path / "b.txt")
    bad = bytearray(sealed)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(EncryptionError, match="damaged or was altered"):
        _open(bytes(bad), tmp_path / "a.txt")
    wrong = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")  # a bad checksum
    with pytest.raises(EncryptionError, match="recipient .* is not usable"):
        enc.parse_recipients([wrong], where="copies[b2].encrypt.recipients")
    (tmp_path / "junk.txt").write_text("not a key\n")
    (tmp_path / "junk.txt").chmod(0o600)  # private, as an identity must be: only its content is wrong
    with pytest.raises(EncryptionError, match="not an age identity"):
        enc.load_identities(tmp_path / "junk.txt")


def test_without_pyrage_or_the_program_keygen_says_the_one_line_that_installs_it(
        tmp_path: Path) -> None:
    # No pyrage importable, and a PATH without age: what a venv made without the cloud extra sees.
    code = ("import sys; sys.modules['pyrage'] = None\n"
            "from allsky_tasks.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "keygen", "-o", str(tmp_path / "id.txt")],
                          env={**os.environ, "PATH": str(tmp_path)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 23, proc.stderr
    assert "Traceback" not in proc.stderr and "ModuleNotFoundError" not in proc.stderr
    assert "scripts/bootstrap.sh cloud" in proc.stderr and "apt install age" in proc.stderr
    assert not (tmp_path / "id.txt").exists()
