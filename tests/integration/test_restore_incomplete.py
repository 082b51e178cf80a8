"""Known-bad content: a file packed while it changed (on_file_error: warn) is never restored silently."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.errors import RestoreError
from allsky_tasks.restore.run import restore

from ..conftest import Site, archive_metadata, backup
from .test_restore import opts

BIG = 16 << 20  # streamed (not read whole), so a change while packing is found afterwards


@pytest.fixture
def flagged(site: Site) -> tuple[Path, Path]:
    """An archive whose darks/growing.raw grew while it was packed, and that file (changed since)."""
    big = site.home / "darks" / "growing.raw"
    big.write_bytes(os.urandom(BIG))
    size = big.stat().st_size
    writer = subprocess.Popen([sys.executable, "-c", "import sys\nf = open(sys.argv[1], 'ab', "
                               "buffering=0)\nwhile True: f.write(b'x' * 512)\n", str(big)])
    try:
        while big.stat().st_size == size:
            assert writer.poll() is None, "the appender died"
        archive = backup(site, "darks", "type: config\nsections: {darks: true}\n"
                                        "on_file_error: warn\n")
    finally:
        writer.kill()
        writer.wait()
    assert _row(archive).get("changedWhilePacking") is True
    big.write_bytes(b"what the operator has now")
    return archive, big


def _row(archive: Path) -> dict[str, Any]:
    """The manifest row of darks/growing.raw."""
    rows = {r["path"]: r for r in archive_metadata(archive)["allskyTasks"]["manifest"]}
    row: dict[str, Any] = rows["darks/growing.raw"]
    return row


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "restore", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)


def test_checks_and_dry_run_name_the_incomplete_member(site: Site, flagged: tuple[Path, Path]) -> None:
    archive, big = flagged
    proc = _cli(site, archive.name, "--dry-run", "--no-service")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "Content complete" in x)
    assert line.lstrip().startswith("[warn]") and "darks/growing.raw" in line
    assert "changed while being packed" in line
    assert big.read_bytes() == b"what the operator has now"


def test_not_on_a_terminal_it_needs_an_explicit_flag(site: Site, flagged: tuple[Path, Path]) -> None:
    archive, big = flagged
    refused = _cli(site, archive.name, "--yes", "--no-service")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--accept-incomplete" in refused.stderr and "Restore cancelled" in refused.stdout
    assert big.read_bytes() == b"what the operator has now"
    done = _cli(site, archive.name, "--yes", "--no-service", "--accept-incomplete")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restoring them anyway" in done.stdout, done.stdout
    assert big.stat().st_size == _row(archive)["size"]


def test_in_process_the_restore_refuses_without_acceptance(site: Site, flagged: tuple[Path, Path]) -> None:
    archive, big = flagged
    with pytest.raises(RestoreError, match="changed while being packed"):
        restore(archive, site.home, opts(site, undo=False))
    assert big.read_bytes() == b"what the operator has now"
    summary = restore(archive, site.home, opts(site, undo=False, accept_incomplete=True))
    assert any("darks/growing.raw" in w for w in summary.warnings)


def _on_terminal(site: Site, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run restore with a pseudo-terminal as stdin/stdout, answering each question in turn."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "allsky_tasks", "restore", *args], cwd=site.root,
                            env=site.environ(), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out, pending = b"", list(answers)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
        if pending and out.rstrip().endswith(b"[y/N]"):
            os.write(master, pending.pop(0).encode() + b"\n")
            out += b"\n"
    os.close(master)
    return proc.wait(timeout=60), out.decode(errors="replace")


def test_on_a_terminal_it_asks_first(site: Site, flagged: tuple[Path, Path]) -> None:
    archive, big = flagged
    code, out = _on_terminal(site, [archive.name, "--yes", "--no-service"], ["n"])
    assert code == 2 and "incomplete copies" in out and "Restore cancelled" in out, out
    assert big.read_bytes() == b"what the operator has now"
    code, out = _on_terminal(site, [archive.name, "--yes", "--no-service"], ["y"])
    assert code == 0, out
    assert big.stat().st_size == _row(archive)["size"]
