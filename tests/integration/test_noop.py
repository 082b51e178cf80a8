"""A no-op re-run stays cheap: it loads nothing that packs, verifies, plans or checks specs."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import Site

# Each costs a no-op re-run milliseconds to import (yaml ~15 ms); none is needed when nothing
# changed. A regression here shows up in bench.py's "no-op re-run" row.
HEAVY = ("yaml", "jsonschema", "zstandard", "tarfile", "tqdm", "allsky_tasks.archive.io",
         "allsky_tasks.backup.pack", "allsky_tasks.backup.plan", "allsky_tasks.backup.estimate",
         "allsky_tasks.archive.manifest", "allsky_tasks.archive.metadata", "allsky_tasks.archive.verify",
         "allsky_tasks.restore.run", "allsky_tasks.inventory.listing", "allsky_tasks.inventory.record",
         "allsky_tasks.inventory.full_read", "allsky_tasks.backup.stream_sim")

PROBE = f"""
import sys
from allsky_tasks.cli import main
code = main(["run", "--quiet", "backup:imgs", "backup:cfg"])
print(code, *sorted(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_noop_rerun_imports_nothing_heavy(site: Site) -> None:
    site.spec("imgs", "type: images\nfolders: all\nservice: {pause: never}\n")
    site.spec("cfg", "type: config\nsections: {databases: true}\nservice: {pause: never}\n")
    site.doit("backup:imgs", "backup:cfg", check=True)
    before = site.archives()
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=site.root, env=site.environ(),
                          text=True, capture_output=True, timeout=120)
    assert proc.stdout.split() == ["0"], proc.stdout + proc.stderr
    assert site.archives() == before
