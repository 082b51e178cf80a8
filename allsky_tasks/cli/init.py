"""`allsky-tasks init [DIR]`: copy the shipped example specs to the operator's own folder."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from ..environment import PROJECT_DIR, expand, spec_files
from ..errors import SpecError

DEFAULT_DIR = "~/allsky-backup-specs"


def init_specs(target: Path, source: Path = PROJECT_DIR / "backup_specs") -> tuple[list[str],
                                                                                    list[str]]:
    """Copy every example spec that is not there yet: (copied, kept as they were)."""
    examples = spec_files(source)
    if not examples:
        raise SpecError([f"{source}::$: no example specs to copy"])
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as e:
        raise SpecError([f"{target}::$: cannot create the folder: {e.strerror or e}"]) from e
    copied, kept = [], []
    for path in examples:
        dest = target / path.name
        if dest.exists() or dest.is_symlink():
            kept.append(path.name)  # the operator's edits are never overwritten
            continue
        tmp = target / f".{path.name}.{os.getpid()}.part"
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
        copied.append(path.name)
    return copied, kept


def _cmd(args: argparse.Namespace) -> int:
    """Copy the examples and say how to select the folder."""
    target = expand(args.dir).absolute()
    copied, kept = init_specs(target)
    for name in copied:
        print(f"copied  {target / name}")
    for name in kept:
        print(f"kept    {target / name} (exists; not overwritten)")
    print(f"\nYour specs live in {target}, outside the git clone: edit them there "
          "(`git pull` never touches them).")
    print("Select the folder in every shell and in cron (e.g. add it to ~/.profile):")
    print(f"  export ALLSKY_SPECS_DIR={target}")
    print("Then check them with `allsky-tasks plan` and back up with `allsky-tasks run`.")
    return 0


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `init` command."""
    p = subs.add_parser("init", help="copy the example specs to your own folder",
                        description="Copy the shipped example specs (backup_specs/) into DIR, "
                                    "never overwriting a file there, and print the "
                                    "ALLSKY_SPECS_DIR line that selects the folder.")
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR, metavar="DIR",
                   help=f"folder for your specs (default: {DEFAULT_DIR})")
    p.set_defaults(func=_cmd)
