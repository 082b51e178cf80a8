"""Per-night home for bench.py: four nights packed once, then a fifth night moved in and timed."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_lib import (
    BYTES_PER_PIXEL,
    NIGHT_EXTRAS,
    THUMB_BYTES,
    TreeInfo,
    _describe,
    _finish_images,
    _reuse_or_reset,
    _save,
    count_tree,
    ensure_tree,
)

NIGHTLY_SPEC, ONE_NIGHT_SPEC = "bench-nightly", "bench-one-night"
INCREMENT = "per-night: ours add 5th night (incremental)"
ALONE = "per-night: ours 5th night alone (fresh)"
BORG = "per-night: borg create adds 5th night (reference)"
BASE_NIGHTS = 4
ARCHIVES = "allsky-*-backup-*.tar.*"  # as bench.archives: sidecars end in .json, not .tar.*
SPEC_TAIL = "format: zstd\nlevel: 3\nservice: {pause: never}\n"
NIGHTLY_TEXT = ("description: bench - one archive per night folder\ntype: images\nfolders: all\n"
                "per_night: true\n" + SPEC_TAIL)


def one_night_text(night: str) -> str:
    """The reference spec: only the new night, one archive, no per_night."""
    return (f"description: bench - night {night} alone\ntype: images\nfolders: [\"{night}\"]\n"
            + SPEC_TAIL)  # quoted: an unquoted 20261125 is a YAML integer


@dataclass
class NightlyHome:
    """A home with four nights in images/ and a fifth, same-sized night waiting in spare/."""

    tree: TreeInfo
    spare: Path
    new_night: str
    night_bytes: int
    backups: Path = Path()  # the per-night set's backup folder: the same path for every run
    base: set[str] = field(default_factory=set)  # archive names of the four-night state

    @property
    def images(self) -> Path:
        """The home's images folder."""
        return Path(self.tree.home, "images")

    def add_night(self) -> None:
        """Move the new night into images/ (a rename: what a finished night looks like)."""
        os.rename(self.spare / self.new_night, self.images / self.new_night)

    def remove_night(self) -> None:
        """Move the new night back out, if it is in (also after an interrupted run)."""
        if (self.images / self.new_night).exists():
            os.rename(self.images / self.new_night, self.spare / self.new_night)

    @property
    def saved(self) -> Path:
        """A copy of the backup folder in its four-night state."""
        return self.backups.with_name(self.backups.name + "-saved")

    def pack_base(self, backups: Path, backup: Callable[[Path], object]) -> None:
        """Run `backup` once on the four nights into `backups`, then save that folder's state.

        The timed runs must use this very folder: doit's database and nights.json hold its
        absolute path, so a copy elsewhere would not be up to date and would pack everything.
        """
        self.remove_night()
        self.backups = backups
        shutil.rmtree(backups, ignore_errors=True)
        shutil.rmtree(self.saved, ignore_errors=True)
        backup(backups)
        os.rename(backups, self.saved)
        self.base = {p.name for p in self.saved.glob(ARCHIVES)}

    def start(self) -> None:
        """Back to the four-night backup state, then move the new night in."""
        shutil.rmtree(self.backups, ignore_errors=True)
        # Archives are hard-linked (never written again); doit's database and JSON are copied.
        shutil.copytree(self.saved, self.backups, symlinks=True, copy_function=lambda a, b: (
            os.link(a, b) if ".tar." in os.path.basename(a) else shutil.copy2(a, b)))
        self.add_night()

    def new_archives(self) -> tuple[list[Path], int]:
        """(archives the run added, archives in the folder now)."""
        now = sorted(self.backups.glob(ARCHIVES))
        return [p for p in now if p.name not in self.base], len(now)

    def finish(self) -> None:
        """Remove the backup folders."""
        shutil.rmtree(self.backups, ignore_errors=True)
        shutil.rmtree(self.saved, ignore_errors=True)


class BorgRepo:
    """A borg repository holding the four nights, to time `borg create` adding the fifth.

    Unencrypted, zstd level 3 (as our archives), its cache inside the bench folder. Each timed
    create is deleted and compacted afterwards (untimed), so every run adds the night anew.
    """

    def __init__(self, root: Path, images: Path) -> None:
        self.repo, self.images, self.count = root / "borg-repo", images, 0
        self.env = {**os.environ, "BORG_BASE_DIR": str(root / "borg-base"),
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_PASSPHRASE": ""}

    def command(self, *args: str) -> list[str]:
        """A borg command line."""
        return [shutil.which("borg") or "borg", *args]

    def create_args(self, name: str) -> list[str]:
        """`borg create` of the whole images folder, as a nightly borg job would run it."""
        return self.command("create", "--compression", "zstd,3", f"{self.repo}::{name}",
                            ".")

    def start(self, run: Callable[[list[str]], object]) -> None:
        """A fresh repository with the four nights in it (untimed)."""
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.rmtree(self.env["BORG_BASE_DIR"], ignore_errors=True)
        run(self.command("init", "--encryption", "none", str(self.repo)))
        run(self.create_args("base"))

    def next_name(self) -> str:
        """A new archive name for the timed create."""
        self.count += 1
        return f"night-{self.count}"

    def drop(self, name: str, run: Callable[[list[str]], object]) -> None:
        """Delete the timed archive and free its chunks (untimed)."""
        run(self.command("delete", f"{self.repo}::{name}"))
        run(self.command("compact", str(self.repo)))

    def finish(self) -> None:
        """Remove the repository and borg's cache."""
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.rmtree(self.env["BORG_BASE_DIR"], ignore_errors=True)


def _nights(images: Path) -> list[str]:
    """Night folder names (YYYYMMDD), oldest first."""
    return sorted(n for n in os.listdir(images) if n[:1] == "2" and len(n) == 8)


def _source(workdir: Path, main: TreeInfo, workers: int) -> TreeInfo:
    """The main tree if it has five nights, else a five-night tree with the same frames per night."""
    if main.nights > BASE_NIGHTS:
        return main
    w, h = main.frame_size
    night = main.frames_per_night * (BYTES_PER_PIXEL * w * h + THUMB_BYTES) + NIGHT_EXTRAS
    return ensure_tree(workdir, (BASE_NIGHTS + 1) * night / 1e9, BASE_NIGHTS + 1, (w, h), workers)


def ensure_nightly_home(workdir: Path, main: TreeInfo, workers: int) -> NightlyHome:
    """Build (or reuse) the per-night home from the newest five nights of a tree, hard-linked."""
    source = _source(workdir, main, workers)
    root = workdir / f"nightly-{source.key}"
    spare = root / "spare"
    info = _reuse_or_reset(root)
    if info is None:
        started = time.perf_counter()
        src_home, src_images = Path(source.home), Path(source.home, "images")
        home, images = root / "allsky", root / "allsky" / "images"
        # Config and database are copied, not linked: a run must never write into the main tree.
        shutil.copytree(src_home, home, symlinks=True,
                        ignore=lambda d, names: ["images"] if Path(d) == src_home else [])
        images.mkdir()
        nights = _nights(src_images)[-(BASE_NIGHTS + 1):]
        keep = nights[:-1] + [n for n in os.listdir(src_images) if n not in _nights(src_images)]
        # Hard links: the JPEGs are only read, and linking ~1 GB costs a second, not a copy.
        for name in keep:
            if (src_images / name).is_dir():
                shutil.copytree(src_images / name, images / name, symlinks=True,
                                copy_function=os.link)
            else:
                os.link(src_images / name, images / name)
        shutil.copytree(src_images / nights[-1], spare / nights[-1], symlinks=True,
                        copy_function=os.link)
        _finish_images(images)
        info = _save(root, _describe(home, f"nightly-{source.key}", BASE_NIGHTS,
                                     source.frames_per_night, source.frame_size,
                                     round(time.perf_counter() - started, 1)))
    new = os.listdir(spare)
    if not new:  # an interrupted run left the new night in images/: it is the newest one
        new = _nights(Path(info.home, "images"))[-1:]
    night = NightlyHome(info, spare, new[0], 0)
    night.remove_night()
    night.night_bytes = count_tree(spare / night.new_night)[2]
    return night
