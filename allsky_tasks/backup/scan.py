"""Scan: one stat-only walk of the selection, streamed to a JSON-lines file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import install
from ..errors import ScanError, os_message
from ..safefs import open_file
from ..spec.model import CONFIG_AREAS, NIGHT_RE, Spec
from ..spec.sections import SECTIONS, Section
from .entry import Entry, Stats
from .walk import Walker
from .walk_rules import ALWAYS_EXCLUDED, DB_SUFFIXES, exclusion, nofollow_glob, shown, through_link

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
    def from_dict(cls, data: dict[str, Any]) -> ScanSummary:
        """Inverse of to_dict."""
        data = dict(data)
        data["stats"] = {k: Stats(**v) for k, v in data["stats"].items()}
        return cls(**data)


def _config_roots(spec: Spec, camera: install.Camera,
                  notes: list[str]) -> Iterator[tuple[str, str, Section]]:
    """(arcname, source, section) for every selected config root, in table order.

    Never through a symlink: a root below a linked folder is left out with a note.
    """
    home = str(spec.home)
    for section in SECTIONS:
        if section.key not in spec.sections:
            continue
        for rel in section.paths:
            if rel == "{settingsfile}":
                # The live settings.json is the truth; it is stored under its camera name.
                yield camera.settingsfile, os.path.join(home, "config", "settings.json"), section
            elif rel == "{ccfile}":
                yield camera.ccfile, os.path.join(home, "config", "cc.json"), section
            elif (link := through_link(home, rel)) is not None:
                if os.path.lexists(os.path.join(home, rel)):
                    notes.append(f"{shown(link)}: a symlink; {rel} below it is not archived (links "
                                 "are stored as links, never walked)")
            else:
                yield rel, os.path.join(home, rel), section
        for pattern in section.globs:
            for arc, source in sorted(nofollow_glob(home, "", pattern, notes)):
                yield arc, source, section


def glob_selection(spec: Spec, pattern: str, notes: list[str]) -> list[tuple[str, str]]:
    """(arcname, source) of what an `include:` pattern matches, never through a symlink.

    `images/...` starts at the images folder (which may itself be a link to a USB disk, as
    the images walk follows it); anything else at the Allsky home.
    """
    head, _, rest = pattern.partition("/")
    if spec.type == "images" and head == "images":
        return sorted(nofollow_glob(str(spec.images), "images", rest, notes))
    return sorted(nofollow_glob(str(spec.home), "", pattern, notes))


def classify_folders(images: Path) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(folders, left out: name -> why, loops: name -> why) in the images folder.

    One rule for every selection: a folder that is a symlink is kept only while it resolves
    inside the images tree; one leading outside is left out (with a warning), and a loop (or
    one that cannot be resolved) is an error only for a selection that includes it.
    """
    try:
        real_images = os.path.realpath(images)
        children = sorted(os.scandir(images), key=lambda d: d.name)
    except OSError as e:
        raise ScanError(f"cannot list the images folder: {os_message(e, images)}") from e
    names, outside, loops = [], {}, {}
    for child in children:
        try:
            if not child.is_symlink():
                if child.is_dir(follow_symlinks=False):
                    names.append(child.name)
                continue
            target = os.readlink(child.path)
            os.stat(child.path)  # ELOOP for a loop, ENOENT for a dangling link
        except OSError as e:
            if child.is_symlink():
                loops[child.name] = (f"{child.path}: night folder symlink to {target!r} cannot be "
                                     f"followed: {e.strerror}")
            continue
        resolved = os.path.realpath(child.path)
        if not os.path.isdir(resolved):
            continue
        if resolved != real_images and not resolved.startswith(real_images + os.sep):
            outside[child.name] = (f"{child.path}: night folder is a symlink to {resolved}, outside "
                                   f"the images folder; left out")
        else:
            names.append(child.name)
    return names, outside, loops


def select_folders(spec: Spec, notes: list[str] | None = None) -> tuple[bool, list[str]]:
    """(all?, folder names) for an images spec, checked against the images folder.

    Folders that are symlinks outside the images tree are left out with a note, whatever the
    selection; a looping one fails only a selection that includes it, naming it.
    """
    try:
        names, outside, loops = classify_folders(spec.images)
    except ScanError as e:
        raise ScanError(f"{spec.path}: {e.message}") from None
    pool = sorted(set(names) | set(outside) | set(loops))
    folders = spec.folders
    nights = [n for n in pool if NIGHT_RE.match(n)]
    if folders == "all":
        picked = pool
    elif isinstance(folders, list):
        missing = [n for n in folders if n not in pool]
        if missing:
            raise ScanError(f"{spec.path}: night folder(s) not found in {spec.images}: "
                            f"{', '.join(missing)}")
        picked = sorted(folders)
    elif "last" in folders:
        # The newest N nights that can be archived; newer links outside are noted as left out.
        kept = [n for n in nights if n not in outside]
        picked = kept[-folders["last"]:]
        picked += [n for n in nights if n in outside and picked and n > picked[0]]
    else:
        picked = [n for n in nights if folders["from"] <= n <= folders["to"]]
    looping = [loops[n] for n in picked if n in loops]
    if looping and spec.on_file_error == "warn" and notes is not None:
        notes.extend(f"{why}; left out" for why in looping)
        picked = [n for n in picked if n not in loops]
    elif looping:
        raise ScanError(f"{spec.path}: " + "; ".join(looping),
                        hint="remove or fix that link, or leave that folder out of the spec")
    for name in picked:
        if name in outside and notes is not None:
            notes.append(outside[name])
    chosen = [n for n in picked if n not in outside]
    if folders == "all":
        return True, chosen
    if not chosen:
        why = "".join(f"; {outside[n]}" for n in picked if n in outside)
        raise ScanError(f"{spec.path}: no night folders in {spec.images} match {folders}{why}",
                        hint="check the folders of the spec against the images folder")
    return False, sorted(chosen)


def scan(spec: Spec, rows_out: IO[str]) -> ScanSummary:
    """Walk the spec's selection (stat only), writing one JSON row per member."""
    excludes = spec.exclude
    walker = Walker(rows_out, excludes, spec.on_file_error)
    walker.areas = CONFIG_AREAS if spec.type == "config" else ("images",)
    walker.dedupe = spec.type == "config" or bool(spec.include)
    camera_info = None
    image_all = False
    folders: list[str] = []
    targets: list[str] = []
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
        for arcname, source, section in _config_roots(spec, camera, walker.notes):
            walker.set_excludes(excludes + section.exclude)
            walker.walk(arcname, source, section.key)
            targets.append(arcname)
        walker.set_excludes(excludes)
    else:
        image_all, folders = select_folders(spec, walker.notes)
        walker.areas = ("images",) if image_all else tuple(f"images/{n}" for n in folders)
        if image_all:
            targets = ["images"]
            walker.walk_all_images(spec.images, set(folders))
        else:
            targets = [f"images/{name}" for name in folders]
            for name in folders:
                walker.walk(f"images/{name}", str(spec.images / name), name, follow_root=True)
    for pattern in spec.include:
        for arcname, source in glob_selection(spec, pattern, walker.notes):
            walker.walk(arcname, source, "include")
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
