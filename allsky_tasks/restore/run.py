"""Restore: checks, dry run, undo point, then stop, stage, move into place, relink, start, log."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ContextManager

from .. import install
from ..environment import STATE_DIRNAME, default_backup_dir
from ..errors import AllskyTasksError, RestoreError
from .extract import DirChain, extract, staging_area, sync_filesystem
from ..service.lock import destination_lock
from ..archive.manifest import read_sidecar, record_verify, write_sidecar
from ..backup.pack import pack
from .checks import (EXTRA, Check, Selection, check_archive, check_camera,
                             check_metadata, check_modules, check_selection, check_space,
                             check_target, check_version, claimed_areas, section_of,
                             select)
from . import journal
from .place import Ownership, Placer, plan
from ..archive.safety import Limits, SafetyReport
from ..backup.scan import read_rows, scan
from ..spec.sections import SECTIONS
from ..service.control import PauseRecord, ServiceConfig, paused_service
from ..spec.load import Spec
from ..archive.verify import Member, manifest_of, verify

LOG_MODE = 0o664  # what Allsky gives its restore logs


@dataclass
class RestoreOptions:
    """What to restore and how (every field has the CLI's default)."""

    sections: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    dry_run: bool = False
    force_camera: bool = False
    undo: bool = True
    images: Path | None = None  # images root (default <home>/images; a symlink is followed)
    backup_dir: Path | None = None  # undo backup, lock, service marker (default beside home)
    service: ServiceConfig | None = field(default_factory=ServiceConfig)  # None: leave it
    legacy_modules: Path = Path("/opt/allsky/modules")
    limits: Limits = field(default_factory=Limits)


@dataclass
class Prepared:
    """The checks and the selection: everything decided before anything changes."""

    archive: Path
    home: Path
    options: RestoreOptions
    checks: list[Check]
    report: SafetyReport | None = None
    selection: Selection | None = None

    @property
    def blocked(self) -> list[Check]:
        """Failed blocking checks."""
        return [c for c in self.checks if c.blocks]

    @property
    def metadata(self) -> dict[str, Any]:
        """The checked metadata.json."""
        return self.report.metadata if self.report else {}

    @property
    def images(self) -> Path:
        """The images root."""
        return self.options.images or self.home / "images"

    @property
    def backup_dir(self) -> Path:
        """Where the undo backup goes."""
        return self.options.backup_dir or default_backup_dir(self.home)


@dataclass
class RestoreSummary:
    """What a restore did (or, dry run, would do)."""

    archive: str
    backup_type: str
    mode: str
    chosen: list[str]
    version_from: str
    version_to: str
    camera_from: str | None
    camera_to: str | None
    checks: list[Check]
    dry_run: bool = False
    plan: list[tuple[str, str, int]] = field(default_factory=list)  # (action, path, size)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    undo: str | None = None
    log: str | None = None
    service: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


class RestoreBlocked(RestoreError):
    """A blocking pre-restore check failed: nothing was changed."""

    def __init__(self, prepared: Prepared) -> None:
        self.checks = prepared.checks
        super().__init__(f"restore of {prepared.archive} blocked: " + "; ".join(
            f"{c.name}: {c.reason}" for c in prepared.blocked),
            hint="nothing was changed; fix the cause or choose other sections/files")


def prepare(archive: Path, home: Path, options: RestoreOptions) -> Prepared:
    """Every pre-restore check, in order; stops at the first one the rest depend on."""
    prep = Prepared(archive, home, options, [check_target(home, None)])
    if prep.blocked:
        return prep
    check, report = check_archive(archive, options.limits)
    prep.checks.append(check)
    prep.report = report
    if report is None:
        return prep
    meta = report.metadata
    prep.checks.append(check_metadata(meta, report.entries))
    if prep.blocked:
        return prep
    sel = prep.selection = select(meta, report.entries, options.sections, options.folders,
                                  options.files)
    prep.checks.append(check_selection(sel))
    if prep.blocked:
        return prep
    if sel.kind == "config":
        prep.checks.append(check_camera(meta, home, sel, options.force_camera))
        prep.checks.append(check_modules(archive, report, sel, home, options.legacy_modules,
                                         options.limits))
    if sel.kind == "images":
        prep.checks.append(check_target(home, prep.images))
    prep.checks.append(check_space(sel, prep.images if sel.kind == "images" else home))
    prep.checks.append(check_version(meta, home))
    return prep


def _present_sections(home: Path) -> tuple[str, ...]:
    """Every config section with something on disk (core always)."""
    def exists(rel: str) -> bool:
        return rel.startswith("{") or os.path.lexists(home / rel)

    return tuple(s.key for s in SECTIONS if s.required or any(exists(p) for p in s.paths)
                 or any(next(iter(home.glob(g)), None) for g in s.globs))


def undo_backup(prep: Prepared, state_dir: Path) -> tuple[Path, list[str]]:
    """A verified config backup of the current state ("pre-restore") in the backup folder."""
    assert prep.selection is not None
    extra = [glob.escape(m.path) for m in prep.selection.files
             if section_of(m.path, prep.metadata) == EXTRA
             and os.path.lexists(prep.home / m.path)]
    spec = Spec(name="pre-restore", path=Path("pre-restore"), type="config",
                description=f"Undo point taken before restoring {prep.archive.name}",
                home=prep.home, images=prep.images, destination=prep.backup_dir,
                sections=_present_sections(prep.home), include=tuple(extra), format="zstd",
                level=3, on_file_error="warn",
                digest=hashlib.sha256(f"pre-restore:{prep.archive}:{time.time()}".encode())
                .hexdigest())
    try:
        with tempfile.TemporaryDirectory(prefix="pre-restore-", dir=state_dir) as work:
            rows = Path(work) / "scan.jsonl"
            with rows.open("w", encoding="utf-8") as out:
                summary = scan(spec, out)
            result = pack(spec, summary, read_rows(rows), Path(work))
            metadata = json.loads(Path(result.metadata).read_bytes())
        archive = Path(result.archive)
        write_sidecar(archive, metadata, {"sizeBytes": result.size, "sha256": result.sha256})
        record_verify(archive, verify(archive, read_sidecar(archive)))
    except AllskyTasksError as e:
        raise RestoreError(f"cannot take the undo backup of {prep.home}: {e.message}",
                           hint="nothing was changed; fix that, or pass --no-undo to restore "
                                "without an undo point") from e
    return archive, result.warnings


def _expected(report: SafetyReport) -> dict[str, Member]:
    """What each member must be: our manifest when there is one, else the checked read."""
    rows = manifest_of(report.metadata)
    if rows is None:
        return {m.path: m for m in report.entries}
    # Missing fields cannot match: such a member is rejected, not a KeyError.
    return {r["path"]: Member(path=r["path"], type=r.get("type", ""), size=r.get("size", 0),
                              mode=r.get("mode", ""), mtime=r.get("mtime", -1),
                              uid=r.get("uid", 0), gid=r.get("gid", 0),
                              linkname=r.get("linkname", ""), sha256=r.get("sha256"))
            for r in rows}


def _camera(home: Path) -> str | None:
    """The current camera as 'type model', or None."""
    try:
        cam = install.read_camera(home)
    except ValueError:
        return None
    return f"{cam.cameratype} {cam.cameramodel}"


def _summary(prep: Prepared, **fields: Any) -> RestoreSummary:
    """The summary's fixed part: archive, choice, versions, cameras, checks."""
    assert prep.selection is not None
    sel, meta = prep.selection, prep.metadata
    return RestoreSummary(
        archive=str(prep.archive), backup_type=sel.kind, mode=sel.mode, chosen=sel.chosen,
        version_from=str(meta.get("version")), version_to=install.read_version(prep.home),
        camera_from=f"{meta.get('cameratype')} {meta.get('cameramodel')}"
        if sel.kind == "config" else None, camera_to=_camera(prep.home), checks=prep.checks,
        warnings=[f"{c.name}: {c.reason}" for c in prep.checks if not c.passed], **fields)


def _roots(prep: Prepared) -> dict[str, Path]:
    """Where members go: config below the home, images below the images root."""
    assert prep.selection is not None
    return {"images": prep.images} if prep.selection.kind == "images" else {"home": prep.home}


def _stage_and_place(prep: Prepared, summary: RestoreSummary) -> None:
    """Extract into staging on the targets' filesystem, then move everything into place."""
    assert prep.report is not None and prep.selection is not None
    sel, meta = prep.selection, prep.metadata
    roots = _roots(prep)
    if sel.kind == "images" and not os.path.lexists(prep.images):
        prep.images.mkdir()  # a fresh install without images/ (a dangling link was refused)
    same_fs = sel.kind == "config" or os.stat(prep.home).st_dev == os.stat(prep.images).st_dev
    root = prep.home if same_fs else prep.images  # os.replace needs one filesystem
    owners = Ownership(meta, prep.home)
    areas = claimed_areas(meta)
    chosen = sel.paths
    with staging_area(root) as staging:
        got = extract(prep.archive, staging / "tree", areas, chosen.__contains__, owners,
                      _expected(prep.report), prep.options.limits,
                      prep.report.decompressed_bytes)
        summary.warnings += got.warnings
        summary.steps.append(f"Extracted {len(got.files)} files into {staging}")
        sync_filesystem(staging)  # staged data on disk before any of it becomes visible
        state_dir = prep.backup_dir / STATE_DIRNAME
        # From here a SIGKILL leaves a journal: the next command finishes the placement.
        journal.begin(state_dir, archive=prep.archive, staging=staging, roots=roots, kind=sel.kind,
                      home=prep.home, undo=summary.undo, members=got.written, attrs=owners,
                      relink=(meta["settingsfile"], meta["ccfile"]) if sel.kind == "config" else None)
        placer = Placer(staging, roots, owners, on_placed=journal.kill_point())
        try:
            files = set(got.files)
            summary.files = [p for p in placer.place(got.written) if p in files]
            summary.steps.append(f"Moved {len(summary.files)} files into place")
            if placer.stale_sqlite:
                summary.steps.append("Removed the replaced databases' stale SQLite files: "
                                     + ", ".join(placer.stale_sqlite))
            if sel.kind == "config":
                links = placer.relink(meta["settingsfile"], meta["ccfile"])
                summary.steps += [f"Re-created {link} as a hard link" for link in links]
            summary.warnings += placer.finish_dirs(got.written) + owners.warnings
            summary.steps.append("Applied owner, group, mode and times (never via a symlink)")
            journal.end(state_dir)
        finally:
            placer.close()
            sync_filesystem(staging)


def write_log(home: Path, lines: list[str]) -> Path:
    """config/logs/backup-restore-YYYYMMDD-HHMMSS[-N].log, never overwriting, never via a link."""
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    chain = DirChain(home_fd, lambda fd, name, _p: os.mkdir(name, 0o775, dir_fd=fd))
    try:
        logs = chain.at(["config", "logs"])
        stem, n = f"backup-restore-{datetime.now():%Y%m%d-%H%M%S}", 0
        while True:
            name = stem + (f"-{n}" if n else "") + ".log"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             LOG_MODE, dir_fd=logs)
                break
            except FileExistsError:
                n += 1
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(fd, LOG_MODE)
            st = os.fstat(logs)
            if os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)  # readable by the WebUI like its own logs
            out.write("\n".join(lines) + "\n")
    finally:
        chain.close()
        os.close(home_fd)
    return home / "config" / "logs" / name


def summary_lines(s: RestoreSummary) -> list[str]:
    """The summary as text: the log's body and the CLI's report."""
    lines = [f"Timestamp: {datetime.now().astimezone().isoformat(timespec='seconds')}",
             f"Status: {'FAILED: ' + s.error if s.error else 'SUCCESS'}",
             f"Backup File: {s.archive}", f"Backup Type: {s.backup_type}",
             f"Restore Mode: {s.mode}", f"Backup Version (from): {s.version_from}",
             f"Allsky Version (restored to): {s.version_to}"]
    if s.backup_type == "config":
        lines += [f"Camera (from): {s.camera_from}", f"Camera (to): {s.camera_to}"]
    label = {"advanced": "Selected Files (Advanced)", "images": "Selected Image Folders"}.get(
        s.mode if s.mode == "advanced" else s.backup_type, "Selected Sections")
    lines += [f"{label}: {', '.join(s.chosen)}", f"Undo Backup: {s.undo or 'none'}",
              f"Files Restored: {len(s.files)}", f"Duration: {s.seconds:.1f} s", "Checks:"]
    lines += [f"  [{c.status}] {c.name}: {c.reason}" for c in s.checks]
    lines += ["Steps:"] + [f"  {step}" for step in s.steps]
    lines += ["Warnings:"] + [f"  {w}" for w in s.warnings] if s.warnings else []
    return lines + ["Files:"] + [f"  {f}" for f in s.files]


def execute(prep: Prepared) -> RestoreSummary:
    """Undo point, service stop, staging, move into place, links, owners, restart, log."""
    if prep.blocked or prep.selection is None:
        raise RestoreBlocked(prep)
    started, config = time.monotonic(), prep.selection.kind == "config"
    summary = _summary(prep, steps=["Validated backup and restore options"])
    state_dir = prep.backup_dir / STATE_DIRNAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with destination_lock(prep.backup_dir):
            finished = journal.finish_pending(state_dir)  # an earlier restore killed half-way
            if finished:
                summary.warnings.append(finished)
            if config and prep.options.undo:
                undo, warnings = undo_backup(prep, state_dir)
                summary.undo = str(undo)
                summary.warnings += [f"undo backup: {w}" for w in warnings]
                summary.steps.append(f"Took undo backup {undo.name}")
            cfg = prep.options.service
            pause: ContextManager[PauseRecord | None] = nullcontext() \
                if not config or cfg is None else paused_service(
                    cfg, True, "a config restore replaces files the service reads", state_dir,
                    activity="restore")
            with pause as record:
                _stage_and_place(prep, summary)
            if record is not None:
                summary.service = record.to_dict()
                summary.warnings += record.warnings
                summary.steps.append("Stopped the service and started it again" if
                                     record.stopped else "The service was not running: left so")
    except BaseException as e:
        summary.error = f"{type(e).__name__}: {getattr(e, 'message', None) or e}"
        _log(prep, summary, started)
        note = f"restore log: {summary.log}" + (f"; undo backup: {summary.undo}"
                                                 if summary.undo else "")
        if isinstance(e, OSError):
            raise RestoreError(f"restore of {prep.archive} failed: {e}", hint=note) from e
        if isinstance(e, AllskyTasksError):  # the CLI prints message and hint
            e.hint = f"{e.hint}; {note}" if e.hint else note
        else:
            e.add_note(note)
        raise
    summary.steps.append("Finalised restore")
    summary.version_to, summary.camera_to = install.read_version(prep.home), _camera(prep.home)
    _log(prep, summary, started)
    return summary


def _log(prep: Prepared, summary: RestoreSummary, started: float) -> None:
    """Write the restore log; a failure to write it is a warning, not a second error."""
    summary.seconds = round(time.monotonic() - started, 3)
    try:
        summary.log = str(write_log(prep.home, summary_lines(summary)))
    except OSError as e:
        summary.warnings.append(f"restore log not written: {e.strerror or e}")


def dry_run(prep: Prepared) -> RestoreSummary:
    """The checks and the listing of what would change; nothing is written."""
    if prep.blocked or prep.selection is None:
        raise RestoreBlocked(prep)
    return _summary(prep, dry_run=True, plan=plan(prep.selection.members, _roots(prep)))


def restore(archive: Path, home: Path, options: RestoreOptions | None = None) -> RestoreSummary:
    """Check, then restore (or with dry_run only list); RestoreBlocked if a check fails."""
    options = options or RestoreOptions()
    prep = prepare(archive, home, options)
    return dry_run(prep) if options.dry_run else execute(prep)
