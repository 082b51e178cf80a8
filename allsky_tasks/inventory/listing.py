"""Inventory: list the backups in a destination, show one, verify it, delete it."""

from __future__ import annotations

import json
import os
import stat
import tarfile
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..archive.io import (CHUNK, SUFFIXES, HashingReader, ZstdFrameWalker, archive_format, drain,
                         fsync_dir, open_decompressed)
from ..errors import InventoryError, ManifestError, VerifyError
from ..safefs import open_file
from ..archive.manifest import read_sidecar, sidecar_path, write_sidecar
from ..archive.metadata import NAMESPACE
from ..archive.records import RecordStore, is_backup_folder, make_record as make_check, store_for
from ..archive.verify import CORRUPT, manifest_of

MAX_METADATA = 64 << 20
# Keys only the sidecar may carry: an archive's own metadata.json must not set them.
SIDECAR_ONLY = ("pinned", "verify", "imported", "archive")


@dataclass
class Record:
    """One backup as listed."""

    path: Path
    type: str  # config | images | unknown
    created: str
    timestamp: float
    version: str
    cameratype: str
    cameramodel: str
    size: int
    pinned: bool
    verified: bool | None  # None: never verified
    verified_at: str | None
    spec: str
    kind: str  # ours | allsky
    source: str  # sidecar | archive | none
    mtime: float = 0.0  # breaks ties between backups made in the same second
    problem: str | None = None
    verified_epoch: float | None = None  # when the last full read was (our state folder)
    verify_problems: list[str] = field(default_factory=list)  # why the last read failed
    stale: bool = False  # the last full read is older than the spec's verify.every
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The archive's file name."""
        return self.path.name

    @property
    def night_set(self) -> str | None:
        """The per-night set this archive belongs to (one backup of many archives), if any."""
        per_night = namespace(self.metadata).get("perNight")
        return str(per_night.get("set")) if isinstance(per_night, dict) else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready row (without the full metadata)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metadata"}
        row["path"], row["name"], row["set"] = str(self.path), self.name, self.night_set
        return row


def set_members(records: list[Record], name: str) -> list[Record]:
    """The archives of one per-night set, oldest night first."""
    members = [r for r in records if r.night_set == name]
    return sorted(members, key=lambda r: (namespace(r.metadata)["perNight"].get("folder", ""),
                                          r.timestamp))


@dataclass
class Advice:
    """A listing warning and the command that fixes it."""

    message: str
    command: str


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


def clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """An archive's metadata fit for a sidecar: the sidecar-only keys removed."""
    ours = metadata.get(NAMESPACE)
    ours = {k: v for k, v in ours.items() if k not in SIDECAR_ONLY} if isinstance(
        ours, dict) else {}
    return {**metadata, NAMESPACE: ours}


def read_archive_metadata(archive: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """metadata.json streamed from the archive (it is last) plus size/SHA-256, or an error."""
    walker = ZstdFrameWalker() if archive_format(archive) == "zstd" else None
    raw_meta: bytes | None = None
    facts: dict[str, Any] = {}
    with open_file(archive, "rb") as raw:  # never through a link, never blocking
        hashed = HashingReader(raw, walker.feed if walker else None)  # type: ignore[arg-type]
        try:
            stream = open_decompressed(archive, hashed)  # type: ignore[arg-type]
            with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 16) as tar:  # see safety
                while (info := tar.next()) is not None:
                    if info.name == "metadata.json" and info.isreg() and \
                            info.size <= MAX_METADATA and raw_meta is None:
                        raw_meta = tar.extractfile(info).read()  # type: ignore[union-attr]
                    tar.members.clear()  # type: ignore[attr-defined]
            drain(stream)
            while hashed.read(CHUNK):
                pass
            if walker is not None and not walker.complete:
                raise EOFError("the zstd frame ends early (file cut short)")
        except CORRUPT as e:
            facts["problem"] = f"damaged or incomplete archive: {type(e).__name__}: {e}"
        facts.update(sizeBytes=hashed.size, sha256=hashed.sha256.hexdigest())
    try:
        meta = json.loads(raw_meta) if raw_meta is not None else None
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        facts.setdefault("problem", "no usable metadata.json in the archive")
        return None, facts
    return meta, facts


def namespace(meta: dict[str, Any]) -> dict[str, Any]:
    """Our namespace in a metadata document ({} if absent or malformed)."""
    ours = meta.get(NAMESPACE)
    return ours if isinstance(ours, dict) else {}


def _timestamp(meta: dict[str, Any], mtime: float) -> tuple[str, float]:
    """Display time and sort key: our ISO time, Allsky's local `created`, else the mtime."""
    ours = namespace(meta)
    for value, fmt in ((ours.get("createdIso"), None), (meta.get("created"), "%Y-%m-%d %H:%M:%S")):
        if not isinstance(value, str):
            continue
        try:
            when = datetime.fromisoformat(value) if fmt is None else datetime.strptime(value, fmt)
            return when.strftime("%Y-%m-%d %H:%M:%S"), when.timestamp()
        except ValueError:
            continue
    return datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S"), mtime


def _text(value: Any, default: str = "unknown") -> str:
    """A metadata value for display."""
    return str(value) if isinstance(value, (str, int, float)) and str(value) else default


def make_record(path: Path, meta: dict[str, Any] | None, source: str, st: os.stat_result,
                problem: str | None = None, check: dict[str, Any] | None = None) -> Record:
    """A listing row from whatever metadata we have, and the last full read of this very file.

    `check` is the verification record of our state folder (never a sidecar's own claim);
    it also says what the archive's content is (ours, its spec) whatever sidecar sits beside it.
    """
    meta = meta or {}
    ours = namespace(meta)
    if meta:
        kind = "images" if meta.get("backupType") == "images" else "config"
    else:
        kind = next((k for k in ("config", "images") if f"-{k}-" in path.name), "unknown")
    created, ts = _timestamp(meta, st.st_mtime)
    spec = ours.get("spec", {}).get("name") if isinstance(ours.get("spec"), dict) else None
    spec = str(spec) if spec and "imported" not in ours else "allsky"
    content = "ours" if manifest_of(meta) is not None else "allsky"
    if check and check.get("kind") in ("ours", "allsky"):  # learned from the archive itself
        content = check["kind"]
        spec = str(check.get("spec") or spec) if content == "ours" else spec
    images = kind == "images"
    return Record(
        path=path, type=kind, created=created, timestamp=ts,
        version=_text(meta.get("version")),
        cameratype="N/A" if images else _text(meta.get("cameratype")),
        cameramodel="N/A" if images else _text(meta.get("cameramodel")),
        size=st.st_size, pinned=ours.get("pinned") is True,
        verified=None if check is None else check.get("ok") is True,
        verified_at=check.get("verifiedAt") if check else None,
        spec=spec, kind=content, source=source, mtime=st.st_mtime, problem=problem,
        metadata=meta, verified_epoch=check.get("epoch") if check else None,
        verify_problems=list(check.get("problems") or []) if check else [])


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
        try:
            write_sidecar(path, meta, {**facts, "cachedFrom": "archive"})
        except (ManifestError, OSError):
            pass  # a read-only folder (or a planted link) still lists
    return make_record(path, meta, "archive", st, facts.get("problem"), check)


def list_backups(dest: Path, cache: bool = True) -> list[Record]:
    """Every backup in dest: Config first, then Images, newest first."""
    order = {"config": 0, "images": 1}
    records = [load_record(p, cache) for p in archive_paths(dest)]
    return sorted(records, key=lambda r: (order.get(r.type, 2), -r.timestamp, -r.mtime, r.name))


def _same_device(a: Path, b: Path) -> bool:
    """True if both paths exist on one filesystem."""
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def listing_warnings(records: list[Record], dest: Path, home: Path, max_age_days: float = 30,
                     now: float | None = None, backup_cmd: str = "allsky-tasks run backup"
                     ) -> list[Advice]:
    """What an operator should fix, each with its command."""
    now = time.time() if now is None else now
    configs = [r for r in records if r.type == "config" and not r.problem]
    out: list[Advice] = []
    for r in records:
        if r.problem and r.problem.startswith("unreadable sidecar"):
            out.append(Advice(f"{r.name}: {r.problem}", f"rm {sidecar_path(r.path)}"))
        elif r.problem:
            out.append(Advice(f"{r.name}: {r.problem}", f"allsky-tasks delete {r.name}"))
    if not configs:
        what = "only images backups exist" if records else f"no backups in {dest}"
        out.append(Advice(f"No config backup: {what}.", backup_cmd))
        return out
    for r in records:  # a failed full read: never to be pinned or copied as a good backup
        if r.verified is False and not r.problem:
            why = r.verify_problems[0] if r.verify_problems else "its last full read failed"
            out.append(Advice(f"{r.name} is not a good backup: {why}",
                              f"allsky-tasks info {r.name}; allsky-tasks delete {r.name}"))
    # Only backups not known to be bad are ever suggested for pinning or copying.
    configs = [r for r in configs if r.verified is not False]
    if not configs:
        out.append(Advice("No config backup that is not damaged or unsafe.", backup_cmd))
        return out
    if not any(r.pinned and r.verified for r in configs):
        good = next((r for r in configs if r.verified), None)
        cmd = (f"allsky-tasks pin {good.name}" if good else
               f"allsky-tasks verify {configs[0].name} && allsky-tasks pin {configs[0].name}")
        out.append(Advice("No pinned known-good config backup.", cmd))
    age = (now - configs[0].timestamp) / 86400
    if age > max_age_days:
        out.append(Advice(f"The newest config backup is {age:.0f} days old "
                            f"(more than {max_age_days:g}).", backup_cmd))
    folders = {r.path.parent for r in records} or {dest}  # every folder listed, not only dest
    if all(_same_device(folder, home) for folder in folders):
        good = next((r for r in configs if r.verified), configs[0])
        out.append(Advice(f"Every backup is on the same filesystem as {home}: a failed card "
                            "loses both.", (f"allsky-tasks verify {good.name} && " if not
                                            good.verified else "")
                          + f"cp -p {good.path} {sidecar_path(good.path)} /media/usb/"))
    return out


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


def verify_backup(path: Path) -> dict[str, Any]:
    """Read any archive completely: the checks of import and restore, our manifest when its
    metadata.json carries one, the size and SHA-256 recorded at backup time.

    The result goes to our state folder (the backup folder's, or the default one for a file
    elsewhere), keyed by the file's identity; nothing is written beside the archive.
    """
    from ..archive.scrub import recorded_facts, scrub

    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):  # a link or FIFO named like a backup: never followed
            raise InventoryError(f"{path}: not a regular file ({stat.filemode(st.st_mode)}); "
                                 "not read", hint="give the path of the archive itself")
        recorded = recorded_facts(read_sidecar(path))
    except ManifestError:
        recorded = {}
    except OSError as e:
        raise InventoryError(f"{path}: {e.strerror or e}") from e
    store = read_store(path)
    try:
        result = scrub(path, recorded)
    except VerifyError as e:
        store.put(path, make_check(st, False, problems=e.problems[:100]))
        raise
    return store.put(path, make_check(st, True, **result))


def verify_many(paths: list[Path]) -> list[dict[str, Any]]:
    """Scrub each archive; a row per archive with its result or problems (never raises)."""
    rows = []
    for path in paths:
        try:
            rows.append({"archive": str(path), **verify_backup(path)})
        except (VerifyError, InventoryError) as e:
            problems = getattr(e, "problems", None) or [e.message]
            rows.append({"archive": str(path), "ok": False, "problems": problems})
    return rows


def mark_stale(records: list[Record], every: dict[str, float | None], default: float | None,
               now: float | None = None) -> None:
    """Flag records whose last full read is older than their spec's verify.every."""
    now = time.time() if now is None else now
    for r in records:
        limit = every.get(r.spec, default)
        r.stale = (r.verified_epoch is not None and limit is not None
                   and now - r.verified_epoch >= limit)


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
