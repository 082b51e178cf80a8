"""Restores SIGKILLed while placing, config and images, on one filesystem and on two.

Whatever the layout, the next command finishes the placement from the staging folder, and
every later restore and backup works.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from allsky_tasks.restore.journal import KILL_AFTER_ENV
from allsky_tasks.restore.recovery import JOURNAL_NAME

from ..conftest import Site, backup, make_site
from ..helpers.disks import tmpfs

LARGE = 300  # files in the larger restore, killed half-way


def _cli(site: Site, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=env or site.environ(), text=True, capture_output=True, timeout=600)


@pytest.fixture(params=["one-filesystem", "images-on-tmpfs"])
def layout(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A demo site: images below the home (the default), or on a disk of their own."""
    with ExitStack() as stack:
        elsewhere = None
        if request.param == "images-on-tmpfs":
            elsewhere = stack.enter_context(tmpfs(tmp_path / "usb", "256m")) / "images"
        site = make_site(tmp_path, images_elsewhere=elsewhere)
        monkeypatch.setenv("ALLSKY_BACKUP_DIR", str(site.env.backup_dir))
        yield site


def _tree(kind: str, site: Site) -> Path:
    """The folder whose files the restore replaces, filled with LARGE small files."""
    folder = site.home / "config/myFiles/many" if kind == "config" else \
        site.tree.images / site.tree.nights[-1] / "many"
    folder.mkdir(parents=True)
    for i in range(LARGE):
        (folder / f"f{i:03d}.txt").write_text("backed-up\n")
    return folder


SPECS = {"config": "type: config\nsections: {myfiles: true}\nservice: {pause: never}\n",
         "images": "type: images\nfolders: all\nservice: {pause: never}\n"}


@pytest.mark.parametrize("kind", ["config", "images"])
@pytest.mark.parametrize("kill_after", [1, 3, 8, LARGE // 2])
def test_a_killed_restore_is_finished_and_later_commands_work(layout: Site, kind: str,
                                                              kill_after: int) -> None:
    site = layout
    folder = _tree(kind, site)
    archive = backup(site, "mine", SPECS[kind])
    for path in folder.iterdir():
        path.write_text("changed later\n")
    journal = site.env.backup_dir / ".allsky-tasks" / JOURNAL_NAME
    killed = _cli(site, "restore", archive.name, "--yes", "--no-service",
                  env={**site.environ(), KILL_AFTER_ENV: str(kill_after)})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert journal.exists()
    # The next command, any command, finishes the placement.
    after = _cli(site, "list")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "recovery failed" not in after.stderr, after.stderr
    assert "was interrupted after" in after.stderr and "finished it" in after.stderr, after.stderr
    assert not journal.exists()
    assert all(p.read_text() == "backed-up\n" for p in folder.iterdir())
    for root in {site.home, site.tree.images.resolve()}:
        assert not [p for p in root.iterdir() if p.name.startswith(".allsky-restore-")], root
    # And everything after works: a backup run of every kind, another restore.
    site.spec("nightly", SPECS["images"])
    site.spec("cfg", SPECS["config"])
    run = _cli(site, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    again = _cli(site, "restore", archive.name, "--yes", "--no-service")
    assert again.returncode == 0, again.stdout + again.stderr
