"""Helpers for bench.py: realistic test trees, measured child processes, machine facts."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

PYTHON = sys.executable
PROJECT_DIR = Path(__file__).resolve().parent.parent
# Measured on this generator: ~0.70 bytes per pixel for a frame, ~1.2 KB per 100 px thumbnail,
# ~0.9 MB per night for keogram, startrails, their thumbnails and the mp4 stand-in.
BYTES_PER_PIXEL, THUMB_BYTES, NIGHT_EXTRAS = 0.70, 1_200, 900_000
MARKER = "bench-tree.json"


# --------------------------------------------------------------------------- trees


@dataclass
class TreeInfo:
    """A generated Allsky home and what is in its images folder."""

    home: str
    key: str
    nights: int
    frames_per_night: int
    frame_size: tuple[int, int]
    files: int
    dirs: int
    bytes: int
    image_files: int
    image_bytes: int
    generate_seconds: float | None = None
    reused: bool = False


def frames_for(gb: float, nights: int, size: tuple[int, int]) -> int:
    """Frames per night so the whole tree lands near `gb` GB."""
    per_frame = BYTES_PER_PIXEL * size[0] * size[1] + THUMB_BYTES
    return max(1, round((gb * 1e9 / nights - NIGHT_EXTRAS) / per_frame))


def count_tree(root: Path) -> tuple[int, int, int]:
    """(files, dirs, bytes) below root, following a symlinked root only."""
    files = dirs = size = 0
    for dirpath, dirnames, filenames in os.walk(root.resolve()):
        dirs += len(dirnames)
        for name in filenames:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, dirs, size


def _make_part(home: str, nights: int, frames: int, size: tuple[int, int], last: str) -> str:
    """Worker: one demo tree holding a block of nights (runs in a child process)."""
    from allsky_tasks.demo import make_demo_tree

    make_demo_tree(Path(home), nights=nights, frames_per_night=frames, frame_size=size,
                   last_night=date.fromisoformat(last))
    return home


def _finish_images(images: Path) -> None:
    """Give the merged images folder the mtime of its newest entry, as the generator does."""
    newest = max(os.lstat(images / n).st_mtime for n in os.listdir(images))
    os.utime(images, (newest, newest))


def _describe(home: Path, key: str, nights: int, frames: int, size: tuple[int, int],
              seconds: float | None) -> TreeInfo:
    """Count a finished tree."""
    files, dirs, total = count_tree(home)
    ifiles, _idirs, ibytes = count_tree(home / "images")
    return TreeInfo(str(home), key, nights, frames, size, files, dirs, total, ifiles, ibytes,
                    seconds)


def _reuse(root: Path) -> TreeInfo | None:
    """The tree described by root's marker, if a previous run finished it."""
    try:
        data = json.loads((root / MARKER).read_text())
        info = TreeInfo(**{**data, "frame_size": tuple(data["frame_size"])})
    except (OSError, ValueError, TypeError):
        return None
    info.reused = True
    return info


def _reuse_or_reset(root: Path) -> TreeInfo | None:
    """A finished tree to reuse, or None after emptying root for a fresh build."""
    if (info := _reuse(root)) is not None:
        return info
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return None


def _save(root: Path, info: TreeInfo) -> TreeInfo:
    """Write the marker that lets later runs reuse the tree."""
    (root / MARKER).write_text(json.dumps(asdict(info), indent=1))
    return info


def ensure_tree(workdir: Path, gb: float, nights: int, size: tuple[int, int],
                workers: int) -> TreeInfo:
    """The main tree (nights of real JPEG frames + config + SQLite), built in parallel once."""
    frames = frames_for(gb, nights, size)
    key = f"tree-n{nights}-f{frames}-{size[0]}x{size[1]}"
    root = workdir / key
    if (info := _reuse_or_reset(root)) is not None:
        return info
    started = time.perf_counter()
    per = -(-nights // max(1, min(workers, nights)))
    blocks = [list(range(i, min(i + per, nights))) for i in range(0, nights, per)]
    newest = date.today() - timedelta(days=1)
    jobs = []
    for k, block in enumerate(blocks):  # block 0 holds the newest nights, next to the live DB
        last = newest - timedelta(days=block[0])
        jobs.append((str(root / f"part{k}" / "allsky"), len(block), frames, size, last.isoformat()))
    with ProcessPoolExecutor(max_workers=len(jobs)) as pool:
        list(pool.map(_make_part, *zip(*jobs, strict=True)))
    home = root / "allsky"
    os.rename(root / "part0" / "allsky", home)
    for k in range(1, len(jobs)):
        part_images = root / f"part{k}" / "allsky" / "images"
        for night in os.listdir(part_images):
            if night[:1] == "2":  # night folders only; test_stretches comes from part 0
                os.rename(part_images / night, home / "images" / night)
        shutil.rmtree(root / f"part{k}")
    shutil.rmtree(root / "part0", ignore_errors=True)
    _finish_images(home / "images")
    info = _describe(home, key, nights, frames, size, round(time.perf_counter() - started, 1))
    return _save(root, info)


def ensure_flat_tree(workdir: Path, main: TreeInfo, factor: int = 10) -> TreeInfo:
    """A tree with `factor` x the main tree's image files, each thumbnail-sized (a few KB)."""
    from allsky_tasks.demo import make_demo_tree

    nights, per_night = main.nights, -(-main.image_files * factor // main.nights)
    key = f"flat-n{nights}-f{per_night}"
    root = workdir / key
    if (info := _reuse_or_reset(root)) is not None:
        return info
    started = time.perf_counter()
    first = date.today() - timedelta(days=nights + 1)
    tree = make_demo_tree(root / "allsky", nights=1, frames_per_night=1, frame_size=(160, 120),
                          last_night=first)
    # Real thumbnail JPEGs from the main tree, cycled: ~1.2 KB each, incompressible like real ones.
    thumbs = sorted(Path(main.home, "images").glob("2*/thumbnails/*.jpg"))[:5000]
    blobs = [p.read_bytes() for p in thumbs]
    n = 0
    for night in range(nights):
        day = first + timedelta(days=night + 1)
        folder = tree.images / f"{day:%Y%m%d}"
        folder.mkdir()
        start = datetime(day.year, day.month, day.day, 20).timestamp()
        for i in range(per_night):
            stamp = start + 3 * i
            path = folder / f"image-{datetime.fromtimestamp(stamp):%Y%m%d%H%M%S}-{i % 3}.jpg"
            path.write_bytes(blobs[n % len(blobs)])
            os.utime(path, (stamp, stamp))
            n += 1
        os.utime(folder, (stamp, stamp))
    _finish_images(tree.images)
    info = _describe(tree.home, key, nights + 1, per_night, (100, 75),
                     round(time.perf_counter() - started, 1))
    return _save(root, info)


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One measured child process: wall seconds, peak RSS of its process tree, output."""

    seconds: float
    peak_rss_mb: float
    returncode: int
    cpu_seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""


@dataclass
class Series:
    """Repeated runs of one measurement."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # figures and lists of them, by key

    def add(self, run: Run) -> Run:
        """Record one run."""
        self.seconds.append(round(run.seconds, 4))
        self.peak_rss_mb.append(round(run.peak_rss_mb, 1))
        self.cpu_seconds.append(round(run.cpu_seconds, 3))
        return run

    @property
    def median(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.seconds)

    @property
    def peak(self) -> float:
        """Largest peak RSS over the runs (MB)."""
        return max(self.peak_rss_mb) if self.peak_rss_mb else 0.0

    @property
    def cpu(self) -> float | None:
        """Median CPU seconds (user + system, whole process tree), if measured."""
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {"seconds": self.seconds, "median_s": round(self.median, 4),
                "cpu_seconds": self.cpu_seconds,
                "peak_rss_mb": self.peak_rss_mb, "max_peak_rss_mb": self.peak, **self.extra}


def measure(cmd: Sequence[str] | str, env: dict[str, str] | None = None,
            cwd: Path | str | None = None, check: bool = True) -> Run:
    """Run one command in a fresh child; wall time and ru_maxrss of that child's tree (wait4).

    wait4 returns the rusage of exactly this child plus the descendants it reaped, so each
    measurement starts from zero (unlike RUSAGE_CHILDREN, a max over every child so far).
    For a shell pipeline this is the largest single process (tar or zstd), not their sum.
    """
    # Untimed: no command may pay for the write-back of what the one before it left dirty
    # (tar | zstd leaves its whole archive to the kernel; our pack writes and fsyncs its own).
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), stdout=out, stderr=err,
                                env=env, cwd=cwd, executable="/bin/bash" if isinstance(cmd, str)
                                else None)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = Run(seconds, usage.ru_maxrss / 1024, proc.returncode,
                  usage.ru_utime + usage.ru_stime,
                  out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if check and run.returncode != 0:
        shown = cmd if isinstance(cmd, str) else " ".join(cmd)
        raise RuntimeError(f"{shown} exited {run.returncode}:\n{run.stdout[-3000:]}\n"
                           f"{run.stderr[-3000:]}")
    return run


# --------------------------------------------------------------------------- machine


def _first_line(cmd: list[str]) -> str:
    """First output line of a version command, or why there is none."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0].strip("* ")
    except (OSError, IndexError, subprocess.SubprocessError) as e:
        return f"unavailable ({e})"


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    """Total RAM in GB from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _filesystem(path: Path) -> str:
    """Filesystem type of the work dir (from /proc/mounts, longest matching mount point)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if str(path.resolve()).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} on {parts[1]} ({parts[0]})"
    except OSError:
        pass
    return kind


def machine_info(workdir: Path) -> dict[str, object]:
    """What the figures were measured on."""
    import doit
    import zstandard

    return {"nproc": os.cpu_count(), "ram_gb": _ram_gb(), "cpu": _cpu_model(),
            "machine": platform.machine(), "kernel": platform.release(),
            "python": platform.python_version(), "zstd": _first_line(["zstd", "--version"]),
            "tar": _first_line(["tar", "--version"]), "gzip": _first_line(["gzip", "--version"]),
            "python_zstandard": f"{zstandard.__version__} ({zstandard.backend})",
            "doit": ".".join(map(str, doit.__version__)) if isinstance(doit.__version__, tuple)
            else str(doit.__version__),
            "workdir_fs": _filesystem(workdir)}
