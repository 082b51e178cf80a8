"""Hard links in Allsky's archives: an earlier member's second name is accepted and restored as one.

Allsky's images backup of a night holding a file with two names (GNU tar stores the second as a
link to the first) restores with the link intact; so must ours. A hard link that points outside,
at a later member, at a folder or at a link is still refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from allsky_tasks.archive.safety import validate_archive
from allsky_tasks.inventory.full_read import verify_backup
from allsky_tasks.inventory.importer import import_archive
from allsky_tasks.inventory.listing import list_backups

from ..conftest import Site
from ..helpers.allsky_made import allsky_images_archive
from ..unit.test_safety import directory, images_members, member, metadata_for, rejected, write_archive


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)


def _linked_night(site: Site) -> tuple[str, Path, Path]:
    """A night whose keogram also sits at the night's top under a second name (a hard link)."""
    night = site.tree.nights[-1]
    folder = site.tree.images / night
    first = folder / "keogram" / f"keogram-{night}.jpg"
    second = folder / f"keogram-{night}-copy.jpg"
    os.link(first, second)
    return night, first, second


def test_an_allsky_archive_holding_a_hard_link_imports_verifies_lists_and_restores(
        site: Site, tmp_path: Path) -> None:
    night, first, second = _linked_night(site)
    when = datetime.fromtimestamp(first.stat().st_mtime)  # a date from the tree, not the clock
    made = allsky_images_archive(site.home, tmp_path / "upload", [night], when)
    with tarfile.open(made) as tar:
        kinds = {m.name: m.type for m in tar}
    link_name = second.relative_to(site.home).as_posix()
    assert kinds[link_name] == tarfile.LNKTYPE  # GNU tar's own hard link member
    report = validate_archive(made)
    assert report.kind == "allsky"
    dest = site.env.backup_dir
    stored = import_archive(made, dest).path
    assert verify_backup(stored)["ok"]
    (record,) = [r for r in list_backups(dest) if r.name == stored.name]
    assert not record.problem
    listed = _cli(site, "list")
    assert listed.returncode == 0 and "FAILED" not in listed.stdout, listed.stdout + listed.stderr
    content = first.read_bytes()
    first.write_bytes(b"changed since")  # both names: one file
    os.unlink(second)
    dry = _cli(site, "restore", stored.name, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    done = _cli(site, "restore", stored.name, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert first.read_bytes() == content and second.read_bytes() == content
    assert first.stat().st_ino == second.stat().st_ino and first.stat().st_nlink == 2


def test_restoring_only_the_link_brings_the_content_alone(site: Site, tmp_path: Path) -> None:
    # The link's target is not chosen: the link's name gets the content, the target is left as is.
    night, first, second = _linked_night(site)
    made = allsky_images_archive(site.home, tmp_path / "upload", [night],
                                 datetime.fromtimestamp(first.stat().st_mtime))
    stored = import_archive(made, site.env.backup_dir).path
    content = first.read_bytes()
    os.unlink(second)
    first.write_bytes(b"left alone")
    link_name = second.relative_to(site.tree.images).as_posix()
    done = _cli(site, "restore", stored.name, "--yes", "--files", f"images/{link_name}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert second.read_bytes() == content and first.read_bytes() == b"left alone"
    assert second.stat().st_nlink == 1


def _hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, kind=tarfile.LNKTYPE, linkname=target)


BAD = {
    "outside": ([_hard("images/20260303/h.jpg", "/etc/passwd")], "absolute path"),
    "up and out": ([_hard("images/20260303/h.jpg", "../etc/passwd")], "'..'"),
    "to a later member": ([_hard("images/20260303/h.jpg", "images/20260303/later.jpg"),
                           member("images/20260303/later.jpg", b"j")], "not an earlier member"),
    "to nothing": ([_hard("images/20260303/h.jpg", "images/20260303/none.jpg")],
                   "not an earlier member"),
    "to a folder": ([_hard("images/20260303/h", "images/20260303")], "a folder"),
    "to a symlink": ([member("images/20260303/s.jpg", kind=tarfile.SYMTYPE, linkname="image-1.jpg"),
                      _hard("images/20260303/h.jpg", "images/20260303/s.jpg")], "a link"),
    "to a hard link": ([_hard("images/20260303/h1.jpg", "images/20260303/image-1.jpg"),
                        _hard("images/20260303/h2.jpg", "images/20260303/h1.jpg")], "a link"),
    "to metadata": ([_hard("images/20260303/h.json", "metadata.json")], "not an earlier member"),
    "outside the areas": ([directory("images/20260304"), member("images/20260304/a.jpg", b"a"),
                           _hard("images/20260303/h.jpg", "images/20260304/a.jpg")],
                          "outside the areas"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_hard_link_is_refused(tmp_path: Path, case: str) -> None:
    extra, reason = BAD[case]
    members = images_members() + extra
    meta = metadata_for(members, "images")
    if case == "outside the areas":
        meta["imageTargets"] = ["images/20260303"]
        meta["imageBackupAll"] = False
    archive = write_archive(tmp_path / "h.tar.gz", members, meta)
    assert reason in rejected(archive).problem


def test_the_allsky_metadata_of_a_hard_link_is_its_file(site: Site, tmp_path: Path) -> None:
    # As Allsky's PHP sees it: two regular files, both in `files` and `permissions`.
    night, first, second = _linked_night(site)
    made = allsky_images_archive(site.home, tmp_path, [night],
                                 datetime.fromtimestamp(first.stat().st_mtime))
    with tarfile.open(made) as tar:
        meta = json.load(tar.extractfile("metadata.json"))  # type: ignore[arg-type]
    rel = second.relative_to(site.home).as_posix()
    assert rel in meta["files"] and meta["permissions"][rel]["type"] == "file"
