"""Allsky's own archives (vendored in tests/data/allsky-made) next to ours made from the same tree."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

from allsky_tasks.environment import PROJECT_DIR, Environment

from ..conftest import Site, archive_metadata, backup

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
