"""A new operator's first hour: bootstrap's Python check, the vendored fixtures, demo env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from allsky_tasks.environment import PROJECT_DIR

BOOTSTRAP = PROJECT_DIR / "scripts" / "bootstrap.sh"


def _old_python(tmp_path: Path, version: str) -> Path:
    """A real interpreter that reports an older version, as Bullseye's python3 (3.9) would."""
    major, minor = version.split(".")
    fake = tmp_path / f"python{version}"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-c" ] || exit 99\n'
        f"exec {sys.executable} -c \"import sys; sys.version_info = ({major}, {minor}, 2); "
        "exec(sys.argv[1])\" \"$2\"\n")
    fake.chmod(0o755)
    return fake


def test_bootstrap_refuses_an_old_python_before_installing_anything(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    (clone / "scripts" / "bootstrap.sh").write_bytes(BOOTSTRAP.read_bytes())
    env = {**os.environ, "PYTHON": str(_old_python(tmp_path, "3.9"))}
    done = subprocess.run(["bash", str(clone / "scripts" / "bootstrap.sh"), "demo"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "is Python 3.9; allsky-tasks needs Python 3.11 or newer" in done.stderr
    assert "Bookworm" in done.stderr and "PYTHON=" in done.stderr
    assert not (clone / ".venv").exists()


def test_bootstrap_names_a_missing_python(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": str(tmp_path / "no-such-python")}
    done = subprocess.run(["bash", str(BOOTSTRAP), "demo"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "not found" in done.stderr and "3.11" in done.stderr


def test_allsky_made_fixtures_are_vendored() -> None:
    """The tests that use Allsky's own archives run in a plain clone (no ../shared)."""
    folder = PROJECT_DIR / "tests" / "data" / "allsky-made"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["allsky-config-backup-20261126-060004.json",
                     "allsky-config-backup-20261126-060004.tar.gz",
                     "allsky-images-backup-20261126-060005.json",
                     "allsky-images-backup-20261126-060005.tar.gz"]
    tracked = subprocess.run(["git", "-C", str(PROJECT_DIR), "ls-files", "tests/data/allsky-made"],
                             capture_output=True, text=True).stdout.split()
    assert len(tracked) in (0, 4)  # 0: not a git checkout (an sdist); else all four are committed


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], text=True,
                          capture_output=True, timeout=120, env={**os.environ, **(env or {})})


def test_init_copies_the_examples_and_says_how_to_select_them(tmp_path: Path) -> None:
    target = tmp_path / "my-specs"
    first = _cli("init", str(target))
    assert first.returncode == 0, first.stderr
    shipped = sorted(p.name for p in (PROJECT_DIR / "backup_specs").glob("*.yaml"))
    assert sorted(p.name for p in target.iterdir()) == shipped
    assert f"export ALLSKY_SPECS_DIR={target}" in first.stdout
    mine = target / "quick-config.yaml"
    mine.write_text("description: mine\ntype: config\n")
    again = _cli("init", str(target))
    assert again.returncode == 0 and "kept" in again.stdout
    assert mine.read_text() == "description: mine\ntype: config\n"  # never overwritten
    listed = _cli("plan", "quick-config", env={"ALLSKY_SPECS_DIR": str(target),
                                               "ALLSKY_HOME": str(tmp_path / "none")})
    assert str(target / "quick-config.yaml") in listed.stderr or "quick-config" in listed.stderr


def test_version_and_help_name_the_real_default_folder() -> None:
    from allsky_tasks import __version__

    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"allsky-tasks {__version__}"
    for command in ("list", "restore", "import"):
        text = " ".join(_cli(command, "--help").stdout.split())
        assert "../allskybackups" not in text and "~/allskybackups" in text, command
