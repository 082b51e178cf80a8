"""The checks a schema cannot express: a spec against itself, and against the live install."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import install
from ..environment import Environment, default_backup_dir, expand
from .model import CONFIG_AREAS
from .sections import SECTIONS

__all__ = ["CLOUD_KINDS", "COPY_COMMON_KEYS", "FOLDER_RE", "LEVELS", "display_path", "normalize_folders",
           "resolve_paths", "semantic_problems"]

FOLDER_RE = re.compile(r"^(2\d{7}|test\w*)$")
LEVELS = {"zstd": (1, 19, 3), "allsky": (1, 9, 6)}
# Keys of a `copies:` item that are not a target kind (every other key is one: path, ssh, ...).
COPY_COMMON_KEYS = ("name", "required", "keep_last", "must_be_mounted", "encrypt")
# Kinds that put copies on someone else's server: config copies to them need `encrypt:`.
CLOUD_KINDS = ("s3", "rclone", "allsky_remote")


def display_path(path: Path) -> str:
    """A path as the operator typed it: relative to the cwd when below it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _folder_name(value: Any) -> str:
    """YAML reads 20260303 as an int: folder names are strings."""
    return str(value)


def normalize_folders(value: Any) -> Any:
    """Folders as 'all', a list of names, {'from','to'} or {'last'} with string names."""
    if isinstance(value, list):
        return [_folder_name(v) for v in value]
    if isinstance(value, dict) and "from" in value:
        return {"from": _folder_name(value["from"]), "to": _folder_name(value["to"])}
    return value if value is not None else "all"


def _inside(child: Path, parent: Path) -> bool:
    """True if child is parent or below it (both resolved)."""
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def resolve_paths(data: dict[str, Any], env: Environment) -> tuple[Path, Path, Path]:
    """Home, images and destination for a spec, spec values winning over the environment."""
    home = expand(data["home"]).absolute() if data.get("home") else env.home
    if data.get("images"):
        images = expand(data["images"]).absolute()
    elif env.images is not None and home == env.home:
        images = env.images
    else:
        images = home / "images"
    if data.get("destination"):
        dest = expand(data["destination"]).absolute()
    elif home == env.home:
        dest = env.backup_dir
    else:
        dest = default_backup_dir(home)
    return home, images, dest


def semantic_problems(data: dict[str, Any], path: Path, env: Environment,
                      check_tree: bool = True) -> list[str]:
    """Checks the schema cannot express; with check_tree, against the live install."""
    where = display_path(path)
    out: list[str] = []
    if data.get("name") not in (None, path.stem):
        out.append(f"{where}::$.name: {data['name']!r} must equal the file name {path.stem!r}")
    kind = data.get("type")
    if kind == "images" and "sections" in data:
        out.append(f"{where}::$.sections: only for type config (this spec is type images)")
    if kind == "config":
        for key in ("folders", "images", "per_night"):
            if key in data:
                out.append(f"{where}::$.{key}: only for type images (this spec is type config)")
    fmt = data.get("format", "zstd")
    low, high, _ = LEVELS[fmt]
    if "level" in data and not low <= data["level"] <= high:
        out.append(f"{where}::$.level: {data['level']} is out of range {low}-{high} "
                   f"for format {fmt}")
    if fmt != "zstd" and "media_compression" in data:
        out.append(f"{where}::$.media_compression: only for format zstd "
                   f"(this spec is format {fmt})")
    folders = normalize_folders(data.get("folders", "all"))
    from .messages import date_problems

    out += date_problems(folders, where)
    if isinstance(folders, dict) and "from" in folders and folders["from"] > folders["to"]:
        out.append(f"{where}::$.folders: from {folders['from']} is after to {folders['to']}")
    areas = ("images",) if kind == "images" else CONFIG_AREAS
    for i, pattern in enumerate(data.get("include", [])):
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            out.append(f"{where}::$.include[{i}]: {pattern!r} must be relative to the home "
                       "and must not contain '..'")
        elif pattern.split("/")[0] not in areas:
            # Restore and import accept only these areas; anything else could never come back.
            out.append(f"{where}::$.include[{i}]: {pattern!r} is outside the areas a "
                       f"{kind} backup can restore ({', '.join(areas)})")
    out += _copies_problems(data.get("copies", []), where, data.get("type"))
    if check_tree:
        out += _tree_problems(data, where, env, folders)
    return out


def _copies_problems(items: list[dict[str, Any]], where: str, kind: Any = None) -> list[str]:
    """Each copies item names one kind and a name no other item uses."""
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        kinds = [k for k in item if k not in COPY_COMMON_KEYS]  # the schema names the kinds
        if len(kinds) != 1:
            out.append(f"{where}::$.copies[{i}]: needs exactly one target kind such as path "
                       f"or ssh (found {', '.join(kinds) or 'none'})")
        if item.get("name") in seen:
            out.append(f"{where}::$.copies[{i}].name: {item['name']!r} is used twice")
        seen.add(item.get("name", ""))
        if "must_be_mounted" in item and "path" not in item:
            out.append(f"{where}::$.copies[{i}].must_be_mounted: only for path targets")
        # env.json secrets leave the device in clear only when the operator says so.
        if kind == "config" and "encrypt" not in item and any(k in item for k in CLOUD_KINDS):
            out.append(f"{where}::$.copies[{i}].encrypt: a config backup holds env.json's "
                       "passwords and keys; add encrypt: {recipients: [age1...]} (from "
                       "`allsky-tasks keygen`), or encrypt: false to send it unencrypted")
    return out


def _tree_problems(data: dict[str, Any], where: str, env: Environment,
                   folders: Any) -> list[str]:
    """Checks against the install: home, camera files, folders, destination."""
    out: list[str] = []
    home, images, dest = resolve_paths(data, env)
    if not home.is_dir():
        key = "$.home" if data.get("home") else "$"
        return [f"{where}::{key}: Allsky home {home} does not exist "
                "(set ALLSKY_HOME or the spec's home)"]
    roots: list[Path] = []
    if data.get("type") == "config":
        for live in ("config/settings.json", "config/cc.json"):
            if not (home / live).is_file():
                out.append(f"{where}::$: required file {home / live} does not exist")
        if not out:
            try:
                install.read_camera(home)
            except ValueError as e:
                out.append(f"{where}::$: cannot read the current camera: {e}")
        if install.read_version(home) == "unknown":
            # Allsky's upload and our restore refuse a config backup of an unknown version, so
            # pack must not write one (read without blocking: a FIFO there cannot hang us).
            out.append(f"{where}::$: cannot read the Allsky version from {home / 'version'} "
                       "(missing, empty or not a regular file); restore refuses a config "
                       "backup without it")
        selected = {"core"} | {k for k, v in data.get("sections", {}).items() if v}
        for section in SECTIONS:
            if section.key in selected:
                roots += [home / p for p in section.paths if not p.startswith("{")]
        roots.append(home / "config")
    else:
        if not images.is_dir():
            out.append(f"{where}::$.images: images folder {images} does not exist")
        elif isinstance(folders, list):
            for i, name in enumerate(folders):
                if not FOLDER_RE.match(name):
                    out.append(f"{where}::$.folders[{i}]: {name!r} is not a night folder name")
                elif not (images / name).is_dir():
                    what = ("is a symbolic link that loops or leads nowhere"
                            if (images / name).is_symlink() else "does not exist")
                    out.append(f"{where}::$.folders[{i}]: folder {images / name} {what}")
        roots.append(images)
    roots += [home / pattern.split("*")[0] for pattern in data.get("include", [])]
    real_dest = dest.resolve()
    for root in roots:
        if root.exists() and _inside(real_dest, root.resolve()):
            out.append(f"{where}::$.destination: {dest} is inside the backed-up path {root}; "
                       "choose a folder outside it (default: beside the Allsky home)")
            break
    return out
