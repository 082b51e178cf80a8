"""Progress read the way a web page would: the JSON-lines event stream of real backups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site

STAGES = ["validate", "scan", "plan", "pause", "pack", "resume", "manifest", "verify", "prune",
          "backup"]


def _run(site: Site, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """`python -m allsky_tasks run ...` with output captured (not a TTY)."""
    environ = site.environ()
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "run", *args], cwd=site.root,
                          env=environ, text=True, capture_output=True, timeout=600)


def _events(path: Path) -> list[dict]:
    """Every event, one JSON object per line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_event_stream_of_a_backup(site: Site, tmp_path: Path) -> None:
    os.mkfifo(site.home / "config" / "myFiles" / "a-fifo")  # skipped with a warning
    site.spec("cfg", "type: config\nsections: {myfiles: true, databases: true}\n"
                     "on_file_error: warn\nservice: {pause: never}\n")
    events_file = tmp_path / "events" / "run.jsonl"
    proc = _run(site, "--events", str(events_file), "backup:cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = _events(events_file)
    assert {e["spec"] for e in events} == {"cfg"}
    started = [e["stage"] for e in events if e["event"] == "start"]
    assert started == STAGES
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert events[-1]["event"] == "done"
    (archive,) = site.archives()
    manifest = json.loads(sidecar_path(archive).read_text())["allskyTasks"]["manifest"]
    pack_end = next(e for e in events if e["stage"] == "pack" and e["event"] == "end")
    assert pack_end["bytes"] == sum(r["size"] for r in manifest)
    pack_start = next(e for e in events if e["stage"] == "pack" and e["event"] == "start")
    assert pack_start["total"] == pack_end["bytes"]
    verify_end = next(e for e in events if e["stage"] == "verify" and e["event"] == "end")
    assert verify_end["bytes"] == archive.stat().st_size
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("a-fifo: not a regular file" in w for w in warnings)
    assert events[-1]["result"]["warnings"] and "a-fifo" in proc.stdout.split("backup cfg:")[1]


def test_failing_backup_ends_with_an_error_event_naming_the_cause(site: Site,
                                                                  tmp_path: Path) -> None:
    (site.home / "config" / "cc.json").unlink()
    site.spec("cfg", "type: config\n")
    events_file = tmp_path / "events.jsonl"
    proc = _run(site, "backup:cfg", env={"ALLSKY_PROGRESS_FILE": str(events_file)})
    assert proc.returncode == 10, proc.stdout + proc.stderr
    last = _events(events_file)[-1]
    assert last["event"] == "error" and last["error"] == "SpecError"
    assert "cc.json does not exist" in last["message"]


def test_plain_output_of_a_long_backup_stays_short(site: Site) -> None:
    (site.home / "darks" / "big.raw").write_bytes(os.urandom(40 << 20))
    site.spec("slow", "type: config\nsections: {darks: true}\nlevel: 19\n")
    started = time.monotonic()
    proc = _run(site, "backup:slow", env={"ALLSKY_PROGRESS_INTERVAL": "1"})
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    # At most one progress line per interval per stage (a loaded machine packs longer, so the
    # bound follows the run's own length); everything else is a fixed handful of lines.
    progress = [ln for ln in lines if "%" in ln and "/s" in ln]
    assert len(progress) <= elapsed / 1.0 + 4, (elapsed, progress)
    assert len(lines) - len(progress) < 40, lines
    for line in (ln for ln in lines if ln.startswith("pack slow:") and "%" in ln):
        assert "/s, ETA " in line


def test_quiet_mode_prints_nothing_when_all_is_well(site: Site) -> None:
    site.spec("cfg", "type: config\n")
    proc = _run(site, "--quiet", "backup:cfg")
    assert proc.returncode == 0
    assert proc.stdout == "" and proc.stderr == ""
    assert len(site.archives()) == 1
