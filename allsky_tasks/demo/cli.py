"""`python -m allsky_tasks.demo HOME`: create a demo tree from the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .tree import make_demo_tree

__all__ = ["main"]

DESCRIPTION = 'Generate a realistic demo Allsky install tree for the README demo, test fixtures and benchmarks.'


def _size(text: str) -> tuple[int, int]:
    """Parse WxH."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 640x480, not {text!r}") from None
    return w, h


def _clear(path: Path) -> str | None:
    """Delete a --force target unless it looks precious; return why it was not deleted."""
    resolved, home, cwd = path.resolve(), Path.home().resolve(), Path.cwd().resolve()
    if len(resolved.parts) < 3 or resolved in (home, *home.parents, cwd, *cwd.parents) \
            or (resolved / "allsky.sh").exists():
        return f"refusing to delete {path}: too near /, your home or the working dir, or a real Allsky install"
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return None


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m allsky_tasks.demo HOME [--nights N] [--frames N] [--size WxH] [--images-elsewhere DIR]."""
    p = argparse.ArgumentParser(prog="python -m allsky_tasks.demo", description=DESCRIPTION)
    p.add_argument("home", type=Path, help="Allsky home to create, e.g. /tmp/demo/allsky")
    p.add_argument("--nights", type=int, default=4)
    p.add_argument("--frames", type=int, default=12, help="frames per night")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--images-elsewhere", type=Path, help="put images here and symlink HOME/images to it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="delete HOME (and the images dir) if not empty")
    args = p.parse_args(argv)
    for target in (args.home, args.images_elsewhere):
        if target is None or not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            continue
        if not args.force:
            print(f"demo: {target} exists and is not empty; use --force to delete and recreate it", file=sys.stderr)
            return 2
        if (why := _clear(target)) is not None:
            print(f"demo: {why}", file=sys.stderr)
            return 2
    try:
        tree = make_demo_tree(args.home, nights=args.nights, frames_per_night=args.frames,
                              frame_size=args.size, images_elsewhere=args.images_elsewhere, seed=args.seed)
    except (ValueError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    files = [Path(d, f) for d, _, fs in os.walk(tree.home, followlinks=True) for f in fs]
    print(f"demo Allsky tree at {tree.home}: {len(tree.nights)} nights ({tree.nights[0]}..{tree.nights[-1]}) x "
          f"{args.frames} frames {args.size[0]}x{args.size[1]}, {len(files)} files, "
          f"{sum(f.lstat().st_size for f in files) / 1e6:.1f} MB, images in {tree.images}")
    return 0
