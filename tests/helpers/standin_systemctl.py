"""A stand-in for `systemctl` (no systemd runs here): units are stand-in services in folders.

Installed as an executable named `systemctl` by `install_systemctl`; unit U is the stand-in
service in `$STANDIN_UNITS/U` if that folder exists, else systemd does not know it. Answers
as systemd does: `is-active [--quiet] U` exits 0 or 3 (also 3 for an unknown unit: that is
why a LoadState look is needed), `show --property=LoadState --value [--] U` prints `loaded`
or `not-found`, `stop U` and `start U` drive the stand-in (5 "Unit U not found" when unknown).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

STANDIN = Path(__file__).resolve().with_name("standin_service.py")


def main(argv: list[str]) -> int:
    """Run one systemctl command."""
    words = [w for w in argv if w not in ("--quiet", "--value", "--", "--property=LoadState", "--system")]
    if len(words) != 2:
        print(f"standin systemctl: unsupported {argv}", file=sys.stderr)
        return 1
    verb, unit = words
    folder = Path(os.environ["STANDIN_UNITS"]) / unit
    known = folder.is_dir()
    if verb == "show":
        print("loaded" if known else "not-found")
        return 0
    if verb == "is-active":
        if not known:
            if "--quiet" not in argv:
                print("inactive")
            return 3
        return subprocess.run([sys.executable, str(STANDIN), "status", "--dir", str(folder)]).returncode
    if verb in ("stop", "start"):
        if not known:
            print(f"Failed to {verb} {unit}.service: Unit {unit}.service not found.", file=sys.stderr)
            return 5
        return subprocess.run([sys.executable, str(STANDIN), verb, "--dir", str(folder)]).returncode
    print(f"standin systemctl: unknown verb {verb}", file=sys.stderr)
    return 1


def install_systemctl(bin_dir: Path, units: Path) -> Path:
    """Write an executable `systemctl` into bin_dir that serves the units below `units`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "systemctl"
    here = Path(__file__).resolve()
    exe.write_text(f"#!/bin/sh\nSTANDIN_UNITS={shlex.quote(str(units))} exec "
                   f"{shlex.quote(sys.executable)} {shlex.quote(str(here))} \"$@\"\n")
    exe.chmod(0o755)
    return exe


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
