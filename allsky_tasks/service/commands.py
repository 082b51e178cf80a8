"""Run the service's stop/start/status commands and confirm the state they leave."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from .config import ServiceConfig
from .privilege import run_argv

_OUTPUT_LIMIT = 2000


@dataclass(frozen=True)
class CommandResult:
    """One service command's outcome; returncode None: it could not run or timed out."""

    argv: list[str]
    returncode: int | None
    output: str

    def describe(self) -> str:
        """The command, its exit code and its output, in one sentence."""
        cmd = f"`{shlex.join(self.argv)}`"
        if self.returncode is None:
            return f"{cmd} {self.output}"
        return f"{cmd} exited with code {self.returncode}" + (f": {self.output}" if self.output else "")


def run_command(cfg: ServiceConfig, action: str) -> CommandResult:
    """Run one service command under the timeout; its failure is returned, not raised."""
    argv = run_argv(cfg, action)
    # Output goes to a file, not a pipe: a daemon inheriting a pipe would keep us waiting for
    # EOF until the timeout. A new session keeps a terminal's Ctrl-C away from the command.
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            return CommandResult(argv, None, f"could not be run: {e.strerror or e}")
        code: int | None
        try:
            code, note = proc.wait(timeout=cfg.timeout), ""
        except subprocess.TimeoutExpired:
            code, note = None, f"did not finish within {cfg.timeout:g} s and was killed"
        finally:
            if proc.returncode is None:  # timed out, or interrupted while waiting
                _kill_group(proc)
        out.seek(0)
        text = out.read().decode(errors="replace").strip()[-_OUTPUT_LIMIT:]
    return CommandResult(argv, code, f"{note}: {text}" if note and text else note or text)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and every child it left in its process group (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def wait_state(cfg: ServiceConfig, running: bool, patience: float) -> CommandResult | None:
    """Poll status until the service is (not) running: None on success, else the last result."""
    deadline, delay = time.monotonic() + patience, 0.05
    while True:
        result = run_command(cfg, "status")
        if result.returncode is not None and (result.returncode == 0) == running:
            return None
        if result.returncode is None or time.monotonic() >= deadline:
            return result
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def change_state(cfg: ServiceConfig, action: str, running: bool) -> str | None:
    """Run stop or start and confirm the state with status; a failure description, or None."""
    result = run_command(cfg, action)
    # A command that failed gets one status look (it may have worked anyway), not the full wait.
    last = wait_state(cfg, running, cfg.timeout if result.returncode == 0 else 0)
    if last is None:
        return None
    if result.returncode != 0:
        return result.describe()
    return f"`{shlex.join(result.argv)}` succeeded but after {cfg.timeout:g} s {last.describe()}"


def ensure_started(cfg: ServiceConfig) -> tuple[bool, str | None]:
    """Start the service unless it runs already: (had to start it, failure or None)."""
    # Status first: a non-systemd start script might launch a second instance.
    if wait_state(cfg, True, 0) is None:
        return False, None
    return True, change_state(cfg, "start", True)
