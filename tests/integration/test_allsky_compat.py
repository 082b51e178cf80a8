"""Allsky's own archives (vendored in tests/data/allsky-made) next to ours made from the same tree."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tarfile
from contextlib import closing
from pathlib import Path

import pytest

from allsky_tasks.environment import PROJECT_DIR, Environment

from ..conftest import Site, archive_metadata, backup, make_site
from ..helpers.allsky_restore import allsky_restore, allsky_targets

FIXTURES = PROJECT_DIR / "tests" / "data" / "allsky-made"
CONFIG = FIXTURES / "allsky-config-backup-20261126-060004.tar.gz"
IMAGES = FIXTURES / "allsky-images-backup-20261126-060005.tar.gz"


def _names(archive: Path) -> list[str]:
    """Member names as GNU tar lists them (Allsky's upload check uses `tar -tzf`)."""
    out = subprocess.run(["tar", "-tzf", str(archive)], check=True, capture_output=True,
                         text=True).stdout
    return out.splitlines()


def _home_from(fixture: Path, root: Path) -> Path:
    """An Allsky home holding exactly what Allsky's archive held, links re-made."""
    home = root / "allsky"
    home.mkdir(parents=True)
    with tarfile.open(fixture) as tar:
        tar.extractall(home, filter="data")  # our own trusted test data, safe filter
    (home / "metadata.json").unlink()
    (home / "version").write_text("v2025.xx.xx\n")
    return home


def _site(home: Path, root: Path) -> Site:
    """A Site around an existing home."""
    from allsky_tasks.demo import DemoTree

    specs = root / "specs"
    specs.mkdir()
    env = Environment(home=home, images=None, backup_dir=root / "allskybackups", specs_dir=specs)
    tree = DemoTree(home=home, images=home / "images", nights=[], camera_type="RPi",
                    camera_model="HQ")
    return Site(tree=tree, env=env, root=root)


def allsky_upload_problem(archive: Path) -> str | None:
    """Allsky's own upload validation (validateBackupArchive), rule by rule."""
    if not archive.name.lower().endswith(".tar.gz"):
        return "must be a .tar.gz"
    names = _names(archive)
    if "metadata.json" not in names:
        return "missing metadata.json"
    with tarfile.open(archive) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    if meta.get("backupType") == "images":
        return None if any(n == "images" or n.startswith("images/") for n in names) \
            else "missing images folder"
    if "env.json" not in names:
        return "missing env.json"
    if not any(n.startswith("config/settings_") and n.endswith(".json") for n in names):
        return "missing settings file"
    if not any(n.startswith("config/cc_") and n.endswith(".json") for n in names):
        return "missing cc file"
    if "unknown" in (meta.get("version"), meta.get("cameratype"), meta.get("cameramodel")):
        return "missing version/camera information"
    return None


def test_config_archive_matches_allsky_made_one(tmp_path: Path) -> None:
    home = _home_from(CONFIG, tmp_path)
    config = home / "config"
    os.link(config / "settings_RPi_HQ.json", config / "settings.json")
    os.link(config / "cc_RPi_HQ.json", config / "cc.json")
    pycache = config / "myFiles" / "modules" / "__pycache__"
    pycache.mkdir()
    (pycache / "x.pyc").write_bytes(b"junk")
    site = _site(home, tmp_path)
    ours = backup(site, "compat", "type: config\nsections: {modules: true, databases: true}\n"
                                  "format: allsky\n")
    theirs_names, our_names = _names(CONFIG), _names(ours)
    assert sorted(our_names) == sorted(theirs_names)
    assert our_names[-1] == theirs_names[-1] == "metadata.json"
    theirs = json.loads(CONFIG.with_suffix("").with_suffix(".json").read_text())
    mine = archive_metadata(ours)
    assert list(mine)[: len(theirs)] == list(theirs)  # same keys, same order, ours appended
    assert set(mine) - set(theirs) == {"allskyTasks"}
    assert sorted(mine["files"]) == theirs["files"]  # ours in archive order, same set
    for key in ("backupType", "version", "cameratype", "cameramodel", "settingsfile", "ccfile",
                "includedOptionalTargets", "includedSections", "requiredModules",
                "backupModules", "backupHasModules", "format"):
        assert mine[key] == theirs[key], key
    # Allsky lists __pycache__ in permissions although tar leaves it out; we leave it out of both.
    expected = {k: v for k, v in theirs["permissions"].items() if "__pycache__" not in k}
    assert set(mine["permissions"]) == set(expected)
    for path, entry in expected.items():
        assert mine["permissions"][path]["mode"] == entry["mode"], path
        assert mine["permissions"][path]["type"] == entry["type"], path
    assert allsky_upload_problem(ours) is None


def test_images_archive_matches_allsky_made_one(tmp_path: Path) -> None:
    home = _home_from(IMAGES, tmp_path)
    site = _site(home, tmp_path)
    ours = backup(site, "compat", "type: images\nfolders: all\nformat: allsky\n")
    assert sorted(_names(ours)) == sorted(_names(IMAGES))
    theirs = json.loads(IMAGES.with_suffix("").with_suffix(".json").read_text())
    mine = archive_metadata(ours)
    assert set(mine) - set(theirs) == {"allskyTasks"}
    assert sorted(mine["files"]) == theirs["files"]
    for key in ("backupType", "version", "includedOptionalTargets", "includedSections",
                "imageBackupAll", "imageFolders", "imageTargets", "format"):
        assert mine[key] == theirs[key], key
    assert set(mine["permissions"]) == set(theirs["permissions"])
    assert allsky_upload_problem(ours) is None


def test_allsky_made_archives_pass_allskys_own_upload_check() -> None:
    # The checker above must agree with Allsky about Allsky's own archives.
    assert allsky_upload_problem(CONFIG) is None
    assert allsky_upload_problem(IMAGES) is None


# --- Allsky's restore of our archives: every mode and byte comes back as it was ---------------

def _add_links(site: Site) -> None:
    """Links of every kind Allsky's permissions map must get right, in config and in a night."""
    images = site.home / "config" / "overlay" / "images"
    os.symlink("observatory-logo.png", images / "logo.png")  # to a 0664 file
    os.symlink("../imagethumbnails", images / "thumbs")  # to a 0775 folder
    os.symlink("gone.png", images / "old.png")  # dangling
    private = site.home / "config" / "overlay" / "myTemplates" / "private"
    private.mkdir()
    (private / "draft.json").write_text("{}\n")
    os.chmod(private / "draft.json", 0o640)
    os.chmod(private, 0o750)
    for night in site.tree.nights:
        folder = site.tree.images / night
        os.symlink(f"keogram/keogram-{night}.jpg", folder / "latest.jpg")  # a night's JPEG
        os.symlink("startrails", folder / "stars")  # to a 0755 folder
        os.symlink("nothing.jpg", folder / "missing.jpg")  # dangling  # dangling


def _state(root: Path) -> dict[str, tuple[object, ...]]:
    """(kind, mode, content or link text) of every path below root; mtimes left out (`-m`)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                out[rel] = ("dir", oct(stat.S_IMODE(info.st_mode)))
            else:
                out[rel] = ("file", oct(stat.S_IMODE(info.st_mode)), _content(path))
    return out


def _content(path: Path) -> object:
    """A file's bytes; a SQLite database's rows (pack stores a consistent copy, not the bytes)."""
    data = path.read_bytes()
    if not data.startswith(b"SQLite format 3\0"):
        return data
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return list(db.iterdump())


def _check_allsky_restore(site: Site, archive: Path, where: Path, folders: list[str] | None = None) -> None:
    """Restore `archive` the way Allsky does into a copy of the home lacking the targets, compare."""
    restored = where / "allsky"
    shutil.copytree(site.home, restored, symlinks=True)
    targets = allsky_targets(archive, archive_metadata(archive), folders)
    for target in targets:
        path = restored / target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    assert allsky_restore(archive, restored, folders) == targets
    before, after = _state(site.home), _state(restored)
    members = {n.rstrip("/") for n in _names(archive)} - {"metadata.json"}
    below = {p for p in before if any(p == t or p.startswith(t + "/") for t in targets)}
    # What the archive leaves out (__pycache__, other sections' files) stays missing.
    expected = {p: v for p, v in before.items() if p not in below or p in members}
    changed = sorted(p for p in set(expected) | set(after) if expected.get(p) != after.get(p))
    assert not changed, [(p, expected.get(p, "absent")[:2], after.get(p, "absent")[:2])
                         for p in changed[:8]]
    if archive_metadata(archive)["backupType"] == "config":
        config = restored / "config"
        assert (config / "settings.json").samefile(config / "settings_RPi_HQ.json")
        assert (config / "cc.json").samefile(config / "cc_RPi_HQ.json")


CONFIG_VARIANTS = {
    "core": "{}", "databases": "{databases: true}", "modules": "{modules: true}",
    "native": "{databases: true, modules: true}",
    "everything": "{databases: true, modules: true, cameras: true, uservariables: true, "
                  "remote: true, ssl: true, myfiles: true, darks: true}",
}


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
def test_allsky_restores_our_config_archive_exactly(tmp_path: Path, variant: str) -> None:
    site = make_site(tmp_path)
    _add_links(site)
    archive = backup(site, "cfg", f"type: config\nsections: {CONFIG_VARIANTS[variant]}\nformat: allsky\n")
    assert allsky_upload_problem(archive) is None
    _check_allsky_restore(site, archive, tmp_path / "restored")


@pytest.mark.parametrize("folders", ["all", "last", "named"])
def test_allsky_restores_our_images_archive_exactly(tmp_path: Path, folders: str) -> None:
    site = make_site(tmp_path)
    _add_links(site)
    nights = site.tree.nights
    choice = {"all": "all", "last": "{last: 2}", "named": f"['{nights[0]}', test_stretches]"}[folders]
    archive = backup(site, "img", f"type: images\nfolders: {choice}\nformat: allsky\n")
    assert allsky_upload_problem(archive) is None
    _check_allsky_restore(site, archive, tmp_path / "restored")
    # The WebUI's folder choice inside an all-folders archive: one night only.
    if folders == "all":
        _check_allsky_restore(site, archive, tmp_path / "one-night", [nights[1]])


def test_allsky_restores_our_per_night_archives_exactly(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    _add_links(site)
    site.spec("nights", "type: images\nfolders: all\nper_night: true\nformat: allsky\n"
                        "service: {pause: never}\n")
    site.doit("backup:nights", check=True)
    archives = site.archives()
    assert len(archives) == len(site.tree.nights) + 1  # and test_stretches
    for n, archive in enumerate(archives):
        assert allsky_upload_problem(archive) is None
        _check_allsky_restore(site, archive, tmp_path / f"restored-{n}")
