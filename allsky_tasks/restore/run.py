"""Restore: checks, dry run, undo point, then stop, stage, move into place, relink, start, log."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from .. import install
from ..environment import STATE_DIRNAME
from ..errors import AllskyTasksError, RestoreError, os_message
from ..service.control import PauseRecord, check_service, paused_service
from ..service.lock import destination_lock
from . import journal
from .ownership import Ownership
from .place_plan import plan
from .prepare import Prepared, RestoreBlocked, RestoreOptions, prepare
from .staging import member_roots, stage_and_place
from .summary import RestoreSummary, summary_lines, write_log
from .undo import undo_backup

__all__ = ["dry_run", "execute", "restore"]


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


def execute(prep: Prepared) -> RestoreSummary:
    """Undo point, service stop, staging, move into place, links, owners, restart, log."""
    if prep.blocked or prep.selection is None:
        raise RestoreBlocked(prep)
    if prep.incomplete and not prep.options.accept_incomplete:
        raise RestoreError(f"{len(prep.incomplete)} file(s) of {prep.archive.name} changed while "
                           f"being packed and are incomplete copies ({prep.incomplete[0]}"
                           + (", ..." if prep.incomplete[1:] else "") + "): not restored",
                           hint="nothing was changed; confirm on a terminal or pass "
                                "--accept-incomplete to restore them anyway, or leave them out "
                                "with --files / --sections")
    started, config = time.monotonic(), prep.selection.kind == "config"
    summary = _summary(prep, steps=["Validated backup and restore options"])
    state_dir = prep.backup_dir / STATE_DIRNAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with destination_lock(prep.backup_dir):
            finished = journal.finish_pending(state_dir)  # an earlier restore killed half-way
            if finished:
                summary.warnings.append(finished)
            if config and prep.options.service is not None:
                check_service(prep.options.service)  # a unit that cannot be paused: before the undo backup
            if config and prep.options.undo and prep.fresh:
                summary.steps.append(f"No undo backup: nothing to undo ({prep.fresh})")
            elif config and prep.options.undo:
                undo, warnings = undo_backup(prep, state_dir)
                summary.undo = str(undo)
                summary.warnings += [f"undo backup: {w}" for w in warnings]
                summary.steps.append(f"Took undo backup {undo.name}")
            cfg = prep.options.service
            pause: AbstractContextManager[PauseRecord | None] = nullcontext() \
                if not config or cfg is None else paused_service(
                    cfg, True, "a config restore replaces files the service reads", state_dir,
                    activity="restore")
            with pause as record:
                stage_and_place(prep, summary)
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
            raise RestoreError(f"restore of {prep.archive} failed: {os_message(e)}", hint=note) from e
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
        summary.warnings.append(f"restore log not written: {os_message(e)}")


def dry_run(prep: Prepared) -> RestoreSummary:
    """The checks and the listing of what would change; nothing is written."""
    if prep.blocked or prep.selection is None:
        raise RestoreBlocked(prep)
    entries = {m.path: m for m in prep.report.entries} if prep.report is not None else {}
    return _summary(prep, dry_run=True, plan=plan(prep.selection.members, member_roots(prep),
                                                  Ownership(prep.metadata, prep.home), entries))


def restore(archive: Path, home: Path, options: RestoreOptions | None = None) -> RestoreSummary:
    """Check, then restore (or with dry_run only list); RestoreBlocked if a check fails."""
    options = options or RestoreOptions()
    prep = prepare(archive, home, options)
    return dry_run(prep) if options.dry_run else execute(prep)
