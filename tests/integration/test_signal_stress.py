"""Ctrl-C and SIGTERM at random points of real backups: the service always ends as it was."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import Site
from ..helpers.service_fixture import service_spec, standin_running, start_standin, started_pids

RUNS, TOTAL_SECONDS, RUN_TIMEOUT = 30, 60.0, 60.0
SEED = 4


def _backup(site: Site) -> subprocess.Popen[str]:
    """`allsky-tasks run backup:sig` in a process group of its own, as a terminal runs it.

    Returns once the run's first progress event is written: signals before that would land in
    the interpreter's own start-up (site.py), before a line of ours runs.
    """
    events = site.root / "events.jsonl"
    events.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "allsky_tasks", "run", "--events", str(events),
                             "backup:sig"], cwd=site.root, env=site.environ(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not events.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return proc


def _signal(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    """Ctrl-C signals the whole foreground group (as a terminal does); SIGTERM the process."""
    if proc.poll() is None:
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:  # `kill PID`, as systemd or an operator sends it
            proc.send_signal(signal.SIGTERM)


def _finish(proc: subprocess.Popen[str], what: str) -> str:
    """The run's output once it ended; a run that does not end within RUN_TIMEOUT fails the test."""
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{what}: still running after {RUN_TIMEOUT:g} s (hung):\n{out}") from None
    return out


def test_signals_at_random_points_always_leave_the_service_running(site: Site, svc: Path) -> None:
    db = site.home / "config" / "myFiles" / "allsky.db"
    (site.home / "darks" / "big.raw").write_bytes(random.Random(SEED).randbytes(12 << 20))
    start_standin(svc, db)
    site.spec("sig", "type: config\nsections: {databases: true, darks: true}\n"
                     "retention: {keep_last: 1}\n"
                     f"service: {json.dumps(service_spec(svc, db=db, pause='always'))}\n")
    dest = site.env.backup_dir
    marker = dest / ".allsky-tasks" / "service-paused.json"
    started = time.monotonic()
    first = _backup(site)
    running = time.monotonic()
    calibration = _finish(first, "the uninterrupted run")
    assert "pack sig:" in calibration, calibration
    span = time.monotonic() - running  # how long a run takes here, now, from its first event
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    runs = 0
    while runs < RUNS and time.monotonic() - started < TOTAL_SECONDS:
        runs += 1
        (site.home / "darks" / "run.txt").write_text(f"run {runs}\n")  # every run packs anew
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        delay = rng.uniform(0.0, span * 1.2)
        # Now and then a second one soon after (an impatient Ctrl-C, systemd's SIGTERM after it).
        again = rng.uniform(0.0, 0.3) if rng.random() < 0.3 else None
        restarts = len(started_pids(svc))
        what = (f"run {runs}: {sig.name} after {delay:.3f} s"
                + (f", again {again:.3f} s later" if again is not None else "") + f" (seed {SEED})")
        proc = _backup(site)
        time.sleep(delay)
        _signal(proc, sig)
        if again is not None:
            time.sleep(again)
            _signal(proc, sig)
        out = _finish(proc, what)
        paused = len(started_pids(svc)) > restarts  # stopped and started again in this run
        assert standin_running(svc), f"{what}: the service was left stopped\n{out}"
        assert not marker.exists(), f"{what}: the service marker was left\n{out}"
        parts = [p.name for p in dest.iterdir() if p.name.endswith(".part")]
        assert not parts, f"{what}: left {parts}\n{out}"
        assert proc.returncode in (0, 130, -sig), f"{what}: exit {proc.returncode}\n{out}"
        if proc.returncode == -sig:
            # The signal's default action: after our handlers were removed (exiting), or a
            # second Ctrl-C after the first was handled. The service and the backup folder were
            # checked above all the same.
            kind = "killed outside the pause"
        else:
            assert "Traceback" not in out, f"{what}:\n{out}"
            kind = "finished" if proc.returncode == 0 else "interrupted while paused" if paused \
                else "interrupted"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    # Not vacuous: some signals did land while the service was stopped.
    assert runs >= 5 and outcomes.get("interrupted while paused", 0) >= 1, outcomes
