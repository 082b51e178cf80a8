"""The service section of a spec: how to stop, start and query the service, and when to pause it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SpecError

PAUSE_POLICIES = ("auto", "always", "never")
ACTIONS = ("stop", "start", "status")


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

    @classmethod
    def from_spec(cls, data: dict[str, Any] | None) -> ServiceConfig:
        """Build from a spec's `service` mapping (schema-checked already); missing keys take defaults."""
        data, base = data or {}, cls()
        commands = data.get("commands") or {}
        raw = {a: commands.get(a, getattr(base, a)) for a in ACTIONS}
        argvs = {a: tuple(v) if isinstance(v, (list, tuple)) else () for a, v in raw.items()}
        cfg = cls(unit=str(data.get("unit", base.unit)), pause=data.get("pause", base.pause),
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
