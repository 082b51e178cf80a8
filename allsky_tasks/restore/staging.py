"""Extract the chosen members into staging on the targets' filesystem, then move them into place."""

from __future__ import annotations

import os
from pathlib import Path

from ..archive.members import Member, manifest_of
from ..archive.safety import SafetyReport
from ..environment import STATE_DIRNAME
from . import journal
from .dirs import staging_area, sync_filesystem
from .extract import extract
from .ownership import Ownership
from .place import Placer
from .prepare import Prepared
from .selection import claimed_areas
from .summary import RestoreSummary

__all__ = ["member_roots", "stage_and_place"]


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


def member_roots(prep: Prepared) -> dict[str, Path]:
    """Where members go: config below the home, images below the images root."""
    assert prep.selection is not None
    return {"images": prep.images} if prep.selection.kind == "images" else {"home": prep.home}


def stage_and_place(prep: Prepared, summary: RestoreSummary) -> None:
    """Extract into staging on the targets' filesystem, then move everything into place."""
    assert prep.report is not None and prep.selection is not None
    sel, meta = prep.selection, prep.metadata
    roots = member_roots(prep)
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
