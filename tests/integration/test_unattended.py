"""Unattended runs end to end: lock wait, recorded outcomes, WebUI messages, notifications."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allsky_tasks.service.lock import destination_lock

from ..conftest import Site
from ..helpers.http_receiver import http_receiver

CONFIG = "type: config\ndescription: nightly config\n"
# addMessage.sh's line: id, cmd, type, date (`date '+%B %d, %r'`), count, message, url.
LINE = re.compile(r"^\t\t(danger|warning)\t[A-Z][a-z]+ \d\d, \d\d:\d\d:\d\d [AP]M\t(\d+)\t"
                  r"([^\t\n]+)\t$")


def _run(site: Site, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """`python -m allsky_tasks run ...` as cron or the timer starts it."""
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "run", *args], cwd=site.root,
                          env={**site.environ(), **(env or {})}, text=True,
                          capture_output=True, timeout=300)


def _messages(site: Site) -> list[str]:
    path = site.home / "config" / "messages.txt"
    return path.read_text().splitlines(keepends=True) if path.exists() else []


def _last_run(site: Site, spec: str) -> dict:
    return json.loads((site.env.state_dir / "runs" / f"{spec}.json").read_text())


def test_lock_wait_waits_then_skips_with_a_warning_and_exit_0(site: Site) -> None:
    site.spec("cfg", CONFIG)
    site.env.backup_dir.mkdir(parents=True)
    with destination_lock(site.env.backup_dir):
        t0 = time.monotonic()
        proc = _run(site, "--quiet", "--lock-wait", "2", "backup:cfg")
        waited = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert waited >= 2.0
    assert "warning: backup cfg skipped" in proc.stderr and "after waiting 2 s" in proc.stderr
    assert site.archives() == []
    assert _last_run(site, "cfg")["result"] == "skipped"
    (line,) = _messages(site)
    m = LINE.match(line)
    assert m and m.group(1) == "warning" and "backup cfg skipped" in m.group(3)
    # The skipped pack is not remembered as done: the next run packs.
    proc = _run(site, "--quiet", "--lock-wait", "2", "backup:cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(site.archives()) == 1 and _last_run(site, "cfg")["result"] == "ok"


def test_without_lock_wait_a_held_lock_is_an_error(site: Site) -> None:
    site.spec("cfg", CONFIG)
    site.env.backup_dir.mkdir(parents=True)
    with destination_lock(site.env.backup_dir):
        proc = _run(site, "--quiet", "backup:cfg")
    assert proc.returncode == 13, proc.stdout + proc.stderr
    assert _last_run(site, "cfg")["result"] == "failed"


@pytest.fixture
def tiny(tmp_path: Path):
    """A 64 KiB tmpfs (root only): too small for any backup."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_failed_pack_tells_the_webui_apprise_and_the_ping(site: Site, tiny: Path) -> None:
    site.spec("cfg", CONFIG + f"destination: {tiny}\n")
    with http_receiver() as (url, got):
        env = {"ALLSKY_NOTIFY_URLS": f"json://127.0.0.1:{url.rsplit(':', 1)[1]}/notify",
               "ALLSKY_PING_URL": f"{url}/ping/abc"}
        proc = _run(site, "--quiet", "backup:cfg", env=env)
        assert proc.returncode == 12, proc.stdout + proc.stderr
        paths = [(r.method, r.path) for r in got]
        assert paths[0] == ("POST", "/ping/abc/start")
        assert ("POST", "/ping/abc/fail") in paths and ("POST", "/ping/abc") not in paths
        (note,) = [r for r in got if r.path == "/notify"]
        payload = json.loads(note.body)
        assert payload["type"] == "failure" and "backup failed" in payload["title"]
        assert "backup cfg failed (SpaceError)" in payload["message"]
        fail = next(r for r in got if r.path == "/ping/abc/fail")
        assert b"SpaceError" in fail.body
    (line,) = _messages(site)
    m = LINE.match(line)
    assert m and m.group(1) == "danger" and m.group(2) == "1", line
    assert m.group(3).startswith("allsky-tasks: backup cfg failed (SpaceError): ")
    assert _last_run(site, "cfg")["error"] == "SpaceError"
    # The same failure again: Allsky's de-duplication, one line with count 2.
    assert _run(site, "--quiet", "backup:cfg").returncode == 12
    (line,) = _messages(site)
    assert LINE.match(line).group(2) == "2"


def test_success_pings_and_tells_nobody(site: Site) -> None:
    site.spec("cfg", CONFIG)
    with http_receiver() as (url, got):
        env = {"ALLSKY_NOTIFY_URLS": f"json://127.0.0.1:{url.rsplit(':', 1)[1]}/notify",
               "ALLSKY_PING_URL": f"{url}/ping/abc"}
        proc = _run(site, "--quiet", "backup:cfg", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert [r.path for r in got] == ["/ping/abc/start", "/ping/abc"]
    assert _messages(site) == [] and _last_run(site, "cfg")["result"] == "ok"


def test_allsky_addmessage_script_is_used_when_the_install_has_it(site: Site,
                                                                  tiny: Path) -> None:
    script = site.home / "scripts" / "addMessage.sh"
    script.parent.mkdir(exist_ok=True)
    calls = site.root / "calls.txt"
    script.write_text(f'#!/bin/sh\nprintf "%s|" "$ALLSKY_HOME" "$@" >> {calls}\necho >> {calls}\n')
    script.chmod(0o755)
    site.spec("cfg", CONFIG + f"destination: {tiny}\n")
    assert _run(site, "--quiet", "backup:cfg").returncode == 12
    (call,) = calls.read_text().splitlines()
    home, flag, kind, flag2, msg, _ = call.split("|")
    assert (home, flag, kind, flag2) == (str(site.home), "--type", "error", "--msg")
    assert msg.startswith("allsky-tasks: backup cfg failed (SpaceError)")
    assert _messages(site) == []  # Allsky's script wrote it, not us
