"""Everything a restore decides before it changes anything: the options, the checks, the choice."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.safety import Limits, SafetyReport
from ..environment import default_backup_dir
from ..errors import RestoreError
from ..service.config import ServiceConfig
from .checks import (
    Check,
    check_archive,
    check_camera,
    check_complete,
    check_metadata,
    check_modules,
    check_selection,
    check_space,
    check_target,
    check_version,
    incomplete_members,
)
from .selection import Selection, select

__all__ = ["Prepared", "RestoreBlocked", "RestoreOptions", "fresh_install", "prepare"]


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
    accept_incomplete: bool = False  # restore members that changed while being packed


@dataclass
class Prepared:
    """The checks and the selection: everything decided before anything changes."""

    archive: Path
    home: Path
    options: RestoreOptions
    checks: list[Check]
    report: SafetyReport | None = None
    selection: Selection | None = None
    incomplete: list[str] = field(default_factory=list)  # selected known-bad members
    fresh: str | None = None  # why the home counts as a fresh or empty install (the disaster case)

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


class RestoreBlocked(RestoreError):
    """A blocking pre-restore check failed: nothing was changed."""

    def __init__(self, prepared: Prepared) -> None:
        self.checks = prepared.checks
        super().__init__(f"restore of {prepared.archive} blocked: " + "; ".join(
            f"{c.name}: {c.reason}" for c in prepared.blocked),
            hint="nothing was changed; fix the cause or choose other sections/files")


def fresh_install(home: Path) -> str | None:
    """Why `home` is a fresh or empty Allsky install (no configuration to check or undo), or None.

    Allsky's installer writes config/settings.json; without it there is no camera to compare and
    nothing an undo backup could bring back: the new-card disaster case.
    """
    config = home / "config"
    if not os.path.lexists(config):
        return f"{home} has no config folder"
    if not os.path.lexists(config / "settings.json"):
        return f"{config} holds no settings.json"
    return None


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
        prep.fresh = fresh_install(home)
        prep.checks.append(check_camera(meta, home, sel, options.force_camera, prep.fresh))
        prep.checks.append(check_modules(archive, report, sel, home, options.legacy_modules,
                                         options.limits))
    if sel.kind == "images":
        prep.checks.append(check_target(home, prep.images))
    prep.checks.append(check_space(sel, prep.images if sel.kind == "images" else home))
    prep.checks.append(check_version(meta, home))
    prep.incomplete = incomplete_members(meta, sel)
    prep.checks.append(check_complete(prep.incomplete, options.accept_incomplete))
    return prep
