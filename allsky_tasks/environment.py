"""Where things are: the Allsky home, images, backups, specs and the tool's state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCHEMA_PATH = PROJECT_DIR / "schemas" / "backup-spec.schema.json"
STATE_DIRNAME = ".allsky-tasks"


def install_line(extra: str) -> str:
    """The one command that installs an optional part (pip extra) into this checkout's venv."""
    return f"bash {PROJECT_DIR}/scripts/bootstrap.sh {extra}"


def expand(value: str) -> Path:
    """Expand ~ and $VARS in a user-given path."""
    return Path(os.path.expandvars(os.path.expanduser(value)))


@dataclass(frozen=True)
class Environment:
    """The paths a run works with, resolved once from the process environment."""

    home: Path
    images: Path | None
    backup_dir: Path
    specs_dir: Path

    @property
    def state_dir(self) -> Path:
        """Tool state (doit database, scan results, markers), kept with the backups."""
        return self.backup_dir / STATE_DIRNAME

    @property
    def dep_file(self) -> Path:
        """doit's sqlite3 state file."""
        return self.state_dir / "doit.sqlite3"


def default_backup_dir(home: Path) -> Path:
    """Allsky's rule: backups live beside the home, in allskybackups."""
    return home.parent / "allskybackups"


def from_environ(environ: Mapping[str, str] | None = None) -> Environment:
    """Read ALLSKY_HOME, ALLSKY_IMAGES, ALLSKY_BACKUP_DIR and ALLSKY_SPECS_DIR."""
    env = os.environ if environ is None else environ
    home = expand(env.get("ALLSKY_HOME") or "~/allsky").absolute()
    images = expand(env["ALLSKY_IMAGES"]).absolute() if env.get("ALLSKY_IMAGES") else None
    backup_dir = (expand(env["ALLSKY_BACKUP_DIR"]).absolute() if env.get("ALLSKY_BACKUP_DIR")
                  else default_backup_dir(home))
    specs_dir = (expand(env["ALLSKY_SPECS_DIR"]).absolute() if env.get("ALLSKY_SPECS_DIR")
                 else PROJECT_DIR / "backup_specs")
    return Environment(home=home, images=images, backup_dir=backup_dir, specs_dir=specs_dir)


def spec_files(specs_dir: Path) -> list[Path]:
    """The spec files in a folder, sorted by name (missing folder: none)."""
    try:
        return sorted(p for p in specs_dir.iterdir()
                      if p.suffix in (".yaml", ".yml") and p.is_file())
    except OSError:
        return []
