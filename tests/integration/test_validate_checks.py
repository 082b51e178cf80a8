"""What validate checks before anything is packed: age recipients; identity files as secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.copies.encrypt import keygen, load_identities
from allsky_tasks.errors import EncryptionError

from ..conftest import Site


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root, env=site.environ(),
                          text=True, capture_output=True, timeout=300)


def _broken(recipient: str) -> str:
    """The key with one character of its data changed: the bech32 checksum no longer matches."""
    i = len(recipient) // 2
    return recipient[:i] + ("q" if recipient[i] != "q" else "p") + recipient[i + 1:]


def test_a_recipient_with_a_bad_checksum_fails_validate_with_23_before_pack(site: Site, tmp_path: Path) -> None:
    bad = _broken(keygen(tmp_path / "identity.txt"))
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: usb
    path: {tmp_path / 'usb'}
    must_be_mounted: false
    encrypt: {{recipients: ["{bad}"]}}
""")
    run = _cli(site, "run", "backup:cfg")
    out = run.stdout + run.stderr
    assert run.returncode == 23, out
    assert "copies[usb].encrypt.recipients" in out and bad[:20] in out and "cfg.yaml" in out, out
    assert site.archives() == []  # refused at validate: nothing was packed


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_an_identity_others_may_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    identity = tmp_path / "identity.txt"
    keygen(identity)
    assert load_identities(identity)  # 0600, as keygen writes it: used
    os.chmod(identity, mode)
    with pytest.raises(EncryptionError) as info:
        load_identities(identity)
    assert "others may read it" in str(info.value) and f"chmod 600 {identity}" in (info.value.hint or "")
    assert info.value.exit_code == 23
