"""The schedule's files as text: systemd service + timer, a cron.d line. Pure functions."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from ..environment import PROJECT_DIR
from ..errors import ScheduleError

NAME = "allsky-tasks"
# Allsky's end-of-night work (keogram, startrails, timelapse, uploads, removing old nights)
# starts at sunrise and can take an hour on a Pi; sunrise is as late as ~08:30 in winter at
# mid latitudes. 10:30 is after it all year round there and long before dusk.
DEFAULT_AT = "10:30"
RANDOM_DELAY = 1800  # seconds: spreads many Pis hitting one NAS or cloud bucket
DEFAULT_LOCK_WAIT = 3600  # a scheduled run waits an hour for a manual run to finish
ENV_FILE = "/etc/default/allsky-tasks"  # notification URLs (secrets): root-readable only


@dataclass(frozen=True)
class Plan:
    """What to run, when and as whom."""

    user: str
    at: str
    command: tuple[str, ...]  # the interpreter and module, e.g. (python, -m, allsky_tasks)
    environment: tuple[tuple[str, str], ...]
    specs: tuple[str, ...] = ()  # empty: every spec
    lock_wait: int = DEFAULT_LOCK_WAIT
    random_delay: int = RANDOM_DELAY
    env_file: str = ENV_FILE

    def argv(self) -> list[str]:
        """The scheduled command line."""
        return [*self.command, "run", "--quiet", "--lock-wait", str(self.lock_wait),
                *(f"backup:{s}" for s in self.specs)]


# Control characters end a unit or cron line early and start one of their own (which would
# run as root): no value written into root's files may hold one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def refuse_control(what: str, value: str) -> str:
    """The value, or a ScheduleError when it holds a newline or another control character."""
    if _CONTROL.search(value):
        raise ScheduleError(f"{what} {value!r} holds a control character (newline, tab, ...); "
                            "nothing was written",
                            hint="a value written into a systemd unit or cron line must be one "
                                 "plain line; rename the folder or fix the variable")
    return value


def _checked(plan: Plan) -> Plan:
    """The plan, once no value of it could start a line of its own."""
    for what, value in (("user", plan.user), ("--at", plan.at), ("env file", plan.env_file),
                        ("project folder", str(PROJECT_DIR)),
                        *(("command", c) for c in plan.command),
                        *((k, f"{k}={v}") for k, v in plan.environment),
                        *(("spec", s) for s in plan.specs)):
        refuse_control(what, value)
    return plan


def parse_at(value: str) -> tuple[int, int]:
    """HH:MM (24 h) -> (hour, minute)."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ScheduleError(f"--at {value!r}: expected a time as HH:MM (24 h), e.g. {DEFAULT_AT}")
    return int(m.group(1)), int(m.group(2))


def _quote(value: str) -> str:
    """A systemd double-quoted word."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec(argv: list[str]) -> str:
    """An ExecStart= command line (systemd quoting; % must be doubled)."""
    return " ".join(_quote(a) if re.search(r'[\s"\\\']', a) else a for a in argv).replace("%", "%%")


def service_unit(plan: Plan) -> str:
    """allsky-tasks.service: one oneshot run as the Allsky user."""
    _checked(plan)
    env = "\n".join(f"Environment={_quote(f'{k}={v}')}".replace("%", "%%")
                    for k, v in plan.environment)
    what = (", ".join(plan.specs) or "every spec").replace("%", "%%")
    return f"""[Unit]
Description=allsky-tasks: scheduled Allsky backup ({what})
Documentation=file://{PROJECT_DIR}/docs/unattended.md
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User={plan.user}
{env}
EnvironmentFile=-{plan.env_file}
ExecStart={_exec(plan.argv())}
# Low priority: Allsky keeps capturing (daytime images) while the backup runs.
Nice=10
IOSchedulingClass=idle
# On stop, SIGTERM makes the run start the Allsky service again before it exits.
TimeoutStopSec=180
"""


def timer_unit(plan: Plan) -> str:
    """allsky-tasks.timer: daily at --at, caught up at boot, with a random delay."""
    _checked(plan)
    hour, minute = parse_at(plan.at)
    return f"""[Unit]
Description=allsky-tasks: daily Allsky backup at {hour:02d}:{minute:02d}

[Timer]
OnCalendar=*-*-* {hour:02d}:{minute:02d}:00
Persistent=true
RandomizedDelaySec={plan.random_delay}
Unit={NAME}.service

[Install]
WantedBy=timers.target
"""


def cron_file(plan: Plan, offset_minutes: int) -> str:
    """/etc/cron.d/allsky-tasks: the same run without systemd (no catch-up after power-off)."""
    _checked(plan)
    hour, minute = parse_at(plan.at)
    total = hour * 60 + minute + offset_minutes % max(1, plan.random_delay // 60)
    hour, minute = total // 60 % 24, total % 60
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in plan.environment)
    line = (f"{minute} {hour} * * * {plan.user} set -a; [ -r {plan.env_file} ] && . "
            f"{plan.env_file}; {env} {shlex.join(plan.argv())}").replace("%", "\\%")
    return (f"# allsky-tasks: daily Allsky backup (at {plan.at}, +{offset_minutes % 60} min "
            "random offset chosen at install)\nSHELL=/bin/sh\n" + line + "\n")


CRON_RE = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \* (\S+) (.*)$")


class CronLine(TypedDict):
    """The schedule line of a cron file of ours."""

    minute: int
    hour: int
    user: str
    environment: dict[str, str]
    argv: list[str]


def parse_cron(text: str) -> CronLine | None:
    """The schedule a cron file of ours holds: minute, hour, user, argv (after the env)."""
    for line in text.splitlines():
        m = CRON_RE.match(line)
        if m:
            words = shlex.split(m.group(4).replace("\\%", "%").split("; ", 2)[-1])
            n = next((i for i, w in enumerate(words) if "=" not in w), len(words))
            env, argv = dict(w.split("=", 1) for w in words[:n]), words[n:]
            return CronLine(minute=int(m.group(1)), hour=int(m.group(2)), user=m.group(3),
                            environment=env, argv=argv)
    return None


def next_run(at: str, now: datetime) -> datetime:
    """The next local time `at` after `now` (before the random delay)."""
    hour, minute = parse_at(at)
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return when if when > now else when + timedelta(days=1)
