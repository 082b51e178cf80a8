"""Every folder that holds backups: ALLSKY_BACKUP_DIR plus each spec's own `destination:`."""

from __future__ import annotations

from pathlib import Path

from ..environment import Environment, spec_files
from ..errors import InventoryError, SpecError
from .listing import list_backups, resolve
from .record import Record

_ORDER = {"config": 0, "images": 1}


def spec_destinations(env: Environment) -> list[Path]:
    """The destination of every loadable spec (broken specs are skipped: validate names them)."""
    from ..spec.load import load_spec

    out = []
    for path in spec_files(env.specs_dir):
        try:
            out.append(load_spec(path, env, check_tree=False).destination)
        except SpecError:
            continue
    return out


def destinations(env: Environment, dest: str | Path | None = None) -> list[Path]:
    """--dest alone when given; else ALLSKY_BACKUP_DIR first, then the specs' folders, once each."""
    if dest:
        return [Path(dest).expanduser().absolute()]
    seen: set[Path] = set()
    out = []
    for folder in (env.backup_dir, *spec_destinations(env)):
        key = Path(folder).resolve() if Path(folder).exists() else Path(folder)
        if key not in seen:
            seen.add(key)
            out.append(Path(folder))
    return out


def list_everywhere(folders: list[Path], cache: bool = True) -> list[Record]:
    """Every backup of every folder: Config first, then Images, newest first."""
    records = [r for folder in folders for r in list_backups(folder, cache)]
    return sorted(records, key=lambda r: (_ORDER.get(r.type, 2), -r.timestamp, -r.mtime, r.name))


def resolve_everywhere(arg: str, folders: list[Path]) -> Path:
    """ARCHIVE argument: a path, or a name found in one of the folders (the first wins)."""
    if "/" in arg:
        return resolve(arg, folders[0])
    for folder in folders:
        try:
            return resolve(arg, folder)
        except InventoryError:
            continue
    if arg in ("", ".", "..") or arg.startswith(".") or not folders:
        return resolve(arg, folders[0] if folders else Path("."))  # its own error
    shown = ", ".join(str(f) for f in folders)
    raise InventoryError(f"no backup archive named {arg!r} in {shown}",
                         hint="`allsky-tasks list` shows the backups and their names")
