"""Recovery that every run does first, whichever spec (or restore) left something behind."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from ..environment import Environment
from ..errors import UnsafePathError
from ..safefs import check_dir
from ..service.config import ServiceConfig
from ..service.marker import Lookup, recover_stale_marker

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def spec_lookup(specs_dir: Path) -> Lookup:
    """Service commands for a marker: the named spec's `service:` section, else the default.

    Only that section is read (YAML, capped), so a spec that is broken elsewhere still has its
    service recovered; a spec that is gone or unreadable falls back to `systemctl start <unit>`.
    """
    def lookup(spec: str | None, unit: str) -> ServiceConfig:
        if spec and _NAME_RE.match(spec):
            for suffix in (".yaml", ".yml"):
                path = specs_dir / f"{spec}{suffix}"
                try:
                    from ..spec.load import read_yaml

                    data = read_yaml(path)
                    section = data.get("service") if isinstance(data, dict) else None
                    cfg = ServiceConfig.from_spec(section if isinstance(section, dict) else None)
                except Exception:  # noqa: BLE001 - gone, broken, hostile: use the default
                    continue
                return replace(cfg, unit=unit)  # what was stopped, even if the spec changed
        return ServiceConfig(unit=unit)
    return lookup


def recover(env: Environment) -> list[str]:
    """Restart a service a killed run left stopped; what was done, one line each."""
    for folder in (env.state_dir, env.state_dir / "specs"):
        if os.path.lexists(folder):
            check_dir(folder)  # a link here would redirect every state file: refuse it
    dep = env.dep_file
    if os.path.lexists(dep) and (os.path.islink(dep) or not os.path.isfile(dep)):
        raise UnsafePathError(f"{dep}: doit's database is a link or not a file; not opened",
                              hint="remove it; doit keeps its state in ~/.cache/allsky-tasks meanwhile")
    messages = []
    message = recover_stale_marker(None, env.state_dir, spec_lookup(env.specs_dir))
    if message:
        messages.append(message)
    return messages
