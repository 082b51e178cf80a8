"""`allsky-tasks keygen`: writes a 0600 identity, prints only its recipient on stdout, never overwrites."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from allsky_tasks.cli import main

pytest.importorskip("pyrage", reason="the Python package pyrage is not installed")


def test_keygen_prints_the_recipient_and_the_advice(tmp_path: Path, capsys) -> None:
    ident = tmp_path / "identity.txt"
    assert main(["keygen", "--output", str(ident)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("age1") and len(out.strip().splitlines()) == 1
    assert f"# public key: {out.strip()}" in ident.read_text()
    assert stat.S_IMODE(ident.stat().st_mode) == 0o600
    assert "SOMEWHERE OTHER THAN THIS PI" in err
    assert main(["keygen", "-o", str(ident)]) == 23
    assert "already exists" in capsys.readouterr().err
