"""What a new operator reads: one line per failed spec, quiet runs, plain ok lines."""

from __future__ import annotations

import re
import subprocess
import sys

from ..conftest import Site

TYPO = "type: config\nsectons: {modules: true}\n"


def _run(site: Site, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "run", *args],
                          env={**site.environ(), **env}, text=True, capture_output=True,
                          timeout=300)


def test_a_typo_prints_one_line_per_failed_spec(site: Site) -> None:
    site.spec("typo", TYPO)
    proc = site.doit("backup:typo")
    assert proc.returncode == 2  # doit: a task error (the dependants' UnmetDependency)
    assert "did you mean 'sections'?" in proc.stdout
    assert "UnmetDependency" not in proc.stdout + proc.stderr and "add --verbosity 2" in proc.stdout
    # every later stage of the chain is named as not run, once
    found = re.findall(r"FAILED typo: validate:typo \[SpecError\]; (\d+) later task\(s\) not run "
                       r"\(scan:typo \.\. backup:typo\)", proc.stdout)
    assert len(found) == 1
    detail = site.doit("--verbosity", "2", "backup:typo")
    # doit's own detail names each of those tasks once
    assert detail.stdout.count("UnmetDependency") == int(found[0]) > 5


def test_quiet_run_prints_errors_on_stderr_only(site: Site) -> None:
    site.spec("typo", TYPO)
    proc = _run(site, "--quiet", "backup:typo")
    assert proc.returncode == 10 and proc.stdout == ""
    assert "SpecError" in proc.stderr and "FAILED typo" in proc.stderr


def test_allsky_quiet_doit_prints_no_task_lines(site: Site) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    proc = site.doit("backup:cfg")
    assert proc.returncode == 0 and ".  pack:cfg" in proc.stdout
    site.spec("cfg", "type: config\nservice: {pause: never}\nlevel: 4\n")
    env = {**site.environ(), "ALLSKY_QUIET": "1"}
    quiet = subprocess.run([sys.executable, "-m", "doit", "-f",
                            _dodo(), "backup:cfg"],
                           cwd=site.root, env=env, text=True, capture_output=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == ""
    assert len(site.archives()) == 2  # it did pack again


def _dodo() -> str:
    from allsky_tasks.environment import PROJECT_DIR

    return str(PROJECT_DIR / "dodo.py")


def test_validate_ok_line_has_no_python_reprs(site: Site) -> None:
    night = site.tree.nights[0]
    site.spec("range", f"type: images\nfolders: {{from: {night}, to: {night}}}\n")
    out = site.doit("validate:range", check=True).stdout
    assert f"ok (images: nights {night} to {night};" in out and "{'" not in out


def test_impossible_date_fails_validate_not_scan(site: Site) -> None:
    site.spec("bad", "type: images\nfolders: {from: 20261101, to: 20261131}\n")
    proc = _run(site, "backup:bad")
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert "20261131 is not a date: November 2026 has 30 days" in proc.stdout + proc.stderr
