"""What a restore did: its summary, as text and as the log the Allsky WebUI shows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .checks import Check
from .dirs import DirChain

__all__ = ["LOG_MODE", "RestoreSummary", "summary_lines", "write_log"]

LOG_MODE = 0o664  # what Allsky gives its restore logs


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


def _allsky_dir(parent: int, name: str, _path: str) -> None:
    """A folder below config/ as Allsky's installer makes it: 775 whatever the umask."""
    os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    try:
        os.fchmod(fd, 0o775)
    finally:
        os.close(fd)


def write_log(home: Path, lines: list[str]) -> Path:
    """config/logs/backup-restore-YYYYMMDD-HHMMSS[-N].log, never overwriting, never via a link."""
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    chain = DirChain(home_fd, _allsky_dir)
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
