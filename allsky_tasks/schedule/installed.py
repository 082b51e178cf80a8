"""What an installed schedule runs, read back from its files: user, command line, environment."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .units import parse_cron

# systemd's own environment for a system service with User= (besides HOME, USER, LOGNAME, SHELL).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CRON_PATH = "/usr/bin:/bin"  # cron's default PATH (Debian)


@dataclass
class Installed:
    """One installed job as its files say."""

    backend: str  # systemd | cron
    files: list[str]
    user: str | None
    argv: list[str]  # systemd: ExecStart; cron: the command after the environment
    environment: dict[str, str] = field(default_factory=dict)
    env_file: str | None = None
    at: str | None = None
    random_delay: int = 0
    cron_command: str | None = None  # the text cron hands to /bin/sh -c
    problem: str | None = None


def _unquote(value: str) -> str:
    """One systemd word: surrounding double quotes, backslash escapes, %% as %."""
    value = value.replace("%%", "%")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _line(text: str, key: str) -> str | None:
    m = re.search(rf"^{key}=(.*)$", text, re.M)
    return m.group(1) if m else None


def from_units(service: str, timer: str, files: list[str]) -> Installed:
    """The job a service and timer unit describe."""
    m = re.search(r"^OnCalendar=\*-\*-\* (\d\d):(\d\d):00$", timer, re.M)
    delay = _line(timer, "RandomizedDelaySec")
    env: dict[str, str] = {}
    for raw in re.findall(r"^Environment=(.*)$", service, re.M):
        key, _, value = _unquote(raw).partition("=")
        env[key] = value
    exec_start = _line(service, "ExecStart")
    env_file = _line(service, "EnvironmentFile")
    return Installed("systemd", files, _line(service, "User"),
                     shlex.split(exec_start.replace("%%", "%")) if exec_start else [], env,
                     env_file.lstrip("-") if env_file else None,
                     f"{m.group(1)}:{m.group(2)}" if m else None,
                     int(delay) if delay and delay.isdigit() else 0,
                     problem=None if exec_start else "no ExecStart= line")


def from_cron(text: str, files: list[str]) -> Installed:
    """The job a cron.d file of ours describes."""
    parsed = parse_cron(text)
    if parsed is None:
        return Installed("cron", files, None, [], problem="no schedule line found")
    line = next(ln for ln in text.splitlines() if ln[:1].isdigit())
    command = line.split(None, 6)[6].replace("\\%", "%")
    env_file = re.search(r"\[ -r (\S+) \]", command)
    return Installed("cron", files, str(parsed["user"]), list(parsed["argv"]),
                     dict(parsed["environment"]),
                     env_file.group(1) if env_file else None,
                     f"{parsed['hour']:02d}:{parsed['minute']:02d}", cron_command=command)


def read(paths: dict[str, Path]) -> Installed | None:
    """The installed job below these paths (timer first, as only one is ever installed)."""
    if paths["timer"].exists():
        service = paths["service"].read_text() if paths["service"].exists() else ""
        return from_units(service, paths["timer"].read_text(),
                          [str(paths["service"]), str(paths["timer"])])
    if paths["cron"].exists():
        return from_cron(paths["cron"].read_text(), [str(paths["cron"])])
    return None


def env_file_values(path: str | None) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile (as systemd and a sourced shell file agree on)."""
    if not path:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("export ")
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out
