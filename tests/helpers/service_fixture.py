"""Helpers for tests that drive the stand-in service through real commands."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STANDIN = Path(__file__).resolve().with_name("standin_service.py")


def standin_argv(action: str, service_dir: Path, *extra: str) -> list[str]:
    """The argv of one stand-in command."""
    return [sys.executable, str(STANDIN), action, "--dir", str(service_dir), *extra]


def service_spec(service_dir: Path, *, db: Path | None = None, wal: bool = False, refuse_stop: bool = False,
                 refuse_start: bool = False, slow_stop: float | None = None, unit: str = "standin",
                 timeout: float = 20.0, pause: str = "always", stop_exit: int = 0) -> dict[str, Any]:
    """A spec `service:` mapping whose commands drive the stand-in in `service_dir`."""
    start_extra = ["--db", str(db)] + (["--wal"] if wal else []) if db else []
    return {
        "pause": pause,
        "unit": unit,
        "timeout": timeout,
        "commands": {
            "stop": standin_argv("stop", service_dir, *(["--refuse-stop"] if refuse_stop else []),
                                 *(["--slow-stop", str(slow_stop)] if slow_stop else []),
                                 *(["--stop-exit", str(stop_exit)] if stop_exit else [])),
            "start": standin_argv("start", service_dir, *start_extra,
                                  *(["--refuse-start"] if refuse_start else [])),
            "status": standin_argv("status", service_dir),
        },
    }


def start_standin(service_dir: Path, db: Path | None = None, wal: bool = False) -> None:
    """Start the stand-in (and wait for it), failing loudly if it does not come up."""
    extra = ["--db", str(db)] + (["--wal"] if wal else []) if db else []
    subprocess.run(standin_argv("start", service_dir, *extra), check=True, timeout=60)


def standin_running(service_dir: Path) -> bool:
    """What the stand-in's status command says."""
    return subprocess.run(standin_argv("status", service_dir), timeout=60).returncode == 0


def standin_pid(service_dir: Path) -> int | None:
    """The pid in the stand-in's pid file, if any."""
    try:
        return int((service_dir / "pid").read_text())
    except (OSError, ValueError):
        return None


def started_pids(service_dir: Path) -> list[int]:
    """Every daemon pid the stand-in ever started in `service_dir`."""
    try:
        return [int(x) for x in (service_dir / "pids.log").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Whether `pid` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] not in "ZX"


def kill_standins(service_dir: Path) -> None:
    """Teardown: end every daemon started in `service_dir` (SIGTERM, then SIGKILL)."""
    pids = [p for p in started_pids(service_dir) if _alive(p)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def row_count(db: Path) -> int:
    """Rows in the stand-in's table (read-only, waits out the writer's locks)."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM frames").fetchone()[0])
    finally:
        conn.close()
