"""Tests for the demo Allsky tree generator, on real files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import date, datetime
from pathlib import Path

import pytest
from PIL import Image

from allsky_tasks.demo import DemoTree, main, make_demo_tree

LAST = date(2026, 11, 25)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> DemoTree:
    """One small default-shaped tree shared by the read-only tests."""
    return make_demo_tree(tmp_path_factory.mktemp("demo") / "allsky", nights=3, frames_per_night=4,
                          frame_size=(320, 240), last_night=LAST)


def test_describes_what_it_made(tree: DemoTree) -> None:
    """The returned DemoTree names the home, images dir, nights and camera."""
    assert tree.images == tree.home / "images" and tree.images.is_dir() and not tree.images.is_symlink()
    assert tree.nights == ["20261123", "20261124", "20261125"]
    assert (tree.camera_type, tree.camera_model) == ("RPi", "HQ")
    assert (tree.home / "version").read_text().splitlines()[0] == "v2025.xx.xx"
    variables = json.loads((tree.home / "variables.json").read_text())
    assert variables["ALLSKY_HOME"] == str(tree.home) and {"ALLSKY_OWNER", "ALLSKY_GROUP"} <= variables.keys()


def test_settings_and_cc_are_hard_links(tree: DemoTree) -> None:
    """settings.json / cc.json share the inode of the camera-specific files, as Allsky makes them."""
    config = tree.home / "config"
    for stem in ("settings", "cc"):
        link, target = config / f"{stem}.json", config / f"{stem}_RPi_HQ.json"
        assert not link.is_symlink()
        assert link.stat().st_ino == target.stat().st_ino and target.stat().st_nlink == 2
    settings = json.loads((config / "settings.json").read_text())
    assert settings["cameratype"] == "RPi" and settings["cameramodel"] == "HQ"
    assert settings["databasetype"] == "sqlite" and settings["filename"] == "image.jpg"
    assert len(settings) >= 40
    other = config / "settings_ZWO_ASI120MC-S.json"
    assert other.stat().st_nlink == 1 and (config / "cc_ZWO_ASI120MC-S.json").is_file()


def test_sqlite_database_is_real(tree: DemoTree) -> None:
    """allsky.db opens, passes integrity_check, uses a rollback journal and holds rows."""
    con = sqlite3.connect(tree.home / "config/myFiles/allsky.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
        assert con.execute("SELECT count(*) FROM allsky_camera").fetchone()[0] >= 100
    finally:
        con.close()
    assert not (tree.home / "config/myFiles/allsky.db-journal").exists()


def test_frames_are_real_jpegs(tree: DemoTree) -> None:
    """Each night holds the asked number of JPEG frames with thumbnails and the nightly products."""
    for night in tree.nights:
        folder = tree.images / night
        frames = sorted(folder.glob("image-*.jpg"))
        assert len(frames) == 4
        assert frames[0].name == f"image-{night}200000.jpg"
        for frame in frames:
            assert frame.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG SOI marker
            with Image.open(frame) as img:
                assert img.format == "JPEG" and img.size == (320, 240)
            when = datetime.strptime(frame.stem.removeprefix("image-"), "%Y%m%d%H%M%S").timestamp()
            assert frame.stat().st_mtime == when
            with Image.open(folder / "thumbnails" / frame.name) as thumb:
                assert thumb.width == 100
        for rel in (f"keogram/keogram-{night}.jpg", f"startrails/startrails-{night}.jpg",
                    f"keogramthumbnail/keogram-{night}.jpg", f"startrailsthumbnail/startrails-{night}.jpg",
                    f"videothumbnail/allsky-{night}.jpg"):
            with Image.open(folder / rel) as img:
                assert img.format == "JPEG"
        mp4 = (folder / f"allsky-{night}.mp4").read_bytes()
        assert mp4[4:12] == b"ftypisom" and mp4[36:40] == b"mdat" and len(mp4) > 100_000
    assert len(list((tree.images / "test_stretches").glob("*.jpg"))) == 2


def test_layout_and_modes(tree: DemoTree) -> None:
    """Flow files, user module, junk pycache, secrets modes and config dir modes are as on a real Pi."""
    config = tree.home / "config"
    night = json.loads((config / "modules/postprocessing_night.json").read_text())
    assert {step["module"] for step in night.values()} == {"allsky_overlay.py", "allsky_saveimage.py",
                                                           "allsky_test.py"}
    for flow in ("day", "night", "periodic", "daynight", "nightday"):
        assert (config / f"modules/postprocessing_{flow}.json").is_file()
    assert (config / "myFiles/modules/allsky_test.py").is_file()
    assert (config / "myFiles/modules/__pycache__/allsky_test.cpython-311.pyc").is_file()
    assert (tree.home / "scripts/modules/allsky_shared.py").is_file()
    assert (config / "logs").is_dir() and not any((config / "logs").iterdir())
    assert stat.S_IMODE((tree.home / "env.json").stat().st_mode) & 0o007 == 0
    assert stat.S_IMODE((config / "ssl/allsky.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((config / "overlay").stat().st_mode) == 0o775
    assert stat.S_IMODE((config / "backup.json").stat().st_mode) == 0o664
    assert len(list((tree.home / "darks").iterdir())) == 2


def test_images_elsewhere_is_a_symlink(tmp_path: Path) -> None:
    """With images_elsewhere, home/images is a symlink to that dir, which holds the nights."""
    usb = tmp_path / "usb" / "allsky-images"
    tree = make_demo_tree(tmp_path / "allsky", nights=1, frames_per_night=1, frame_size=(64, 48),
                          last_night=LAST, images_elsewhere=usb)
    link = tree.home / "images"
    assert link.is_symlink() and link.resolve() == usb.resolve()
    assert tree.images == usb and (usb / "20261125" / "image-20261125200000.jpg").is_file()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    """Two trees from one seed have byte-identical frames and DBs; another seed differs."""
    kwargs = {"nights": 1, "frames_per_night": 2, "frame_size": (160, 120), "last_night": LAST}
    a, b = (make_demo_tree(tmp_path / name, **kwargs) for name in ("a", "b"))
    c = make_demo_tree(tmp_path / "c", seed=1, **kwargs)
    rel = "20261125/image-20261125200100.jpg"
    assert (a.images / rel).read_bytes() == (b.images / rel).read_bytes() != (c.images / rel).read_bytes()
    db = "config/myFiles/allsky.db"
    assert (a.home / db).read_bytes() == (b.home / db).read_bytes()
    frames = sorted(a.images.glob("20261125/image-*.jpg"))
    assert frames[0].read_bytes() != frames[1].read_bytes()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    """make_demo_tree will not mix into a non-empty home."""
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        make_demo_tree(tmp_path, nights=1, frames_per_night=1)


def test_main_refuses_non_empty_home_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() exits 2 on a non-empty HOME, and --force deletes and recreates it."""
    home = tmp_path / "allsky"
    home.mkdir()
    (home / "precious.txt").write_text("keep me")
    args = [str(home), "--nights", "1", "--frames", "2", "--size", "64x48"]
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert (home / "precious.txt").exists()
    assert main([*args, "--force"]) == 0
    assert not (home / "precious.txt").exists()
    assert len(list(home.glob("images/2*/image-*.jpg"))) == 2
    assert str(home) in capsys.readouterr().out


def test_main_creates_missing_home(tmp_path: Path) -> None:
    """main() on a fresh path builds a tree, with images elsewhere when asked."""
    home, usb = tmp_path / "new" / "allsky", tmp_path / "usb"
    assert main([str(home), "--nights", "2", "--frames", "1", "--size", "32x24", "--images-elsewhere", str(usb)]) == 0
    assert (home / "images").is_symlink() and len(list(usb.glob("2*"))) == 2
    assert os.path.samefile(home / "config/settings.json", home / "config/settings_RPi_HQ.json")
