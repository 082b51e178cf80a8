"""`allsky-tasks plan [SPEC ...] [--json]`: what each backup would hold, and how big it would be."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import AllskyTasksError, DestinationError, SpaceError, SpecError


def spec_paths(names: list[str], specs_dir: Path) -> list[Path]:
    """Spec files from arguments (paths, or names in the specs folder); none: every spec there."""
    from ..environment import spec_files

    if not names:
        found = spec_files(specs_dir)
        if not found:
            raise SpecError([f"{specs_dir}::$: no spec files (*.yaml) in this folder"],
                            hint="set ALLSKY_SPECS_DIR or name spec files on the command line")
        return found
    paths = []
    for name in names:
        path = Path(name)
        if not path.is_file():
            candidates = [specs_dir / f"{name}{ext}" for ext in (".yaml", ".yml")]
            path = next((c for c in candidates if c.is_file()), path)
        if not path.is_file():
            raise SpecError([f"{name}::$: no such spec file (nor {name}.yaml in {specs_dir})"])
        paths.append(path)
    return paths


def plan_one(path: Path) -> dict[str, Any]:
    """Load, scan (into a temporary file) and plan one spec."""
    from ..backup.plan import build_plan
    from ..backup.scan import scan
    from ..environment import from_environ
    from ..spec.load import load_spec

    spec = load_spec(path, from_environ())
    with tempfile.TemporaryDirectory(prefix="allsky-plan-") as tmp:
        rows = Path(tmp) / "scan.jsonl"
        with rows.open("w", encoding="utf-8") as out:
            summary = scan(spec, out)
        return build_plan(spec, summary, rows)


def _cmd(args: argparse.Namespace) -> int:
    """Plan every named spec; print the plans, then the errors (the first one sets the code)."""
    from ..backup.plan import render_plan
    from ..backup.space import format_bytes
    from ..environment import from_environ

    plans, failures = [], []
    for path in spec_paths(args.specs, from_environ().specs_dir):
        try:
            plan = plan_one(path)
        except AllskyTasksError as e:
            failures.append(e)
            continue
        plans.append(plan)
        if not args.json:
            print(("\n" if len(plans) > 1 else "") + render_plan(plan), flush=True)
    if args.json:
        print(json.dumps(plans, indent=2))
    for plan in plans:  # the same refusal pack would make, before anything is stopped
        space = plan["space"]
        if space.get("notMounted"):
            failures.append(DestinationError(
                f"{plan['spec']}: destination {plan['destination']} is not on a mounted disk: "
                f"{space['notMounted']}", hint="plug in and mount the disk, or set "
                                                "must_be_mounted: false if it is meant to be local"))
        elif not space["fits"]:
            failures.append(SpaceError(
                f"{plan['spec']}: does not fit at {space['path']}: needs "
                f"{format_bytes(space['requiredBytes'])} with the margin, "
                f"{format_bytes(space['freeBytes'])} free",
                hint="free space there, choose another destination, or lower the spec's "
                     "free_space: {margin_percent, min_free_mb}"))
    for failure in failures[1:]:  # main prints the first, and exits with its code
        print(f"allsky-tasks: {type(failure).__name__}: {failure}", file=sys.stderr)
    if failures:
        raise failures[0]
    return 0


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `plan` command."""
    p = subs.add_parser(
        "plan", help="show what each backup would contain and its estimated size",
        description="Scan each spec's selection and show it as Allsky's create dialog would: "
                    "sections or folders with files, raw size and a measured compressed-size "
                    "estimate, free space at the destination and whether the service is "
                    "paused. Nothing is stopped or written.")
    p.add_argument("specs", nargs="*", metavar="SPEC",
                   help="spec file, or spec name in ALLSKY_SPECS_DIR (default: every spec there)")
    p.add_argument("--json", action="store_true", help="print the plans as a JSON list")
    p.set_defaults(func=_cmd)
