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


# What a status command's exit code means. 0: running. 1-3: not running (LSB init scripts'
# `status`: 1 and 2 dead with a pid or lock file left, 3 not running; pgrep: 1 no process).
# Anything else (LSB 4 "unknown", 126/127 not runnable or not found, killed by a signal)
# cannot tell, and a pause must not be skipped on a guess.
NOT_RUNNING = (1, 2, 3)
SYSTEMCTL_NOT_RUNNING = 3  # `systemctl is-active`: 3 inactive; 1 means systemd cannot be asked


def _systemctl_at(argv: list[str]) -> int | None:
    """Index of `systemctl` in a command (after sudo and its options), or None."""
    for i, word in enumerate(argv):
        base = os.path.basename(word)
        if base == "systemctl":
            return i
        if base != "sudo" and not word.startswith("-"):
            return None
    return None


def running_state(result: CommandResult) -> bool | None:
    """What a status result says: True running, False not running, None cannot tell."""
    if result.returncode == 0:
        return True
    if _systemctl_at(result.argv) is not None:
        return False if result.returncode == SYSTEMCTL_NOT_RUNNING else None
    return False if result.returncode in NOT_RUNNING else None


def unit_problem(cfg: ServiceConfig) -> str | None:
    """For a systemctl status command: does systemd know the unit? A problem, or None.

    `systemctl is-active` says "inactive" for a unit that does not exist, so a typo in
    service.unit would look like a stopped service; LoadState tells them apart.
    """
    argv = cfg.argv("status")
    at = _systemctl_at(argv)
    if at is None:
        return None
    scope = [w for w in argv[at + 1:] if w in ("--user", "--system", "--global")
             or w.startswith(("--host=", "--machine="))]
    probe = ServiceConfig(unit=cfg.unit, timeout=cfg.timeout, sudo="never",
                          status=(*argv[:at + 1], *scope, "show", "--property=LoadState", "--value",
                                  "--", cfg.unit))
    result = run_command(probe, "status")
    state = result.output.strip().splitlines()[-1] if result.returncode == 0 and result.output.strip() else ""
    if result.returncode != 0 or not state:
        return f"systemd cannot be asked about unit {cfg.unit}: {result.describe()}"
    if state not in ("loaded", "masked"):
        return (f"systemd has no unit {cfg.unit} (LoadState={state})" if state == "not-found"
                else f"systemd cannot use unit {cfg.unit} (LoadState={state})")
    return None


def wait_state(cfg: ServiceConfig, running: bool, patience: float) -> CommandResult | None:
    """Poll status until the service is (not) running: None on success, else the last result."""
    deadline, delay = time.monotonic() + patience, 0.05
    while True:
        result = run_command(cfg, "status")
        state = running_state(result)
        if state is not None and state == running:
            return None
        if state is None or time.monotonic() >= deadline:
            return result
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def change_state(cfg: ServiceConfig, action: str, running: bool,
                 warnings: list[str] | None = None) -> str | None:
    """Run stop or start and confirm the state with status; a failure description, or None.

    A command that failed although the state was reached is accepted, with a warning.
    """
    result = run_command(cfg, action)
    # A command that failed gets one status look (it may have worked anyway), not the full wait.
    last = wait_state(cfg, running, cfg.timeout if result.returncode == 0 else 0)
    if last is None:
        if result.returncode != 0 and warnings is not None:
            done = "is running" if running else "did stop"
            warnings.append(f"{result.describe()}, but {cfg.unit} {done}; check "
                            f"service.commands.{action} in the spec")
        return None
    if result.returncode != 0:
        return result.describe()
    if running_state(last) is None:
        return f"`{shlex.join(result.argv)}` succeeded but the status cannot tell: {last.describe()}"
    return f"`{shlex.join(result.argv)}` succeeded but after {cfg.timeout:g} s {last.describe()}"


def ensure_started(cfg: ServiceConfig, warnings: list[str] | None = None) -> tuple[bool, str | None]:
    """Start the service unless it runs already: (had to start it, failure or None)."""
    # Status first: a non-systemd start script might launch a second instance.
    if wait_state(cfg, True, 0) is None:
        return False, None
    return True, change_state(cfg, "start", True, warnings)
