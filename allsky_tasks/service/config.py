"""The service section of a spec: how to stop, start and query the service, and when to pause it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError

PAUSE_POLICIES = ("auto", "always", "never")
ACTIONS = ("stop", "start", "status")
# A machine without an Allsky service (the demo, a test box) says so once, for every spec;
# otherwise a unit that does not exist is an error, never a silent "was not running".
PAUSE_ENV = "ALLSKY_SERVICE_PAUSE"


def machine_pause() -> str | None:
    """`never` when ALLSKY_SERVICE_PAUSE=never; None when unset; SpecError for anything else."""
    value = os.environ.get(PAUSE_ENV, "").strip()
    if value in ("", "never"):
        return value or None
    raise SpecError([f"{PAUSE_ENV}={value!r}: the only value is never (this machine has no "
                     "Allsky service to pause)"], hint=f"unset {PAUSE_ENV}, or set it to never")


@dataclass(frozen=True)
class ServiceConfig:
    """How to stop, start and query the service, and when to pause it."""

    unit: str = "allsky"
    pause: str = "auto"
    timeout: float = 60.0
    max_pause: float = 1800.0  # longest the service may stay stopped while packing
    stop: tuple[str, ...] = ("systemctl", "stop", "{unit}")
    start: tuple[str, ...] = ("systemctl", "start", "{unit}")
    status: tuple[str, ...] = ("systemctl", "is-active", "--quiet", "{unit}")
    sudo: str = "auto"  # auto: stop/start through `sudo -n` when not root; never
    forced_by: str | None = None  # the environment's ALLSKY_SERVICE_PAUSE=never overrode the spec

    @classmethod
    def from_spec(cls, data: dict[str, Any] | None) -> ServiceConfig:
        """Build from a spec's `service` mapping (schema-checked already); missing keys take defaults."""
        data, base = data or {}, cls()
        commands = data.get("commands") or {}
        raw = {a: commands.get(a, getattr(base, a)) for a in ACTIONS}
        argvs = {a: tuple(v) if isinstance(v, (list, tuple)) else () for a, v in raw.items()}
        forced = f"{PAUSE_ENV}=never" if machine_pause() else None
        cfg = cls(unit=str(data.get("unit", base.unit)),
                  pause="never" if forced else data.get("pause", base.pause), forced_by=forced,
                  timeout=float(data.get("timeout", base.timeout)),
                  sudo=str(data.get("sudo", base.sudo)),
                  max_pause=float(data.get("max_pause", base.max_pause)), **argvs)
        # Second line of defence behind the schema: these would make the pause misbehave, not fail.
        problems = [f"service.pause: must be one of {', '.join(PAUSE_POLICIES)} (got {cfg.pause!r})"
                    ] if cfg.pause not in PAUSE_POLICIES else []
        problems += [f"service.commands.{a}: must be a non-empty list of strings"
                     for a, v in argvs.items() if not v or not all(isinstance(x, str) and x for x in v)]
        if not cfg.unit or cfg.timeout <= 0 or cfg.max_pause <= 0:
            problems.append("service.unit must be non-empty, service.timeout and max_pause positive")
        if problems:
            raise SpecError(problems, hint="fix the service section of the spec")
        return cfg

    def argv(self, action: str) -> list[str]:
        """The command for stop/start/status with "{unit}" filled in."""
        return [arg.replace("{unit}", self.unit) for arg in getattr(self, action)]
