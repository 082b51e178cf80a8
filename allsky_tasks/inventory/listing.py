"""Inventory: list the backups in a destination, show one, delete it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..archive.io import SUFFIXES, fsync_dir
from ..archive.manifest import read_sidecar, sidecar_path, write_sidecar
from ..archive.records import RecordStore, is_backup_folder, store_for
from ..errors import InventoryError, ManifestError
from .archive_metadata import clean_metadata, read_archive_metadata
from .record import Record, make_record, namespace

__all__ = ["archive_paths", "delete_backup", "info", "is_archive_name", "list_backups", "load_record",
           "ours_to_cache", "read_store", "resolve"]


def is_archive_name(name: str) -> bool:
    """allsky-*.tar.gz/.tar.zst and imported *.tar.gz/.tar.zst; never hidden or temp files."""
    return not name.startswith(".") and name.endswith(SUFFIXES)  # temp files are hidden


def archive_paths(dest: Path) -> list[Path]:
    """Every listed archive in a destination folder."""
    try:
        with os.scandir(dest) as it:
            # Never a link (nor a FIFO) in the backup folder: only regular files are backups.
            return sorted(Path(e.path) for e in it if is_archive_name(e.name)
                          and e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise InventoryError(f"cannot list {dest}: {e.strerror or e}") from e


def _default_state() -> Path:
    """The state folder of the default backup folder (ALLSKY_BACKUP_DIR)."""
    from ..environment import from_environ

    return from_environ().state_dir


def read_store(path: Path) -> RecordStore:
    """Where the verification records of this archive are (read only: nothing is created)."""
    return store_for(path, _default_state())


def ours_to_cache(path: Path) -> bool:
    """Sidecars are only ever cached inside a backup folder, never beside a foreign file."""
    return is_backup_folder(path.absolute().parent, _default_state().parent)


def load_record(path: Path, cache: bool = True, anywhere: bool = False) -> Record:
    """Sidecar first; else the archive's own metadata.json, cached as a sidecar.

    Cached only inside a backup folder, unless `anywhere` (pin: the operator asked for a write).
    """
    try:
        st = path.lstat()
    except OSError as e:
        raise InventoryError(f"{path}: {e.strerror or e}") from e
    check = read_store(path).get(path, st)
    try:
        sidecar = read_sidecar(path)
    except ManifestError as e:
        return make_record(path, None, "none", st, f"unreadable sidecar: {e.message}", check)
    if sidecar is not None:
        return make_record(path, sidecar, "sidecar", st, check=check)
    try:
        meta, facts = read_archive_metadata(path)
    except OSError as e:
        return make_record(path, None, "none", st, f"cannot read: {e.strerror or e}", check)
    if meta is None:
        return make_record(path, None, "none", st, facts.get("problem"), check)
    meta = clean_metadata(meta)
    if cache and "problem" not in facts and (anywhere or ours_to_cache(path)):
        with contextlib.suppress(ManifestError, OSError):  # a read-only folder (or a planted link) still lists
            write_sidecar(path, meta, {**facts, "cachedFrom": "archive"})
    return make_record(path, meta, "archive", st, facts.get("problem"), check)


def list_backups(dest: Path, cache: bool = True) -> list[Record]:
    """Every backup in dest: Config first, then Images, newest first."""
    order = {"config": 0, "images": 1}
    records = [load_record(p, cache) for p in archive_paths(dest)]
    return sorted(records, key=lambda r: (order.get(r.type, 2), -r.timestamp, -r.mtime, r.name))


def resolve(arg: str, dest: Path) -> Path:
    """ARCHIVE argument: a name in dest (with or without suffix) or a path."""
    if "/" in arg:
        path = Path(arg)
    else:
        if arg in ("", ".", "..") or arg.startswith("."):
            raise InventoryError(f"{arg!r} is not a backup name",
                                 hint="give a name from `allsky-tasks list` or a path")
        path = next((dest / f"{arg}{s}" for s in ("", *SUFFIXES)
                     if (dest / f"{arg}{s}").is_file()), dest / arg)
    if not path.name.endswith(SUFFIXES) or not path.is_file():
        raise InventoryError(f"no backup archive {path}",
                             hint="`allsky-tasks list` shows the backups and their names")
    return path


def info(path: Path) -> dict[str, Any]:
    """What is inside a backup, from its sidecar or metadata.json."""
    r = load_record(path)
    meta = r.metadata
    ours = namespace(meta)
    totals = ours["totals"] if isinstance(ours.get("totals"), dict) else {}
    files = meta["files"] if isinstance(meta.get("files"), list) else []
    included = meta.get("includedSections")
    sections = [s.get("key") for s in included if isinstance(s, dict)] if isinstance(
        included, list) else []
    return {
        **r.to_json(),
        "backupFile": meta.get("backupFile"), "settingsfile": meta.get("settingsfile"),
        "ccfile": meta.get("ccfile"),
        "sections": ours.get("sections") or sections,
        "includedOptionalTargets": meta.get("includedOptionalTargets", []),
        "imageBackupAll": meta.get("imageBackupAll"), "imageFolders": meta.get("imageFolders"),
        "requiredModules": meta.get("requiredModules", []),
        "backupModules": meta.get("backupModules", []),
        "backupHasModules": meta.get("backupHasModules"),
        "files": totals.get("files", len(files)), "members": totals.get("members"),
        "rawBytes": totals.get("rawBytes"),
        "databases": ours.get("databases", []), "estimate": ours.get("estimate"),
        "service": ours.get("service"), "warnings": ours.get("warnings", []),
        "verify": _last_read(r), "imported": ours.get("imported"),
        "archive": ours.get("archive"), "toolVersion": ours.get("toolVersion"),
        "timezone": ours.get("timezone"), "host": ours.get("host"),
    }


def _last_read(r: Record) -> dict[str, Any] | None:
    """The last full read of this file, from our state folder (None: never read)."""
    if r.verified is None:
        return None
    return {"ok": r.verified, "verifiedAt": r.verified_at, "problems": r.verify_problems,
            "stale": r.stale}


def delete_backup(path: Path) -> list[str]:
    """Remove an archive and its sidecar; returns what was removed."""
    removed = []
    for victim in (path, sidecar_path(path)):
        try:
            victim.unlink()
            removed.append(victim.name)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise InventoryError(f"cannot delete {victim}: {e.strerror or e}",
                                 hint="check the folder's owner and permissions") from e
    fsync_dir(path.parent)
    return removed
