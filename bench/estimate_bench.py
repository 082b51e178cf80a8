"""Benchmark: compressed-size estimate vs the real archive for a generated demo tree.

    .venv/bin/python bench/estimate_bench.py /tmp/est-bench --nights 8 --frames 300 --size 1280x960

Builds the tree under ROOT/allsky (reused if present), then per case (config/images x zstd/gzip):
scan, estimate, pack for real, and print the estimate's error and timings; writes ROOT/result.json
(or --json). Not part of the tests: a multi-GB tree takes minutes to pack.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from allsky_tasks.backup.estimate import estimate_compressed, estimate_total
from allsky_tasks.backup.pack import pack
from allsky_tasks.backup.scan import read_rows, scan
from allsky_tasks.demo import make_demo_tree
from allsky_tasks.environment import Environment
from allsky_tasks.spec.load import load_spec

ALL_SECTIONS = "{modules: true, databases: true, cameras: true, uservariables: true, " \
               "remote: true, ssl: true, myfiles: true, darks: true}"
CASES = {
    "config-zstd": f"type: config\nsections: {ALL_SECTIONS}\nformat: zstd\nlevel: 3\n",
    "config-gzip": f"type: config\nsections: {ALL_SECTIONS}\nformat: allsky\nlevel: 6\n",
    "images-zstd": "type: images\nfolders: all\nformat: zstd\nlevel: 3\n",
    "images-gzip": "type: images\nfolders: all\nformat: allsky\nlevel: 6\n",
}


def _size(text: str) -> tuple[int, int]:
    """WxH."""
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def run_case(root: Path, env: Environment, name: str, text: str, budget: int,
             keep: bool) -> dict[str, Any]:
    """Scan, estimate and pack one spec; return the figures."""
    path = env.specs_dir / f"{name}.yaml"
    path.write_text(text + "service: {pause: never}\n", encoding="utf-8")
    spec = load_spec(path, env)
    work = root / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    rows = work / "scan.jsonl"
    t0 = time.monotonic()
    with rows.open("w", encoding="utf-8") as out:
        summary = scan(spec, out)
    t1 = time.monotonic()
    estimates = estimate_compressed(read_rows(rows), spec.format, spec.level, budget=budget,
                                    media_fast=spec.media_compression == "fast")
    t2 = time.monotonic()
    total = estimate_total(estimates)
    spec.destination.mkdir(parents=True, exist_ok=True)
    result = pack(spec, summary, read_rows(rows), work)
    t3 = time.monotonic()
    if not keep:
        Path(result.archive).unlink()
    error = 100 * (total.estimated_bytes - result.size) / result.size
    return {"case": name, "format": spec.format, "level": spec.level, "members": summary.entries,
            "rawBytes": summary.raw_bytes, "estimatedBytes": total.estimated_bytes,
            "actualBytes": result.size, "errorPercent": round(error, 3),
            "sampledBytes": total.sampled_bytes,
            "allskyEstimateBytes": round(summary.raw_bytes * 0.92),
            "scanSeconds": round(t1 - t0, 3), "estimateSeconds": round(t2 - t1, 3),
            "packSeconds": round(t3 - t2, 3),
            "groups": {k: {"rawBytes": e.raw_bytes, "estimatedBytes": e.estimated_bytes,
                           "sampledBytes": e.sampled_bytes, "exact": e.exact}
                       for k, e in estimates.items()}}


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the tree, run every case, print and save the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--nights", type=int, default=4)
    p.add_argument("--frames", type=int, default=12, help="frames per night")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH")
    p.add_argument("--budget", type=int, default=4 << 20, help="bytes read per group")
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--keep", action="store_true", help="keep the archives")
    p.add_argument("--json", type=Path, help="result file (default ROOT/result.json)")
    args = p.parse_args(argv)
    root = args.root.absolute()
    home = root / "allsky"
    built = None
    if not home.exists():
        t = time.monotonic()
        make_demo_tree(home, nights=args.nights, frames_per_night=args.frames,
                       frame_size=args.size)
        built = round(time.monotonic() - t, 1)
    specs = root / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    env = Environment(home=home, images=None, backup_dir=root / "backups", specs_dir=specs)
    results = []
    print(f"{'case':12} {'raw':>14} {'estimate':>14} {'actual':>14} {'error':>8} "
          f"{'sampled':>12} {'scan s':>7} {'est. s':>7} {'pack s':>7}")
    for name in args.cases:
        r = run_case(root, env, name, CASES[name], args.budget, args.keep)
        results.append(r)
        print(f"{name:12} {r['rawBytes']:>14,} {r['estimatedBytes']:>14,} {r['actualBytes']:>14,} "
              f"{r['errorPercent']:>+7.2f}% {r['sampledBytes']:>12,} {r['scanSeconds']:>7.2f} "
              f"{r['estimateSeconds']:>7.2f} {r['packSeconds']:>7.2f}", flush=True)
    out = args.json or root / "result.json"
    out.write_text(json.dumps({"tree": {"nights": args.nights, "frames": args.frames,
                                        "size": list(args.size), "builtSeconds": built},
                               "budget": args.budget, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
