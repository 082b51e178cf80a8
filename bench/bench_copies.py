"""Copies bench: ours vs the shell's way, in one run, reported as ratios.

  mounted disk: copy stage (hidden name, fsync, read back + SHA-256, rename, record)
                vs `cp` then `sha256sum` of the copy, on a real tmpfs (root) or a folder
  SSH:          copy stage over the system OpenSSH to a local sshd (sftp put -f, sha256sum
                at the server, rename) vs `scp` then `ssh host sha256sum`
  no-op:        `doit` re-run of a spec with a path and an SSH target vs the same spec
                without copies (median of several runs each)

Run: .venv/bin/python bench/bench_copies.py [--mb 256] [--reps 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from allsky_tasks.copies.path import PathTarget  # noqa: E402
from allsky_tasks.copies.ssh import SshTarget  # noqa: E402
from allsky_tasks.copies.stage import copy_archive, hash_file  # noqa: E402
from tests.helpers.sshd import Sshd  # noqa: E402

NAME = "allsky-images-backup-20260301-120000.tar.zst"


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sync() -> None:
    subprocess.run(["sync"], check=False)


def _make_archive(folder: Path, mb: int) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    with open(path, "wb") as out:
        for _ in range(mb):
            out.write(os.urandom(1 << 20))  # incompressible, like an images archive
    return path, hash_file(path)[0]


def _mount(folder: Path, mb: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb * 3}m", "tmpfs",
                           str(folder)], capture_output=True)
    return proc.returncode == 0


def bench_disk(work: Path, archive: Path, sha: str, mb: int, reps: int) -> dict[str, float]:
    disk = work / "usb"
    mounted = _mount(disk, mb)
    try:
        ours, ref = [], []
        item = {"name": "usb", "path": str(disk / "ours"), "must_be_mounted": mounted}
        for _ in range(reps):
            def run_ours() -> None:
                shutil.rmtree(archive.parent / ".allsky-tasks", ignore_errors=True)
                copy_archive(PathTarget(item, {"home": work}), item, archive, None, sha, "b",
                             lambda n: None)
            _sync()
            ours.append(_time(run_ours))
            shutil.rmtree(disk / "ours")
            (disk / "ref").mkdir(exist_ok=True)
            _sync()
            ref.append(_time(lambda: subprocess.run(
                f"cp {archive} {disk}/ref/ && sha256sum {disk}/ref/{NAME} >/dev/null",
                shell=True, check=True)))
            shutil.rmtree(disk / "ref")
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)
    return {"ours": statistics.median(ours), "ref": statistics.median(ref),
            "mounted": float(mounted)}


def bench_ssh(work: Path, archive: Path, sha: str, reps: int) -> dict[str, float]:
    server = Sshd(work / "sshd").setup().start()
    try:
        remote = work / "remote"
        item = server.item(remote)
        opts = ["-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={server.known_hosts}",
                "-o", f"IdentityFile={server.client_key}", "-o", "IdentitiesOnly=yes"]
        ours, ref = [], []
        for _ in range(reps):
            def run_ours() -> None:
                shutil.rmtree(archive.parent / ".allsky-tasks", ignore_errors=True)
                copy_archive(SshTarget(item, {}), item, archive, None, sha, "b", lambda n: None)
            _sync()
            ours.append(_time(run_ours))
            shutil.rmtree(remote)
            (work / "ref").mkdir(exist_ok=True)
            _sync()

            def run_ref() -> None:
                subprocess.run(["scp", "-q", "-P", str(server.port), *opts, str(archive),
                                f"root@127.0.0.1:{work}/ref/"], check=True)
                subprocess.run(["ssh", "-p", str(server.port), *opts, "root@127.0.0.1",
                                f"sha256sum {work}/ref/{NAME}"], check=True,
                               capture_output=True)
            ref.append(_time(run_ref))
            shutil.rmtree(work / "ref")
    finally:
        server.kill()
    return {"ours": statistics.median(ours), "ref": statistics.median(ref)}


def bench_noop(work: Path, reps: int) -> dict[str, float]:
    """Two sites, alternated run by run: one spec with a path and an SSH target, one without."""
    from allsky_tasks.demo import make_demo_tree

    server = Sshd(work / "sshd-noop").setup().start()
    try:
        ssh = server.item(work / "noop-remote")["ssh"]
        copies = ("copies:\n  - name: disk\n    must_be_mounted: false\n"
                  f"    path: {work / 'noop-disk'}\n  - name: nas\n    ssh: {ssh!r}\n")
        base = "type: config\nservice: {pause: never}\n"
        runs = {}
        for key, text in (("without", base), ("with", base + copies)):
            site = work / f"site-{key}"
            tree = make_demo_tree(site / "allsky", nights=2, frames_per_night=2,
                                  frame_size=(160, 120))
            (site / "specs").mkdir()
            (site / "specs" / "cfg.yaml").write_text(text.replace("'", '"'))
            env = dict(os.environ, ALLSKY_HOME=str(tree.home), ALLSKY_SPECS_DIR=str(site / "specs"),
                       ALLSKY_BACKUP_DIR=str(site / "backups"))
            argv = [sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), "backup:cfg"]
            subprocess.run(argv, env=env, check=True, capture_output=True)
            runs[key] = (argv, env)
        server.kill()  # the no-op must not need the server: it would fail without it
        times: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(reps):
            for key, (argv, env) in runs.items():
                times[key].append(_time(functools.partial(subprocess.run, argv, env=env, check=True,
                                                          capture_output=True)))
    finally:
        server.kill()
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="archive size in MiB")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-copies-"))
    try:
        archive, sha = _make_archive(work / "backups", args.mb)
        disk = bench_disk(work, archive, sha, args.mb, args.reps)
        ssh = bench_ssh(work, archive, sha, args.reps)
        noop = bench_noop(work, max(args.reps, 15))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = "tmpfs" if disk["mounted"] else "folder"
    print(f"copies bench, {args.mb} MiB incompressible archive, median of {args.reps}")
    print(f"| copy to a mounted disk ({where}) | {disk['ours']:.2f} s | cp + sha256sum "
          f"{disk['ref']:.2f} s | {disk['ours'] / disk['ref']:.2f}x (target 1.1x) |")
    print(f"| copy over SSH to localhost | {ssh['ours']:.2f} s | scp + ssh sha256sum "
          f"{ssh['ref']:.2f} s | {ssh['ours'] / ssh['ref']:.2f}x (target 1.2x) |")
    print(f"| no-op re-run with a path and an SSH target | {noop['with']:.3f} s | without "
          f"copies {noop['without']:.3f} s | {noop['with'] - noop['without']:+.3f} s "
          "(target +0.05 s) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
