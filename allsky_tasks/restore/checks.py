"""Restore checks: whether a restore of the chosen members may go ahead (target, archive, camera, space...)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import install
from ..archive.manifest import read_sidecar
from ..archive.members import Member, manifest_of
from ..archive.metadata import NAMESPACE
from ..archive.safety import ArchiveRejected, Limits, SafetyReport, validate_archive
from ..archive.structure import structure_problems
from ..archive.verify import CORRUPT
from ..backup.space import format_bytes, free_bytes, required_bytes
from ..errors import ManifestError
from .selection import Selection
from .tar_stream import open_tar, read_member

SETTINGS_RE = re.compile(r"config/settings_[^/]+\.json")
CC_RE = re.compile(r"config/cc_[^/]+\.json")
FLOW_RE = re.compile(rf"config/modules/postprocessing_({'|'.join(install.FLOWS)})\.json")
FLOW_LIMIT = 4 << 20


@dataclass(frozen=True)
class Check:
    """One pre-restore check and why it passed or failed."""

    name: str
    passed: bool
    blocking: bool
    reason: str

    @property
    def blocks(self) -> bool:
        """A failed blocking check stops the restore."""
        return self.blocking and not self.passed

    @property
    def status(self) -> str:
        """pass, FAIL (blocks) or warn (failed, not blocking)."""
        return "pass" if self.passed else "FAIL" if self.blocking else "warn"


def check_target(home: Path, images: Path | None) -> Check:
    """The Allsky home is a folder; for images, the images folder is one or can be made."""
    if images is None:
        ok = home.is_dir()
        return Check("Allsky home", ok, True, f"{home} is a folder" if ok else
                     f"{home} is not a folder; set ALLSKY_HOME or pass --home")
    if images.is_dir():
        return Check("Images folder", True, True, f"{images} is a folder")
    if os.path.lexists(images):
        return Check("Images folder", False, True, f"{images} is not a folder (a link to "
                     "storage that is not mounted?); mount it or fix the link first")
    return Check("Images folder", True, True, f"{images} does not exist yet and will be made")


def check_archive(archive: Path, limits: Limits) -> tuple[Check, SafetyReport | None]:
    """The whole archive passes the import safety checks (ours also against the manifest)."""
    name = "Archive verifies"
    try:
        report = validate_archive(archive, limits)
    except ArchiveRejected as e:
        return Check(name, False, True, f"{e.problem}" + (f" ({e.member})" if e.member else "")
                     ), None
    except OSError as e:
        return Check(name, False, True, f"cannot read {archive}: {e.strerror or e}"), None
    try:
        recorded = ((read_sidecar(archive) or {}).get(NAMESPACE) or {}).get("archive") or {}
    except ManifestError:
        recorded = {}
    if isinstance(recorded, dict) and recorded.get("sha256") not in (None, report.sha256):
        return Check(name, False, True, "the archive's SHA-256 differs from the one its "
                     "sidecar recorded at backup time"), report
    how = ("every member matches its manifest (size, mode, time, SHA-256)"
           if report.kind == "ours" else "made by Allsky (no manifest): structure, paths, links "
           "and the files list checked")
    return Check(name, True, True, f"{report.members} members; {how}"), report


def check_metadata(metadata: dict[str, Any], entries: list[Member]) -> Check:
    """metadata.json has what a restore relies on."""
    problems = structure_problems(metadata, entries)
    if metadata.get("backupType") == "config":
        for key, rule in (("settingsfile", SETTINGS_RE), ("ccfile", CC_RE)):
            value = metadata.get(key)
            if not isinstance(value, str) or not rule.fullmatch(value):
                problems.append(f"{key} {value!r} is not a config/{key[:-4]}_*.json name")
    detail = (f"{metadata.get('backupType')} backup of Allsky {metadata.get('version')}, "
              f"created {metadata.get('created')}")
    return Check("Metadata valid", not problems, True, "; ".join(problems) or detail)


def check_selection(sel: Selection) -> Check:
    """Something is chosen, and every choice exists in the archive."""
    if not sel.problems and not sel.files:
        sel.problems.append("the selection holds no files")
    what = "sections" if sel.kind == "config" and sel.mode == "normal" else \
        "folders" if sel.mode == "normal" else "patterns"
    summary = f"{len(sel.files)} files, {format_bytes(sel.bytes)} ({what}: {', '.join(sel.chosen)})"
    return Check("Selection not empty", not sel.problems, True,
                 "; ".join(sel.problems) or summary)


def check_camera(metadata: dict[str, Any], home: Path, sel: Selection, force: bool,
                 fresh: str | None = None) -> Check:
    """The backup's camera is the current one, when camera settings are restored."""
    name = "Camera matches"
    if not {metadata.get("settingsfile"), metadata.get("ccfile")} & sel.paths:
        return Check(name, True, True, "no camera settings file is restored")
    backup = f"{metadata.get('cameratype')} {metadata.get('cameramodel')}"
    if fresh:  # a new card: no camera is set up here yet, the backup's comes back with it
        return Check(name, True, True, f"no camera is set up here yet ({fresh}): the backup's "
                                       f"camera '{backup}' is restored with its settings")
    try:
        cam = install.read_camera(home)
        current, why = f"{cam.cameratype} {cam.cameramodel}", ""
    except ValueError as e:
        current, why = "unknown", f" ({e})"
    if current == backup and "unknown" not in backup.split():
        return Check(name, True, True, f"backup and current camera are both '{backup}'")
    reason = f"backup camera is '{backup}', current camera is '{current}'{why}"
    if force:
        return Check(name, False, False, f"{reason}; restoring anyway (--force-camera)")
    return Check(name, False, True, f"{reason}; pass --force-camera to restore it anyway")


def read_flows(archive: Path, wanted: dict[str, Member], limits: Limits,
               max_bytes: int | None) -> dict[str, bytes]:
    """The chosen flow files' bytes, each matching the checked read's SHA-256."""
    found: dict[str, bytes] = {}
    with open_tar(archive, limits, max_bytes) as tar:
        while len(found) < len(wanted) and (info := tar.next()) is not None:
            want = wanted.get(info.name)
            source = tar.extractfile(info) if want is not None and info.size <= FLOW_LIMIT \
                else None
            chunks = []
            while source is not None and (chunk := read_member(source, archive, info.name)):
                chunks.append(chunk)
            if source is not None and want is not None:
                data = b"".join(chunks)
                if hashlib.sha256(data).hexdigest() != want.sha256:
                    raise ArchiveRejected(archive, "changed since it was checked", info.name)
                found[info.name] = data
            tar.members.clear()  # type: ignore[attr-defined]  # not in tarfile's stub
    return found


def check_modules(archive: Path, report: SafetyReport, sel: Selection, home: Path,
                  legacy: Path, limits: Limits) -> Check:
    """Every module the restored flows name exists here or is restored with them."""
    name = "Required modules present"
    flows = {m.path: m for m in sel.files if FLOW_RE.fullmatch(m.path) and m.type == "file"}
    if not flows:
        return Check(name, True, True, "no module flow file is restored")
    try:
        data = read_flows(archive, flows, limits, report.decompressed_bytes)
        named: set[str] = set()
        for path in sorted(flows):
            named |= install.flow_modules(json.loads(data[path]))
    except (ArchiveRejected, KeyError, ValueError, *CORRUPT) as e:
        return Check(name, False, True, f"cannot read the flow files from the archive: {e}")
    restored = {m.path.rsplit("/", 1)[-1] for m in sel.files
                if m.path.startswith("config/myFiles/modules/") and m.path.count("/") == 3}
    places = (home / "scripts/modules", home / "config/myFiles/modules", legacy)
    missing = sorted(m for m in named
                     if m not in restored and not any((p / m).is_file() for p in places))
    if missing:
        return Check(name, False, True, f"missing module file(s): {', '.join(missing)} (looked "
                     f"in {', '.join(map(str, places))} and the restored files); install them "
                     "first, or restore the backup's modules section too")
    return Check(name, True, True, f"{len(named)} module(s) named by {len(flows)} flow file(s), "
                 f"all present{f' ({len(named & restored)} restored)' if named & restored else ''}")


def check_space(sel: Selection, folder: Path) -> Check:
    """The target filesystem holds the restored files (staged beside the old ones) + margin."""
    free, need = free_bytes(folder), required_bytes(sel.bytes)
    return Check("Enough free space", free >= need, True,
                 f"{format_bytes(free)} free on {folder}'s filesystem, {format_bytes(need)} "
                 f"needed ({format_bytes(sel.bytes)} to restore, staged beside the old files, "
                 "+ margin)")


def check_version(metadata: dict[str, Any], home: Path) -> Check:
    """Same Allsky version as the backup (a difference is only a warning)."""
    here, there = install.read_version(home), metadata.get("version")
    same = here == there
    return Check("Allsky version", same, False, f"backup {there}, installed {here}"
                 + ("" if same else "; settings of another version may need a review"))


_SHOWN = 5


def incomplete_members(metadata: dict[str, Any], sel: Selection) -> list[str]:
    """Selected members our manifest flags as changed while being packed (known-bad copies)."""
    chosen = sel.paths
    return sorted(str(r["path"]) for r in manifest_of(metadata) or []
                  if isinstance(r, dict) and r.get("changedWhilePacking") and r.get("path") in chosen)


def check_complete(bad: list[str], accepted: bool) -> Check:
    """Known-bad content (packed under on_file_error: warn while it changed) is named, never silent."""
    name = "Content complete"
    if not bad:
        return Check(name, True, False, "no restored file changed while it was being packed")
    shown = ", ".join(bad[:_SHOWN]) + (f" (and {len(bad) - _SHOWN} more)" if bad[_SHOWN:] else "")
    return Check(name, False, False,
                 f"{len(bad)} file(s) changed while being packed (on_file_error: warn), so the "
                 f"backup's copy is incomplete or mixed: {shown}; "
                 + ("restoring them anyway (--accept-incomplete)" if accepted else
                    "the restore asks before going on, or needs --accept-incomplete"))
