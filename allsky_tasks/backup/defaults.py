"""What plain `doit` runs: the config backups only, never a gzip of every night by surprise."""

from __future__ import annotations

import re
from pathlib import Path

from ..environment import spec_files

# A top-level `type: config` line; read as text so `doit` start-up loads no YAML parser.
_CONFIG_LINE = re.compile(r"""^type:\s*["']?config["']?\s*(#.*)?$""")


def is_config_spec(path: Path) -> bool:
    """True when the spec file says `type: config` at the top level."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(_CONFIG_LINE.match(line.rstrip()) for line in text.splitlines())


def default_tasks(specs_dir: Path) -> list[str]:
    """backup:<spec> for every config spec; with none, `validate` (checks, writes nothing)."""
    tasks = [f"backup:{path.stem}" for path in spec_files(specs_dir) if is_config_spec(path)]
    return tasks or ["validate"]
