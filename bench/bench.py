"""Benchmark: our images/config backup, no-op re-run, scan and verify vs tar/zstd.

Generates (or reuses, keyed by its parameters) a realistic Allsky tree under --workdir, then
times every command in a fresh child process (wall seconds, peak RSS of the child's process
tree via wait4), medians over --runs, warm page cache throughout (dropping caches needs root).

    .venv/bin/python bench/bench.py                 # ~2 GB tree, 3 runs (a few minutes)
    .venv/bin/python bench/bench.py --gb 0.3 --runs 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_lib import PROJECT_DIR, PYTHON, Run, Series, TreeInfo, ensure_flat_tree, ensure_tree, machine_info, measure
from bench_nightly import (
    ALONE,
    BORG,
    INCREMENT,
    NIGHTLY_SPEC,
    NIGHTLY_TEXT,
    ONE_NIGHT_SPEC,
    BorgRepo,
    NightlyHome,
    ensure_nightly_home,
    one_night_text,
)
from bench_report import archive_sizes, print_report, targets

IMAGES_SPEC = "bench-images"
CONFIG_SPEC = "bench-config"
SPECS = {
    IMAGES_SPEC: "description: bench - every night folder, zstd -3\ntype: images\nfolders: all\n"
                 "format: zstd\nlevel: 3\nservice: {pause: never}\n",
    CONFIG_SPEC: "description: bench - config, every section\ntype: config\n"
                 "sections: {modules: true, databases: true, cameras: true, uservariables: true,"
                 " remote: true, ssl: true, myfiles: true, darks: true}\n"
                 "format: zstd\nlevel: 3\nservice: {pause: never}\n",
}
WALK = """import os, sys, time
def walk(path):
    n = b = 0
    with os.scandir(path) as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            n += 1
            if e.is_dir(follow_symlinks=False):
                m, c = walk(e.path); n += m; b += c
            else:
                b += st.st_size
    return n, b
print(*walk(os.path.realpath(sys.argv[1])))
"""


class Bench:
    """One benchmark session: where things live, and every series measured so far."""

    def __init__(self, workdir: Path, runs: int, src: Path | None) -> None:
        """Create the specs folders and an empty results table."""
        self.workdir, self.runs, self.src = workdir, runs, src
        self.series: dict[str, Series] = {}
        self.counter = 0
        for name, text in SPECS.items():
            self.write_spec(name, text)

    def write_spec(self, name: str, text: str) -> None:
        """One spec in its own specs folder (ALLSKY_SPECS_DIR points at one spec at a time)."""
        folder = self.workdir / f"specs-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.yaml").write_text(text)

    def get(self, name: str) -> Series:
        """The named series, created on first use."""
        return self.series.setdefault(name, Series(name))

    def fresh_dir(self, label: str) -> Path:
        """A new, empty backup folder (never inside the home)."""
        self.counter += 1
        path = self.workdir / "runs" / f"{label}-{self.counter}"
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, home: str, backups: Path, spec: str) -> dict[str, str]:
        """Process environment pointing the tool at one home, backup folder and spec."""
        env = dict(os.environ, ALLSKY_HOME=home, ALLSKY_BACKUP_DIR=str(backups),
                   ALLSKY_SPECS_DIR=str(self.workdir / f"specs-{spec}"))
        env.pop("ALLSKY_IMAGES", None)
        # An installed tool has its bytecode cached; recompiling every run is not what users see.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if self.src is not None:  # ahead of the editable install's finder
            env["PYTHONPATH"] = str(self.src)
        return env

    def ours(self, series: str | None, task: str, home: str, backups: Path, spec: str) -> Run:
        """`python -m allsky_tasks run <task>:<spec>`, measured (into `series` if named)."""
        run = measure([PYTHON, "-m", "allsky_tasks", "run", f"{task}:{spec}"],
                      self.env(home, backups, spec), cwd=self.workdir)
        return self.get(series).add(run) if series else run

    def ref(self, series: str, command: str) -> Run:
        """A reference shell command, measured."""
        return self.get(series).add(measure(command, cwd=self.workdir))


def state(backups: Path, spec: str, name: str) -> dict[str, Any]:
    """One of our JSON state files for a spec ({} if this version has no such file)."""
    try:
        data = json.loads((backups / ".allsky-tasks" / "specs" / spec / name).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def archives(backups: Path) -> list[Path]:
    """Finished archives in a backup folder."""
    return sorted(backups.glob("allsky-*-backup-*.tar.*"))


def stage_seconds(record: dict[str, Any]) -> float | None:
    """A stage's own seconds from pack.json/verify.json (one archive, or several in results)."""
    if "seconds" in record:
        return float(record["seconds"])
    found = [r["seconds"] for r in record.get("results", []) if isinstance(r, dict) and "seconds" in r]
    return round(sum(found), 3) if found else None


def note(series: Series, key: str, value: Any) -> None:
    """Append a per-run detail (e.g. a stage's own seconds) if this version reports it."""
    if value is not None:
        series.extra.setdefault(key, []).append(value)


def walk_in_process(root: str) -> tuple[int, int]:
    """The same scandir walk as WALK, run here (no interpreter start-up)."""
    scope: dict[str, Any] = {}
    exec(WALK.rsplit("print", 1)[0], scope)  # noqa: S102 - our own constant
    walk: Callable[[str], tuple[int, int]] = scope["walk"]
    return walk(os.path.realpath(root))


def warm_up(b: Bench, *trees: TreeInfo | None) -> None:
    """Read every tree once (page cache) and run the tool once (.pyc files, imports)."""
    for tree in trees:
        if tree is not None:
            measure(f"tar -cf - -C {tree.home} images | cat > /dev/null")
            b.ours(None, "scan", tree.home, b.fresh_dir("warmup"), IMAGES_SPEC)


def bench_images(b: Bench, tree: TreeInfo) -> Path:
    """Target 1: pack and full backup vs tar | zstd -3 -T0; returns a backup dir."""
    home, out = tree.home, b.workdir / "ref"
    out.mkdir(exist_ok=True)
    last: Path | None = None
    for _ in range(b.runs):  # interleaved, so drift hits every command alike
        pdir = b.fresh_dir("pack")
        b.ours("ours pack (validate+scan+pack)", "pack", home, pdir, IMAGES_SPEC)
        note(b.get("ours pack (validate+scan+pack)"), "pack_stage_s",
             stage_seconds(state(pdir, IMAGES_SPEC, "pack.json")))
        shutil.rmtree(pdir)
        bdir = b.fresh_dir("backup")
        b.ours("ours backup (full chain)", "backup", home, bdir, IMAGES_SPEC)
        full = b.get("ours backup (full chain)")
        note(full, "pack_stage_s", stage_seconds(state(bdir, IMAGES_SPEC, "pack.json")))
        note(full, "verify_stage_s", stage_seconds(state(bdir, IMAGES_SPEC, "verify.json")))
        full.extra["archive_bytes"] = archives(bdir)[-1].stat().st_size
        if last is not None:
            shutil.rmtree(last)
        last = bdir
        b.ref("tar | zstd -3 -T0", f"tar -cf - -C {home} images | zstd -q -3 -T0 > {out}/ref.tar.zst")
        b.get("tar | zstd -3 -T0").extra["archive_bytes"] = (out / "ref.tar.zst").stat().st_size
    shutil.rmtree(out)
    assert last is not None
    return last


def bench_gzip(b: Bench, tree: TreeInfo, runs: int) -> None:
    """Allsky's own way, for context (no target); last, so its minute of full load and the
    1.9 GB it leaves in the page cache sit between no two measurements that are compared."""
    out = b.workdir / "ref"
    out.mkdir(exist_ok=True)
    for _ in range(runs):
        b.ref("tar -czf (Allsky)", f"tar -czf {out}/ref.tar.gz -C {tree.home} images")
        b.get("tar -czf (Allsky)").extra["archive_bytes"] = (out / "ref.tar.gz").stat().st_size
    shutil.rmtree(out)


def bench_noop_scan(b: Bench, tree: TreeInfo, bdir: Path) -> None:
    """Target 2: no-op re-run vs a scandir walk (fresh process and in-process); scan alone."""
    for _ in range(b.runs):
        before = archives(bdir)
        run = b.ours("ours no-op re-run", "backup", tree.home, bdir, IMAGES_SPEC)
        if archives(bdir) != before:
            raise RuntimeError(f"the re-run packed again:\n{run.stdout}")
        b.ours("ours scan", "scan", tree.home, bdir, IMAGES_SPEC)
        b.get("python scandir walk (fresh process)").add(
            measure([PYTHON, "-c", WALK, tree.home + "/images"]))
        started = time.perf_counter()
        walk_in_process(tree.home + "/images")
        b.get("python scandir walk (in-process)").seconds.append(
            round(time.perf_counter() - started, 4))
    b.get("python startup (fresh process, -c pass)").add(measure([PYTHON, "-c", "pass"]))


def bench_verify(b: Bench, tree: TreeInfo, bdir: Path) -> None:
    """Target 3: run verify: (state file removed) and verify() directly vs zstd -dc | sha256sum."""
    archive = str(archives(bdir)[-1])
    direct = ("import sys; from pathlib import Path; from allsky_tasks.archive.verify import verify; "
              "from allsky_tasks.archive.manifest import read_sidecar; a = Path(sys.argv[1]); "
              "print(verify(a, read_sidecar(a))['members'])")
    for _ in range(b.runs):
        (bdir / ".allsky-tasks" / "specs" / IMAGES_SPEC / "verify.json").unlink()
        (bdir / ".allsky-tasks" / "verify.json").unlink(missing_ok=True)  # records: re-read
        b.ours("ours run verify:", "verify", tree.home, bdir, IMAGES_SPEC)
        run = b.get("ours verify() (fresh process)").add(
            measure([PYTHON, "-c", direct, archive], b.env(tree.home, bdir, IMAGES_SPEC),
                    cwd=b.workdir))  # not the checkout: `-c` puts the cwd first on sys.path
        note(b.get("ours verify() (fresh process)"), "members", int(run.stdout.split()[-1]))
        b.ref("zstd -dc | sha256sum", f"zstd -dc {archive} | sha256sum > /dev/null")


def bench_config(b: Bench, tree: TreeInfo) -> None:
    """Target 4: a config backup with every section (real SQLite database captured)."""
    for _ in range(b.runs):
        cdir = b.fresh_dir("config")
        b.ours("ours config backup (all sections)", "backup", tree.home, cdir, CONFIG_SPEC)
        shutil.rmtree(cdir)


def bench_nightly(b: Bench, night: NightlyHome) -> None:
    """Target 5: add a 5th night to a per-night set vs pack that night alone (full chains)."""
    home, name = night.tree.home, night.new_night
    b.write_spec(NIGHTLY_SPEC, NIGHTLY_TEXT)
    b.write_spec(ONE_NIGHT_SPEC, one_night_text(name))
    measure(f"tar -cf - -C {night.spare} {name} | cat > /dev/null")  # page cache, as warm_up
    night.pack_base(b.workdir / "runs" / "nightly",  # untimed: one archive per folder
                    lambda bdir: b.ours(None, "backup", home, bdir, NIGHTLY_SPEC))
    borg = BorgRepo(b.workdir / "runs", night.images) if shutil.which("borg") else None
    images = str(night.images)
    if borg:  # the reference: borg's repository already holds the four nights
        borg.start(lambda argv: measure(argv, borg.env, cwd=night.images))
    for _ in range(b.runs):
        night.start()
        try:
            run = b.ours(INCREMENT, "backup", home, night.backups, NIGHTLY_SPEC)
            new, count = night.new_archives()
            if len(new) != 1 or count != len(night.base) + 1:
                raise RuntimeError(f"adding one night made {len(new)} new archive(s):\n{run.stdout}")
            odir = b.fresh_dir("one-night")
            b.ours(ALONE, "backup", home, odir, ONE_NIGHT_SPEC)
            for series, folder, spec, made in ((INCREMENT, night.backups, NIGHTLY_SPEC, new[0]),
                                               (ALONE, odir, ONE_NIGHT_SPEC, archives(odir)[-1])):
                note(b.get(series), "pack_stage_s", stage_seconds(state(folder, spec, "pack.json")))
                b.get(series).extra.update(archive_bytes=made.stat().st_size,
                                           raw_bytes=night.night_bytes)
            shutil.rmtree(odir)
            if borg:  # the same night added by borg create, with the night moved in as ours
                name = borg.next_name()
                b.get(BORG).add(measure(borg.create_args(name), borg.env, cwd=images))
                borg.drop(name, lambda argv: measure(argv, borg.env, cwd=images))
        finally:
            night.remove_night()
    if borg:
        borg.finish()
    night.finish()


def bench_stages(b: Bench, tree: TreeInfo, label: str, stages: bool, full_chain: bool) -> None:
    """Optionally each stage in its own process (peak RSS per stage); optionally the chain once.

    `run X:` also runs the stages X depends on (scan always re-runs), so each peak is
    max(scan, X); scan alone is the first row.
    """
    if stages:
        sdir = b.fresh_dir(f"stages-{label}")
        for task in ("scan", "pack", "manifest", "verify"):
            b.ours(f"{label}: run {task}:", task, tree.home, sdir, IMAGES_SPEC)
        b.ours(f"{label}: run backup: (no-op)", "backup", tree.home, sdir, IMAGES_SPEC)
        shutil.rmtree(sdir)
    if full_chain:
        fdir = b.fresh_dir(f"full-{label}")
        b.ours(f"{label}: ours backup (full chain)", "backup", tree.home, fdir, IMAGES_SPEC)
        shutil.rmtree(fdir)
        out = b.workdir / f"ref-{label}.tar.zst"  # per-file overhead shows against this
        b.ref(f"{label}: tar | zstd -3 -T0", f"tar -cf - -C {tree.home} images | zstd -q -3 -T0 > {out}")
        out.unlink()


def profile(b: Bench, tree: TreeInfo, label: str) -> None:
    """cProfile one full images backup; print the top functions by own and cumulative time."""
    import pstats

    pdir, prof = b.fresh_dir(f"profile-{label}"), b.workdir / f"profile-{label}.prof"
    measure([PYTHON, "-m", "cProfile", "-o", str(prof), "-m", "allsky_tasks", "run",
             f"backup:{IMAGES_SPEC}"], b.env(tree.home, pdir, IMAGES_SPEC), cwd=b.workdir)
    shutil.rmtree(pdir)
    print(f"\n=== cProfile, {label} tree ({prof}) ===")
    stats = pstats.Stats(str(prof))
    stats.sort_stats("tottime").print_stats(18)
    stats.sort_stats("cumulative").print_stats(22)


def _git(*args: str) -> str:
    """Output of a read-only git command in the project."""
    return subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def describe_source(src: Path | None) -> str:
    """Which code was measured, for the result file."""
    if src is None:
        dirty = " + uncommitted changes" if _git("status", "--porcelain", "--", "allsky_tasks",
                                                  "dodo.py") else ""
        return f"working tree {PROJECT_DIR} at {_git('rev-parse', '--short', 'HEAD')}{dirty}"
    if src.name.startswith("src-"):
        return f"git revision {src.name[4:]} (exported to {src})"
    return f"checkout {src}"


def source_dir(src: str, workdir: Path) -> Path | None:
    """None for the working tree, else a folder holding allsky_tasks/ and dodo.py."""
    if src == "worktree":
        return None
    if Path(src, "dodo.py").is_file():
        return Path(src).resolve()
    rev = _git("rev-parse", "--short", src)
    folder = workdir / f"src-{rev}"
    if not (folder / "dodo.py").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(PROJECT_DIR), "archive", rev],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gb", type=float, default=2.0, help="approximate tree size in GB (2.0)")
    p.add_argument("--nights", type=int, default=8, help="night folders (8)")
    p.add_argument("--size", default="768x576", help="frame WxH (768x576: ~300 KB JPEGs)")
    p.add_argument("--runs", type=int, default=3, help="repetitions per measurement (3)")
    p.add_argument("--gzip-runs", type=int, default=1,
                   help="runs of the slow tar -czf reference (1; at most --runs)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/allsky-bench"))
    p.add_argument("--out", type=Path, help="JSON result (bench/out/result-<date>.json)")
    p.add_argument("--flat-check", action=argparse.BooleanOptionalAction, default=True,
                   help="also back up a tree with 10x the files (thumbnail-sized) for peak RSS")
    p.add_argument("--flat-factor", type=int, default=10)
    p.add_argument("--nightly", action=argparse.BooleanOptionalAction, default=True,
                   help="also time adding a 5th night to a per_night set vs that night alone")
    p.add_argument("--stages", action="store_true",
                   help="also run scan/pack/manifest/verify one process each, for peak RSS per stage")
    p.add_argument("--profile", action="store_true", help="cProfile one backup per tree")
    p.add_argument("--src", default="worktree",
                   help="code to measure: worktree (the editable install), a git revision "
                        "(exported read-only with git archive) or a checkout folder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes generating the tree")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate or reuse the trees, measure everything, print and save the results."""
    args = parse_args(argv)
    for tool in ("tar", "zstd", "sha256sum"):
        if shutil.which(tool) is None:
            print(f"bench: needs the {tool} command", file=sys.stderr)
            return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    size = (width, height)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started, load_start = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]

    def say(m: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {m}", flush=True)

    tree = ensure_tree(args.workdir, args.gb, args.nights, size, args.workers)
    say(f"tree {tree.home}: {tree.image_files} image files, {tree.image_bytes / 1e9:.2f} GB"
        f"{' (reused)' if tree.reused else f' (generated in {tree.generate_seconds}s)'}")
    flat = ensure_flat_tree(args.workdir, tree, args.flat_factor) if args.flat_check else None
    if flat:
        say(f"flat tree {flat.home}: {flat.image_files} image files, {flat.image_bytes / 1e6:.0f} MB")
    night = ensure_nightly_home(args.workdir, tree, args.workers) if args.nightly else None
    if night:
        say(f"per-night home {night.tree.home}: {night.tree.nights} nights + {night.new_night} "
            f"({night.night_bytes / 1e6:.0f} MB) to add")
    src = source_dir(args.src, args.workdir)
    if src is not None:
        sys.path.insert(0, str(src))
    measured = describe_source(src)
    say(f"measuring the {measured}")
    b = Bench(args.workdir, args.runs, src)
    warm_up(b, tree, flat)
    say("warm-up done (trees read once, tool run once); images backup vs tar")
    bdir = bench_images(b, tree)
    say("no-op re-run, scan and walks")
    bench_noop_scan(b, tree, bdir)
    say("verify")
    bench_verify(b, tree, bdir)
    say("config backup")
    bench_config(b, tree)
    if night:
        say("per-night: add one night vs that night alone")
        bench_nightly(b, night)
    say("flat check" + (" and per-stage memory" if args.stages else ""))
    shutil.rmtree(bdir)
    bench_stages(b, tree, "main", args.stages, full_chain=False)
    if flat:
        bench_stages(b, flat, "flat", args.stages, full_chain=True)
    shutil.rmtree(args.workdir / "runs", ignore_errors=True)
    if args.gzip_runs:
        say("tar -czf, as Allsky does it")
        bench_gzip(b, tree, args.gzip_runs)
    if args.profile:
        for label, t in (("main", tree), ("flat", flat)):
            if t:
                profile(b, t, label)
    machine, goals = machine_info(args.workdir), targets(b.series)
    machine["loadavg_start_end"] = [load_start, [round(x, 2) for x in os.getloadavg()]]
    print_report(b.series, b.runs, measured, tree, flat, machine, goals)
    out = args.out or PROJECT_DIR / "bench" / "out" / f"result-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"created": datetime.now().astimezone().isoformat(timespec="seconds"),
              "params": {k: str(v) for k, v in vars(args).items()}, "machine": machine,
              "measured_code": measured,
              "cache": "warm (no cache drop; needs root)", "tree": tree.__dict__,
              "flat_tree": flat.__dict__ if flat else None,
              "nightly_tree": night.tree.__dict__ if night else None,
              "results": {n: s.to_dict() for n, s in b.series.items()}, "targets": goals,
              "archive_size": archive_sizes(b.series),
              "total_seconds": round(time.perf_counter() - started, 1)}
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
