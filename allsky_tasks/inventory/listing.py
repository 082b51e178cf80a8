"""Inventory: list the backups in a destination, show one, delete it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..archive.io import SUFFIXES, fsync_dir
from ..archive.manifest import read_sidecar, sidecar_path
from ..archive.metadata import NAMESPACE
from ..archive.records import STATE, RecordStore, is_backup_folder, store_for
from ..archive.scrub import recorded_facts
from ..errors import InventoryError, ManifestError
from .archive_metadata import clean_metadata, read_archive_metadata
from .metadata_cache import MetadataCache
from .record import Record, make_record, namespace

__all__ = ["archive_paths", "delete_backup", "info", "is_archive_name", "list_backups", "load_record",
           "ours_to_cache", "read_store", "resolve", "sidecar_is_ours"]


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
    """Caches are only ever written inside a backup folder, never beside a foreign file."""
    return is_backup_folder(path.absolute().parent, _default_state().parent)


def sidecar_is_ours(sidecar: dict[str, Any] | None) -> bool:
    """A sidecar our pack or import wrote: it records the archive's size and SHA-256.

    Allsky's own sidecars (and the one its WebUI upload writes over ours) do not; for those
    the archive's own metadata.json says what the backup is.
    """
    facts = recorded_facts(sidecar)
    return isinstance(facts.get("sha256"), str) and isinstance(facts.get("sizeBytes"), int)


def _from_archive(path: Path, st: os.stat_result, cache: MetadataCache | None
                  ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The archive's own metadata.json and the facts of reading it (cached by identity)."""
    if cache is not None:
        hit = cache.get(path.name, st)
        if hit is not None:
            return hit
    try:
        meta, facts = read_archive_metadata(path)
    except OSError as e:
        return None, {"problem": f"cannot read: {e.strerror or e}"}
    meta = clean_metadata(meta) if meta is not None else None
    if cache is not None:
        cache.put(path.name, st, meta, facts)
    return meta, facts


def load_record(path: Path, cache: bool = True, anywhere: bool = False,
                shared: MetadataCache | None = None) -> Record:
    """Our sidecar first; else the archive's own metadata.json (cached in our state folder).

    Nothing is written beside the archive. `shared`: one cache for a whole listing (written
    once by the caller); `anywhere` is kept for callers that pin files outside backup folders.
    """
    del anywhere  # pins live in our state (archive/pins.py); nothing is cached beside a file
    try:
        st = path.lstat()
    except OSError as e:
        raise InventoryError(f"{path}: {e.strerror or e}") from e
    store = read_store(path)
    check = store.get(path, st)
    try:
        sidecar = read_sidecar(path)
    except ManifestError as e:
        return _with_pin(make_record(path, None, "none", st, f"unreadable sidecar: {e.message}",
                                     check), None)
    if sidecar_is_ours(sidecar):
        return _with_pin(make_record(path, sidecar, "sidecar", st, check=check), sidecar)
    own = shared if shared is not None else (
        MetadataCache(path.absolute().parent / STATE) if cache and ours_to_cache(path) else None)
    meta, facts = _from_archive(path, st, own)
    if own is not None and shared is None:
        own.flush()
    if check is None and isinstance(facts.get("sha256"), str):
        # The very bytes a verify of ours read and found good (e.g. our archive uploaded back
        # through Allsky's WebUI, a new file with the same name): the verdict carries over.
        check = store.get(path, st, sha256=facts["sha256"])
    if meta is None:
        problem = facts.get("problem") or "no usable metadata.json in the archive"
        if sidecar is not None:  # Allsky's sidecar still describes it; the read says what failed
            return _with_pin(make_record(path, sidecar, "sidecar", st, problem, check), sidecar)
        return _with_pin(make_record(path, None, "none", st, problem, check), None)
    return _with_pin(make_record(path, meta, "archive", st, facts.get("problem"), check), sidecar)


def _with_pin(record: Record, sidecar: dict[str, Any] | None) -> Record:
    """The pin from our state (an older version's sidecar pin while none is recorded there)."""
    from ..archive.pins import is_pinned

    ours = (sidecar or {}).get(NAMESPACE)
    legacy = isinstance(ours, dict) and ours.get("pinned") is True
    record.pinned = is_pinned(record.path, _default_state(), sidecar=legacy)
    return record


def list_backups(dest: Path, cache: bool = True) -> list[Record]:
    """Every backup in dest: Config first, then Images, newest first."""
    order = {"config": 0, "images": 1}
    shared = MetadataCache(dest / STATE) if cache and is_backup_folder(
        dest, _default_state().parent) else None
    records = [load_record(p, cache, shared=shared) for p in archive_paths(dest)]
    if shared is not None:
        shared.flush()
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
    if r.source == "archive":  # the listing keeps a slim copy: info reads the whole document
        with contextlib.suppress(OSError):
            full, _ = read_archive_metadata(path)
            meta = clean_metadata(full) if full is not None else meta
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
