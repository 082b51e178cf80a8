"""Stopping a system service as the normal Allsky user: `sudo -n`, checked before anything stops."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess

from ..errors import ServiceStopError
from .config import ServiceConfig

PRIVILEGED = ("stop", "start")  # status needs no root


def needs_sudo(cfg: ServiceConfig, action: str) -> bool:
    """Whether this command goes through sudo: stop/start, not root, not already sudo."""
    argv = cfg.argv(action)
    return (action in PRIVILEGED and cfg.sudo == "auto" and os.geteuid() != 0
            and bool(argv) and os.path.basename(argv[0]) != "sudo")


def _absolute(program: str) -> str:
    """The program's full path (sudoers rules and sudo's secure_path want one)."""
    return program if os.path.isabs(program) else shutil.which(program) or program


def run_argv(cfg: ServiceConfig, action: str) -> list[str]:
    """The argv actually run for an action."""
    argv = cfg.argv(action)
    if needs_sudo(cfg, action):
        return ["sudo", "-n", _absolute(argv[0]), *argv[1:]]
    return argv


def _sudoers_command(argv: list[str]) -> str:
    """A command as a sudoers rule writes it (, : = and \\ escaped)."""
    def esc(word: str) -> str:
        for ch in "\\,:=":
            word = word.replace(ch, "\\" + ch)
        return word
    return " ".join(esc(w) for w in [_absolute(argv[0]), *argv[1:]])


def sudoers_line(cfg: ServiceConfig, user: str | None = None) -> str:
    """The line that lets this user stop and start the service without a password."""
    user = user or pwd.getpwuid(os.geteuid()).pw_name
    commands = ", ".join(_sudoers_command(cfg.argv(a)) for a in PRIVILEGED)
    return f"{user} ALL=(root) NOPASSWD: {commands}"


def check_sudo(cfg: ServiceConfig) -> None:
    """Before stopping anything: can stop and start run through `sudo -n`? Else the fix."""
    if not any(needs_sudo(cfg, a) for a in PRIVILEGED):
        return
    sudo = shutil.which("sudo")
    problems = []
    for action in PRIVILEGED:
        argv = run_argv(cfg, action)[2:]
        if sudo is None:
            problems.append("sudo is not installed")
            break
        proc = subprocess.run([sudo, "-n", "-l", *argv], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip().splitlines()
            problems.append(f"`sudo -n {shlex.join(argv)}` is not allowed without a password"
                            + (f" ({said[-1]})" if said else ""))
    if problems:
        raise ServiceStopError(
            f"cannot pause service {cfg.unit} as user "
            f"{pwd.getpwuid(os.geteuid()).pw_name}: {'; '.join(problems)}; nothing was stopped "
            "or written",
            hint=f"allow it: add this line with `sudo visudo -f /etc/sudoers.d/allsky-tasks`:\n"
                 f"     {sudoers_line(cfg)}\n"
                 f"     or set `service: {{pause: never}}` in the spec (databases are captured "
                 "consistently either way)")
