"""Scan: one stat-only walk of the selection, streamed to a JSON-lines file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterator

from .. import install
from ..errors import ScanError
from ..safefs import open_file
from ..spec.sections import SECTIONS, Section
from ..spec.load import CONFIG_AREAS, NIGHT_RE, Spec
from .walk import ALWAYS_EXCLUDED, DB_SUFFIXES, Entry, Stats, Walker, exclusion

__all__ = ["ALWAYS_EXCLUDED", "DB_SUFFIXES", "Entry", "ScanSummary", "Stats", "exclusion",
           "read_rows", "scan", "select_folders"]

FORMAT_VERSION = 1


@dataclass
class ScanSummary:
    """What a scan found, without the per-file rows."""

    spec: str
    type: str
    fingerprint: str
    entries: int
    raw_bytes: int
    stats: dict[str, Stats]
    camera: dict[str, str] | None
    image_all: bool
    image_folders: list[str]
    targets: list[str]
    warnings: list[str] = field(default_factory=list)
    database_files: list[str] = field(default_factory=list)
    section_fingerprints: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        data = asdict(self)
        data["stats"] = {k: asdict(v) for k, v in self.stats.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ScanSummary":
        """Inverse of to_dict."""
        data = dict(data)
        data["stats"] = {k: Stats(**v) for k, v in data["stats"].items()}
        return cls(**data)


def _config_roots(spec: Spec, camera: install.Camera) -> Iterator[tuple[str, str, Section]]:
    """(arcname, source, section) for every selected config root, in table order."""
    home = spec.home
    for section in SECTIONS:
        if section.key not in spec.sections:
            continue
        for rel in section.paths:
            if rel == "{settingsfile}":
                # The live settings.json is the truth; it is stored under its camera name.
                yield camera.settingsfile, str(home / "config" / "settings.json"), section
            elif rel == "{ccfile}":
                yield camera.ccfile, str(home / "config" / "cc.json"), section
            else:
                yield rel, str(home / rel), section
        for pattern in section.globs:
            for match in sorted(home.glob(pattern)):
                yield match.relative_to(home).as_posix(), str(match), section


def select_folders(spec: Spec) -> tuple[bool, list[str]]:
    """(all?, folder names) for an images spec, checked against the images folder."""
    try:
        names = sorted(d.name for d in os.scandir(spec.images) if d.is_dir())
    except OSError as e:
        raise ScanError(f"{spec.path}: cannot list images folder {spec.images}: {e.strerror}") from e
    folders = spec.folders
    if folders == "all":
        return True, names
    nights = [n for n in names if NIGHT_RE.match(n)]
    if isinstance(folders, list):
        missing = [n for n in folders if n not in names]
        if missing:
            raise ScanError(f"{spec.path}: night folder(s) not found in {spec.images}: "
                            f"{', '.join(missing)}")
        chosen = sorted(folders)
    elif "last" in folders:
        chosen = nights[-folders["last"]:]
    else:
        chosen = [n for n in nights if folders["from"] <= n <= folders["to"]]
    if not chosen:
        raise ScanError(f"{spec.path}: no night folders in {spec.images} match {folders}",
                        hint="check the folders of the spec against the images folder")
    return False, chosen


def scan(spec: Spec, rows_out: IO[str]) -> ScanSummary:
    """Walk the spec's selection (stat only), writing one JSON row per member."""
    excludes = spec.exclude
    walker = Walker(rows_out, excludes, spec.on_file_error)
    walker.areas = CONFIG_AREAS if spec.type == "config" else ("images",)
    walker.dedupe = spec.type == "config" or bool(spec.include)
    camera_info = None
    image_all, folders, targets = False, [], []
    if spec.type == "config":
        try:
            camera = install.read_camera(spec.home)
        except ValueError as e:
            raise ScanError(f"{spec.path}: cannot read the current camera: {e}") from e
        for live, name in (("settings.json", camera.settingsfile), ("cc.json", camera.ccfile)):
            if not (spec.home / "config" / live).is_file():
                raise ScanError(f"required file {spec.home / 'config' / live} ({name}) "
                                "does not exist; backup aborted")
        camera_info = {"cameratype": camera.cameratype, "cameramodel": camera.cameramodel,
                       "settingsfile": camera.settingsfile, "ccfile": camera.ccfile}
        for arcname, source, section in _config_roots(spec, camera):
            walker.set_excludes(excludes + section.exclude)
            walker.walk(arcname, source, section.key)
            targets.append(arcname)
        walker.set_excludes(excludes)
    else:
        image_all, folders = select_folders(spec)
        walker.areas = ("images",) if image_all else tuple(f"images/{n}" for n in folders)
        if image_all:
            targets = ["images"]
            walker.walk_all_images(spec.images)
        else:
            targets = [f"images/{name}" for name in folders]
            for name in folders:
                walker.walk(f"images/{name}", str(spec.images / name), name, follow_root=True)
    for pattern in spec.include:
        for match in sorted(spec.home.glob(pattern)):
            walker.walk(match.relative_to(spec.home).as_posix(), str(match), "include")
    if walker.problems and spec.on_file_error == "fail":
        raise ScanError(f"{spec.path}: {len(walker.problems)} problem(s) while scanning:\n  "
                        + "\n  ".join(walker.problems),
                        hint="fix the files, or set on_file_error: warn to skip them")
    walker.flush()
    walker.hash.update(json.dumps([FORMAT_VERSION, spec.digest, camera_info]).encode())
    return ScanSummary(
        spec=spec.name, type=spec.type, fingerprint=walker.hash.hexdigest(),
        entries=walker.count, raw_bytes=sum(s.raw_bytes for s in walker.stats.values()),
        stats=walker.stats, camera=camera_info, image_all=image_all, image_folders=folders,
        targets=sorted(set(targets)), warnings=walker.notes + walker.problems,
        database_files=walker.database_files,
        section_fingerprints={k: h.hexdigest() for k, h in walker.section_hashes.items()},
    )


def read_rows(path: Path) -> Iterator[Entry]:
    """Stream the entries of a scan file."""
    with open_file(path, "r") as fh:  # state folder: never through a link
        for line in fh:
            yield Entry.from_row(json.loads(line))
