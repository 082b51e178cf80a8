"""A stand-in for the Allsky service: a detached process writing SQLite rows until SIGTERM.

Usage: standin_service.py start|stop|status --dir D [--db PATH] [--wal]
       [--refuse-stop] [--refuse-start] [--slow-stop SECONDS] [--stop-exit CODE]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STATUS_NOT_RUNNING = 3  # what `systemctl is-active` returns for an inactive unit
START_PATIENCE = 20.0
STOP_PATIENCE = 30.0


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (nobody reaps orphans in some containers) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] not in "ZX"


def read_pid(service_dir: Path) -> int | None:
    """The daemon's pid from D/pid, or None."""
    try:
        return int((service_dir / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(service_dir: Path) -> int | None:
    """The pid of the running daemon, or None."""
    pid = read_pid(service_dir)
    return pid if pid is not None and pid_alive(pid) else None


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 if the daemon runs, 3 otherwise."""
    return 0 if running_pid(args.dir) else STATUS_NOT_RUNNING


def cmd_start(args: argparse.Namespace) -> int:
    """Spawn the daemon in its own session and wait until it has written its pid."""
    if args.refuse_start:
        print("standin: refusing to start (--refuse-start)", file=sys.stderr)
        return 1
    if running_pid(args.dir):
        return 0  # like systemctl start on an active unit
    (args.dir / "pid").unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "run", "--dir", str(args.dir)]
    if args.db:
        argv += ["--db", str(args.db)] + (["--wal"] if args.wal else [])
    # Output to a log file, never to our stdout: the caller must not wait on a pipe it holds.
    with open(args.dir / "daemon.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_PATIENCE
    while time.monotonic() < deadline:
        if read_pid(args.dir) == proc.pid:
            return 0
        if proc.poll() is not None:
            print(f"standin: daemon exited early with {proc.returncode}", file=sys.stderr)
            return 1
        time.sleep(0.01)
    print("standin: daemon did not come up", file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    """SIGTERM the daemon and wait until it has exited."""
    if args.refuse_stop:
        print("standin: refusing to stop (--refuse-stop)", file=sys.stderr)
        return 1
    if args.slow_stop:
        time.sleep(args.slow_stop)
    pid = running_pid(args.dir)
    if pid is None:
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_PATIENCE
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            if args.stop_exit:  # stopped, yet says it failed (as some init scripts do)
                print(f"standin: stopped, exiting {args.stop_exit} anyway (--stop-exit)", file=sys.stderr)
            return args.stop_exit
        time.sleep(0.01)
    print(f"standin: pid {pid} did not exit", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon: insert rows, one transaction each, until SIGTERM."""
    import sqlite3

    stopping = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    with open(args.dir / "pids.log", "a") as f:  # lets test teardown kill every daemon ever started
        f.write(f"{os.getpid()}\n")
    conn = None
    counter = 0
    if args.db:
        conn = sqlite3.connect(args.db, timeout=30, isolation_level=None)
        if args.wal:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS frames (id INTEGER PRIMARY KEY, counter INTEGER NOT NULL,"
                     " ts REAL NOT NULL, payload TEXT NOT NULL)")
        counter = conn.execute("SELECT coalesce(max(counter), 0) FROM frames").fetchone()[0]
    tmp = args.dir / f"pid.{os.getpid()}"
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, args.dir / "pid")
    while not stopping:
        if conn is not None:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO frames (counter, ts, payload) VALUES (?, ?, ?)",
                             (counter + 1, time.time(), f"frame {counter + 1} " + "x" * 200))
                conn.execute("COMMIT")
                counter += 1
            except sqlite3.OperationalError as e:  # locked by a reader for too long: try again
                print(f"standin: {e}", file=sys.stderr, flush=True)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        time.sleep(0.002)
    if conn is not None:
        conn.close()
    if read_pid(args.dir) == os.getpid():
        (args.dir / "pid").unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the action."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "run"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--wal", action="store_true")
    parser.add_argument("--refuse-stop", action="store_true")
    parser.add_argument("--refuse-start", action="store_true")
    parser.add_argument("--slow-stop", type=float, default=0.0)
    parser.add_argument("--stop-exit", type=int, default=0)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    return {"start": cmd_start, "stop": cmd_stop, "status": cmd_status, "run": cmd_run}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
