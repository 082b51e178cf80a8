"""Import ("upload"): check an outside archive completely, then store it atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive.io import ARCHIVE_MODE, SUFFIXES, fsync_dir
from ..archive.manifest import sidecar_path, write_sidecar
from ..archive.metadata import NAMESPACE
from ..archive.safety import ArchiveRejected, Limits, SafetyReport, validate_archive
from ..errors import InventoryError, ManifestError, SpaceError
from .archive_metadata import clean_metadata

_TEMP_PREFIX = ".import-"  # not .allsky-*: pack's stale-part cleanup must not touch it


@dataclass
class ImportResult:
    """Where an accepted archive went and what the check found."""

    path: Path
    sidecar: Path
    report: SafetyReport | None
    duplicate: bool = False  # the same bytes were already stored, as `path`; nothing written


def safe_stem(name: str) -> tuple[str, str]:
    """(stem, suffix): Allsky's rule, anything outside [A-Za-z0-9._-] becomes '_'."""
    lower = name.lower()
    suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
    if suffix is None:
        raise ArchiveRejected(name, "not a .tar.gz or .tar.zst file")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name[: -len(suffix)]).lstrip(".")
    return stem or "imported", suffix


def _taken(dest: Path, stem: str) -> bool:
    """A stem is taken if any archive or the sidecar of that stem exists."""
    return any((dest / f"{stem}{s}").exists() for s in (*SUFFIXES, ".json"))


def _publish(tmp: Path, dest: Path, stem: str, suffix: str) -> Path:
    """Give the checked copy its final name, never replacing an existing file."""
    for n in range(10_000):
        name = stem if n == 0 else f"{stem}-{n}"
        if _taken(dest, name):
            continue
        final = dest / f"{name}{suffix}"
        try:
            os.link(tmp, final)  # fails if the name appeared meanwhile: no overwrite
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            os.replace(tmp, final)  # no hard links (FAT/exFAT USB): checked free just above
        tmp.unlink(missing_ok=True)
        fsync_dir(dest)
        return final
    raise InventoryError(f"no free name for {stem}{suffix} in {dest}")


def _clean_stale(dest: Path) -> None:
    """Remove temp copies left by killed imports (their process is gone)."""
    for path in dest.glob(f"{_TEMP_PREFIX}*.part"):
        pid = path.name[len(_TEMP_PREFIX):].split("-")[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            path.unlink(missing_ok=True)
        except PermissionError:
            continue


def _check_space(src: Path, dest: Path) -> None:
    """The copy must fit, with room to spare."""
    size = src.stat().st_size
    st = os.statvfs(dest)
    free = st.f_bavail * st.f_frsize
    if size + (16 << 20) > free:
        raise SpaceError(f"{dest} has {free} bytes free; importing {src.name} needs {size}",
                         hint="free some space or import into another --dest")


def _sidecar_metadata(report: SafetyReport, src: Path) -> dict[str, Any]:
    """The archive's metadata (sidecar-only keys stripped) plus where it came from."""
    meta = clean_metadata(report.metadata)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta[NAMESPACE]["imported"] = {"from": str(src.absolute()), "at": now,
                                   "sha256": report.sha256, "size": report.size}
    meta[NAMESPACE]["verify"] = {"ok": True, "method": f"import ({report.kind})",
                                 "members": report.members, "sha256": report.sha256,
                                 "sizeBytes": report.size, "seconds": report.seconds,
                                 "verifiedAt": now}
    return meta


def import_archive(src: Path, dest: Path, limits: Limits = Limits(),
                   on_bytes: Callable[[int], None] | None = None) -> ImportResult:
    """Check `src` completely while copying it to a hidden temp file; publish only if good."""
    stem, suffix = safe_stem(src.name)
    if not src.is_file():
        raise InventoryError(f"{src}: no such file", hint="give the path of a .tar.gz/.tar.zst")
    from .duplicates import already_stored

    same = already_stored(src, dest)
    if same is not None:
        return ImportResult(path=same, sidecar=sidecar_path(same), report=None, duplicate=True)
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o750)
        _clean_stale(dest)
        _check_space(src, dest)
        tmp = dest / f"{_TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, ARCHIVE_MODE)
    except OSError as e:
        raise InventoryError(f"cannot import into {dest}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, ARCHIVE_MODE)  # whatever the umask: env.json secrets stay private
            # The copy is fed the very bytes being checked: nothing can change in between.
            def sink(view: memoryview) -> None:
                out.write(view)
                if on_bytes is not None:
                    on_bytes(len(view))

            report = validate_archive(src, limits, sink=sink)
            out.flush()
            os.fsync(out.fileno())
        final = _publish(tmp, dest, stem, suffix)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise SpaceError(f"{dest} filled up while importing {src.name}") from e
        raise InventoryError(f"importing {src}: {e.strerror or e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        sidecar = write_sidecar(final, _sidecar_metadata(report, src),
                                {"sizeBytes": report.size, "sha256": report.sha256})
    except ManifestError:
        final.unlink(missing_ok=True)  # no half-imported backup without its sidecar
        raise
    _record_check(final, report)
    return ImportResult(path=final, sidecar=sidecar, report=report)


def _record_check(final: Path, report: SafetyReport) -> None:
    """The import's full check is a full read of the stored bytes: record it (state folder)."""
    from ..archive.records import STATE, RecordStore, make_record
    from ..errors import UnsafePathError

    with contextlib.suppress(OSError, UnsafePathError):  # the import stands; `verify` records it later
        RecordStore(final.parent / STATE).put(final, make_record(
            final.stat(), True, kind=report.kind, members=report.members, sha256=report.sha256,
            sizeBytes=report.size, type=report.metadata.get("backupType"), spec=None,
            method=f"import ({report.kind}): safety checks of import and restore"))
