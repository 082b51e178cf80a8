"""The operator's view: doit over real specs, a real demo tree and real archives."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import SHIPPED_SPECS, Site, last_read


@pytest.fixture
def shipped(site: Site) -> Site:
    """The demo site with the shipped specs copied in."""
    for path in SHIPPED_SPECS.glob("*.yaml"):
        shutil.copy(path, site.env.specs_dir / path.name)
    return site


def _touch_later(path: Path) -> None:
    """Change a file's mtime for sure (coarse timestamps on some filesystems)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_first_run_makes_verified_archives_and_second_run_packs_nothing(shipped: Site) -> None:
    first = shipped.doit("backup", check=True)
    archives = shipped.archives()
    assert len(archives) == 4
    for archive in archives:
        meta = json.loads(sidecar_path(archive).read_text())
        assert last_read(archive)["ok"] is True and "verify" not in meta["allskyTasks"]
        assert meta["allskyTasks"]["archive"]["sizeBytes"] == archive.stat().st_size
        estimate = meta["allskyTasks"]["estimate"]  # the plan's, measured before packing
        assert estimate["actualBytes"] == archive.stat().st_size
        assert abs(estimate["errorPercent"]) < 3.0, (archive.name, estimate)
    assert first.stdout.count("verify ") >= 4
    assert "Total selected" in first.stdout and "(est. " in first.stdout  # the plan tables
    second = shipped.doit("backup", check=True)
    assert shipped.archives() == archives
    for name in ("quick-config", "full-migration", "all-images", "recent-nights"):
        assert f"-- pack:{name}" in second.stdout
        assert f"-- verify:{name}" in second.stdout


def test_changed_file_repacks_only_the_specs_that_hold_it(shipped: Site) -> None:
    shipped.doit("backup", check=True)
    before = set(shipped.archives())
    _touch_later(shipped.home / "env.json")
    out = shipped.doit("backup", check=True).stdout
    new = set(shipped.archives()) - before
    assert sorted(p.name.split("-")[1] for p in new) == ["config", "config"]
    assert ".  pack:quick-config" in out and ".  pack:full-migration" in out
    assert "-- pack:all-images" in out and "-- pack:recent-nights" in out


def test_new_night_folder_repacks_images(shipped: Site) -> None:
    shipped.doit("backup", check=True)
    before = set(shipped.archives())
    night = shipped.tree.images / "29990101"
    night.mkdir()
    (night / "image-29990101200000.jpg").write_bytes(b"\xff\xd8fake\xff\xd9")
    out = shipped.doit("backup", check=True).stdout
    new = set(shipped.archives()) - before
    assert sorted(p.name.split("-")[1] for p in new) == ["images", "images"]
    assert "-- pack:quick-config" in out


def test_edited_spec_makes_a_new_archive(shipped: Site) -> None:
    shipped.doit("backup", check=True)
    before = set(shipped.archives())
    spec = shipped.env.specs_dir / "quick-config.yaml"
    spec.write_text(spec.read_text().replace("level: 3", "level: 5"))
    out = shipped.doit("backup:quick-config", check=True).stdout
    assert len(set(shipped.archives()) - before) == 1
    assert ".  pack:quick-config" in out


def test_deleted_archive_is_packed_again(shipped: Site) -> None:
    shipped.doit("backup:quick-config", check=True)
    (archive,) = shipped.archives()
    archive.unlink()
    sidecar_path(archive).unlink()
    shipped.doit("backup:quick-config", check=True)
    assert len(shipped.archives()) == 1


def test_broken_spec_breaks_neither_list_nor_other_specs(shipped: Site) -> None:
    shipped.spec("broken", "type: config\nsections: {core: false, webcam: true}\n")
    listing = shipped.doit("list", "--all")
    assert listing.returncode == 0
    assert "validate:broken" in listing.stdout and "backup:quick-config" in listing.stdout
    yaml_broken = shipped.spec("unparsable", "type: [config\n")
    assert shipped.doit("list").returncode == 0
    validate = shipped.doit("validate")
    assert validate.returncode != 0
    text = validate.stdout + validate.stderr
    assert "specs/broken.yaml::$.sections.core: core is always backed up" in text
    assert "specs/broken.yaml::$.sections: unknown key 'webcam'" in text
    assert f"{yaml_broken.name}::$: invalid YAML" in text
    assert "Traceback" not in text
    run = shipped.doit("backup:quick-config", "backup:broken")
    assert run.returncode != 0
    assert [p.name.split("-")[1] for p in shipped.archives()] == ["config"]


def test_validate_accepts_every_shipped_spec(shipped: Site) -> None:
    env = shipped.environ()
    env.pop("ALLSKY_SPECS_DIR")  # the project's own backup_specs/
    import subprocess
    import sys

    from allsky_tasks.environment import PROJECT_DIR

    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"),
                           "validate"], env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": ok (") == len(list(SHIPPED_SPECS.glob("*.yaml")))


def test_state_lives_with_the_backups_not_the_current_folder(shipped: Site, tmp_path: Path) -> None:
    shipped.doit("backup:quick-config", check=True)
    assert (shipped.env.backup_dir / ".allsky-tasks" / "doit.sqlite3").exists()
    assert not list(shipped.root.glob(".doit*"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shipped.root, old_root = elsewhere, shipped.root
    out = shipped.doit("backup:quick-config", check=True).stdout
    shipped.root = old_root
    assert "-- pack:quick-config" in out and len(shipped.archives()) == 1


def test_lock_held_by_another_run_fails_cleanly(shipped: Site) -> None:
    dest = shipped.env.backup_dir
    dest.mkdir()
    fd = os.open(dest / ".allsky-tasks.lock", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"4242\n")
        fcntl.flock(fd, fcntl.LOCK_EX)
        run = shipped.doit("backup:quick-config")
    finally:
        os.close(fd)
    assert run.returncode != 0
    assert "[LockError] another backup run (pid 4242) is writing to" in run.stdout + run.stderr
    assert shipped.archives() == []
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]
    again = shipped.doit("backup:quick-config", check=True)
    assert ".  pack:quick-config" in again.stdout and len(shipped.archives()) == 1


def test_verify_task_rechecks_when_its_record_is_removed(shipped: Site) -> None:
    shipped.doit("backup:quick-config", check=True)
    (archive,) = shipped.archives()
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x10
    archive.write_bytes(bytes(data))
    (shipped.env.backup_dir / ".allsky-tasks" / "specs" / "quick-config" / "verify.json").unlink()
    time.sleep(0.01)
    run = shipped.doit("verify:quick-config")
    assert run.returncode != 0
    assert "[VerifyError] verify failed for" in run.stdout + run.stderr
    assert last_read(archive)["ok"] is False


def test_plain_doit_backs_up_the_config_specs_only(shipped: Site) -> None:
    """A new operator's plain `doit` writes no gzip of every night onto the card."""
    out = shipped.doit(check=True).stdout
    kinds = sorted(p.name.split("-")[1] for p in shipped.archives())
    assert kinds == ["config", "config"]
    assert ".  pack:quick-config" in out and ".  pack:full-migration" in out
    assert "pack:all-images" not in out and "pack:recent-nights" not in out


def test_plain_doit_without_config_specs_only_validates(site: Site) -> None:
    site.spec("nights", "type: images\nfolders: {last: 1}\n")
    out = site.doit(check=True).stdout
    assert "validate:nights" in out and "pack:" not in out and site.archives() == []
