"""Facts read from a live Allsky install: camera, version, owner, modules in use."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .safefs import read_fd

FLOWS = ("day", "night", "periodic", "daynight", "nightday")


@dataclass(frozen=True)
class Camera:
    """The current camera and its camera-specific settings/cc files (relative to home)."""

    cameratype: str
    cameramodel: str
    settingsfile: str
    ccfile: str


def _bash_token(value: str) -> str:
    """Allsky's bash rule: spaces become underscores."""
    return value.replace(" ", "_")


def _php_token(value: str) -> str:
    """Allsky's PHP rule: anything outside [A-Za-z0-9._-] becomes an underscore."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", value)


SMALL_FILE_LIMIT = 16 << 20


def read_small(path: Path, follow: bool = True, limit: int = SMALL_FILE_LIMIT) -> bytes:
    """Read a small install file without ever blocking: a FIFO, device or socket is refused.

    O_NONBLOCK then fstat: a FIFO swapped in for a config file cannot hang the run (with the
    service stopped). `follow=False` also refuses a symlink (files that are never links).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file ({stat.filemode(st.st_mode)}); not read")
        if st.st_size > limit:
            raise OSError(f"{st.st_size} bytes, more than the {limit} expected; not read")
        os.set_blocking(fd, True)
        return read_fd(fd, limit)
    finally:
        os.close(fd)


def read_json(path: Path, follow: bool = True) -> object:
    """Parse a JSON file, raising ValueError that names it."""
    try:
        return json.loads(read_small(path, follow))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


def read_camera(home: Path) -> Camera:
    """The camera named by config/settings.json and its camera-specific file names."""
    settings = read_json(home / "config" / "settings.json")
    if not isinstance(settings, dict):
        raise ValueError(f"{home / 'config/settings.json'}: not a JSON object")
    ctype = str(settings.get("cameratype") or "").strip()
    cmodel = str(settings.get("cameramodel") or "").strip()
    if not ctype or not cmodel:
        raise ValueError(f"{home / 'config/settings.json'}: cameratype/cameramodel missing")
    names = {}
    for kind in ("settings", "cc"):
        # The bash and PHP rules differ for odd model names: prefer the file that exists.
        candidates = [f"config/{kind}_{_bash_token(ctype)}_{_bash_token(cmodel)}.json",
                      f"config/{kind}_{_php_token(ctype)}_{_php_token(cmodel)}.json"]
        names[kind] = next((c for c in candidates if (home / c).exists()), candidates[0])
    return Camera(ctype, cmodel, names["settings"], names["cc"])


def read_version(home: Path) -> str:
    """First line of <home>/version, or 'unknown'."""
    try:
        text = read_small(home / "version", follow=False, limit=64 << 10)
    except OSError:
        return "unknown"
    return text.decode("utf-8", errors="replace").partition("\n")[0].strip() or "unknown"


def read_owner(home: Path) -> str | None:
    """ALLSKY_OWNER from variables.json (what Allsky writes as the owner token)."""
    try:
        data = read_json(home / "variables.json", follow=False)
    except ValueError:
        return None
    owner = data.get("ALLSKY_OWNER") if isinstance(data, dict) else None
    return str(owner) if owner else None


def _natural_key(text: str) -> list[object]:
    """Sort key that orders embedded numbers numerically, case-insensitively."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def flow_modules(flow_data: object) -> set[str]:
    """Module basenames named in one postprocessing flow (object or list form)."""
    entries = flow_data.values() if isinstance(flow_data, dict) else flow_data
    found: set[str] = set()
    if isinstance(entries, (list, tuple)) or hasattr(entries, "__iter__"):
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("module"), str):
                name = Path(entry["module"]).name
                if name:
                    found.add(name)
    return found


def required_modules(home: Path) -> list[str]:
    """Every module named in the local flow files, natural-sorted (enabled or not)."""
    found: set[str] = set()
    for flow in FLOWS:
        path = home / "config" / "modules" / f"postprocessing_{flow}.json"
        if path.is_file():
            try:
                found |= flow_modules(read_json(path))
            except ValueError:
                continue
    return sorted(found, key=_natural_key)


def user_modules(home: Path) -> list[str]:
    """Top-level allsky module files in config/myFiles/modules."""
    folder = home / "config" / "myFiles" / "modules"
    try:
        return sorted((p.name for p in folder.iterdir() if p.suffix == ".py" and p.is_file()),
                      key=_natural_key)
    except OSError:
        return []
