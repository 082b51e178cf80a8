"""Restore end to end on real demo trees: round trips, Allsky's archives, blocks, hostile input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.cli import main
from allsky_tasks.errors import RestoreError, UnsafeArchiveError
from allsky_tasks.restore.prepare import RestoreBlocked, RestoreOptions, prepare
from allsky_tasks.restore.run import execute, restore
from allsky_tasks.restore.summary import write_log
from allsky_tasks.service.config import ServiceConfig

from ..conftest import Site, backup, make_site, tree_state
from ..helpers.service_fixture import kill_standins, service_spec, standin_pid, standin_running, start_standin
from ..unit.test_extract import allsky_meta, folder, link, raw, write_tar
from .test_allsky_compat import CONFIG, IMAGES

ALL = ("type: config\nsections: {modules: true, databases: true, cameras: true, "
       "uservariables: true, remote: true, ssl: true, myfiles: true, darks: true}\n")
DB = "config/myFiles/allsky.db"
# Folders the archive does not hold get new times when files are moved into them; the log is new.
NOT_IN_ARCHIVE = ("config", "config/overlay", "config/logs")


def opts(site: Site, **kw: Any) -> RestoreOptions:
    """Options for a test site: no systemd, its own backup folder, no /opt/allsky."""
    kw.setdefault("service", None)
    return RestoreOptions(backup_dir=site.env.backup_dir, legacy_modules=site.root / "no-opt",
                          **kw)


def comparable(state: dict[str, tuple], *drop: str) -> dict[str, tuple]:
    """A tree state without what a restore legitimately changes (or the test put aside)."""
    return {k: v for k, v in state.items() if k not in NOT_IN_ARCHIVE + drop
            and not k.startswith("config/logs/")}


def members(archive: Path) -> dict[str, bytes]:
    """File contents of an Allsky (.tar.gz) archive, trusted test data."""
    with tarfile.open(archive) as tar:
        return {i.name: tar.extractfile(i).read()  # type: ignore[union-attr]
                for i in tar if i.isreg()}


def logs(site: Site) -> list[str]:
    """Restore logs written so far."""
    return sorted(p.read_text() for p in (site.home / "config/logs").glob("backup-restore-*.log"))


def same_inode(a: Path, b: Path) -> bool:
    """Hard links of one file."""
    return os.stat(a).st_ino == os.stat(b).st_ino


def test_round_trip_restores_the_backed_up_tree_exactly(site: Site, tmp_path: Path) -> None:
    home = site.home
    extra = home / "config/myFiles/extra"
    extra.mkdir()
    (extra / "note.txt").write_text("hello\n")
    os.symlink("note.txt", extra / "relative-link")
    os.chmod(extra, 0o2775)  # setgid, as Allsky's installer makes folders for www-data
    (home / "config/myFiles/locked").mkdir()
    (home / "config/myFiles/locked/file").write_text("in a read-only folder\n")
    os.chmod(home / "config/myFiles/locked", 0o555)
    archive = backup(site, "full", ALL)
    before = tree_state(home)
    outside = tmp_path / "usb-fonts"
    outside.mkdir()
    (outside / "keep.ttf").write_bytes(b"outside")
    settings = home / "config/settings_RPi_HQ.json"
    data = json.loads(settings.read_text())
    settings.write_text(json.dumps({**data, "angle": 12}))
    (home / "config/settings.json").unlink()  # a broken link, as Allsky's own fix-up finds them
    shutil.copy(settings, home / "config/settings.json")
    (home / "config/overlay/myTemplates/my-night-template.json").unlink()
    os.chmod(home / "env.json", 0o644)
    (extra / "relative-link").unlink()
    (extra / "relative-link").write_text("not a link")
    shutil.rmtree(home / "config/overlay/fonts")
    os.symlink(outside, home / "config/overlay/fonts")  # never followed: replaced by a folder
    shutil.rmtree(home / "darks")
    shutil.rmtree(home / "config/myFiles/locked")
    (home / "config/uservariables.sh").unlink()
    (home / "config/uservariables.sh").mkdir()  # a folder where the archive has a file
    (home / "config/overlay/myTemplates/new.json").write_text("{}")  # not in the backup: kept

    summary = restore(archive, home, opts(site))

    after = tree_state(home)
    assert comparable(after, DB, "config/overlay/myTemplates/new.json") == comparable(before, DB)
    assert (home / "config/overlay/myTemplates/new.json").exists()
    db_rows = json.loads(archive.with_name(archive.name[:-8] + ".json").read_text())
    manifest = {r["path"]: r for r in db_rows["allskyTasks"]["manifest"]}
    assert hashlib.sha256((home / DB).read_bytes()).hexdigest() == manifest[DB]["sha256"]
    assert stat.S_IMODE((extra).stat().st_mode) == 0o2775
    assert same_inode(home / "config/settings.json", settings)
    assert same_inode(home / "config/cc.json", home / "config/cc_RPi_HQ.json")
    assert sorted(os.listdir(outside)) == ["keep.ttf"]
    assert not list(home.glob(".allsky-restore-*"))
    assert summary.undo and Path(summary.undo).parent == site.env.backup_dir
    assert summary.log and "Status: SUCCESS" in Path(summary.log).read_text()
    assert "config/overlay/myTemplates/my-night-template.json" in summary.files


def test_undo_backup_brings_back_the_pre_restore_state(site: Site) -> None:
    home = site.home
    archive = backup(site, "quick", "type: config\n")
    settings = home / "config/settings_RPi_HQ.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "angle": 33}))
    os.chmod(home / "config/overlay/fonts/MyFont.ttf", 0o600)
    (home / "config/myFiles/notes.txt").write_text("after the backup")
    changed = tree_state(home)
    summary = restore(archive, home, opts(site))
    assert json.loads(settings.read_text())["angle"] != 33
    undo = Path(summary.undo or "")
    restore(undo, home, opts(site, undo=False))
    assert comparable(tree_state(home), DB) == comparable(changed, DB)
    assert json.loads((home / "config/settings.json").read_text())["angle"] == 33


@pytest.mark.skipif(not shutil.which("chattr"), reason="needs chattr")
def test_a_failure_while_moving_leaves_old_or_new_at_every_path(site: Site) -> None:
    home = site.home
    archive = backup(site, "full", ALL)
    original = tree_state(home)
    files = [p for p, v in original.items() if v[0] == "file" and p != DB
             and not p.startswith("config/settings") and not p.startswith("config/cc")]
    for path in files:
        with (home / path).open("ab") as out:
            out.write(b"#changed")
    blocker = home / "config/overlay/config/fields.json"
    if subprocess.run(["chattr", "+i", str(blocker)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable flag")
    try:
        with pytest.raises(RestoreError, match="cannot move config/overlay/config/fields.json"):
            restore(archive, home, opts(site))
    finally:
        subprocess.run(["chattr", "-i", str(blocker)], check=True)
    old = new = 0
    for path in files:
        data = (home / path).read_bytes()
        assert data in (original[path][3], original[path][3] + b"#changed"), path
        new, old = new + (data == original[path][3]), old + (data != original[path][3])
    assert new and old  # it stopped in the middle, and no path is half-written
    assert not list(home.glob(".allsky-restore-*"))
    assert "Status: FAILED: RestoreError: cannot move" in logs(site)[0]


def test_dry_run_lists_and_changes_nothing(site: Site) -> None:
    archive = backup(site, "full", ALL)
    (site.home / "config/overlay/myTemplates/my-night-template.json").unlink()
    (site.home / "config/overlay/myTemplates/extra.json").write_text("{}")
    (site.home / "env.json").write_text((site.home / "env.json").read_text() + " ")
    before, backups = tree_state(site.home), sorted(os.listdir(site.env.backup_dir))
    summary = restore(archive, site.home, opts(site, dry_run=True))
    assert tree_state(site.home) == before and sorted(os.listdir(site.env.backup_dir)) == backups
    plan = {path: action for action, path, _ in summary.plan}
    assert plan["config/overlay/myTemplates/my-night-template.json"] == "create"
    assert plan["config/overlay/myTemplates/extra.json"] == "keep"
    assert plan["env.json"] == "replace" and plan["config/overlay/myTemplates"] == "merge"
    assert plan["config/uservariables.sh"] == "unchanged"  # identical bytes are not "replace"
    assert "replace" not in {plan[p] for p in plan if p.startswith("config/overlay/config/")}
    assert summary.dry_run and not summary.log and not logs(site)


def test_a_mode_that_differs_is_a_replace_and_the_restore_applies_it(site: Site) -> None:
    archive = backup(site, "full", ALL)
    changed = site.home / "config/uservariables.sh"  # same bytes, mode 0664 -> 0600
    os.chmod(changed, 0o600)
    link = site.home / "config/overlay/images/observatory-logo.png"
    plan = {path: action for action, path, _ in
            restore(archive, site.home, opts(site, dry_run=True)).plan}
    assert plan["config/uservariables.sh"] == "replace"
    assert plan["config/overlay/images/observatory-logo.png"] == "unchanged"  # bytes and mode
    restore(archive, site.home, opts(site, undo=False))
    assert stat.S_IMODE(changed.stat().st_mode) == 0o664
    after = {path: action for action, path, _ in
             restore(archive, site.home, opts(site, dry_run=True)).plan}
    assert after["config/uservariables.sh"] == "unchanged" and link.exists()


def test_a_mode_that_differs_from_allskys_permissions_map_is_a_replace(site: Site) -> None:
    # Allsky's archives: the mode a restore applies is the permissions map's, not tar's.
    home = site.home
    for name in members(CONFIG):
        if name != "metadata.json":
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            (home / name).write_bytes(members(CONFIG)[name])
            os.chmod(home / name, 0o644)
    os.chmod(home / "config/overlay/config/overlay-RPi.json", 0o666)
    plan = {path: action for action, path, _ in
            restore(CONFIG, home, opts(site, dry_run=True, force_camera=True)).plan}
    assert plan["config/overlay/config/overlay-RPi.json"] == "replace"
    assert plan["config/overlay/myTemplates/mine.json"] == "unchanged"


def test_camera_mismatch_blocks_unless_forced(site: Site) -> None:
    archive = backup(site, "quick", "type: config\n")
    live = site.home / "config/settings.json"
    live.write_text(json.dumps({**json.loads(live.read_text()), "cameramodel": "Module 3"}))
    before = tree_state(site.home)
    state = tree_state(site.env.backup_dir)
    with pytest.raises(RestoreBlocked) as err:
        restore(archive, site.home, opts(site))
    assert "backup camera is 'RPi HQ', current camera is 'RPi Module 3'" in str(err.value)
    assert tree_state(site.home) == before and tree_state(site.env.backup_dir) == state
    summary = restore(archive, site.home, opts(site, force_camera=True, undo=False))
    assert any("--force-camera" in w for w in summary.warnings)
    assert json.loads(live.read_text())["cameramodel"] == "HQ"


def test_missing_modules_block_unless_restored_too(site: Site) -> None:
    archive = backup(site, "mods", "type: config\nsections: {modules: true}\n")
    shutil.rmtree(site.home / "config/myFiles/modules")
    with pytest.raises(RestoreBlocked, match="missing module file.*allsky_test.py"):
        restore(archive, site.home, opts(site, sections=["core"]))
    restore(archive, site.home, opts(site, sections=["core", "modules"], undo=False))
    assert (site.home / "config/myFiles/modules/allsky_test.py").is_file()


def test_allsky_made_archives_restore_into_a_tree_of_the_same_camera(site: Site) -> None:
    summary = restore(CONFIG, site.home, opts(site))
    for name, data in members(CONFIG).items():
        if name != "metadata.json":
            assert (site.home / name).read_bytes() == data, name
            assert stat.S_IMODE((site.home / name).stat().st_mode) == 0o644  # its permissions
    assert stat.S_IMODE((site.home / "config/modules").stat().st_mode) == 0o755
    assert same_inode(site.home / "config/settings.json",
                      site.home / "config/settings_RPi_HQ.json")
    assert summary.mode == "normal" and "databases" in summary.chosen
    images = restore(IMAGES, site.home, opts(site, folders=["20260303"]))
    assert images.chosen == ["20260303"] and not (site.home / "images/20260304").exists()
    got = members(IMAGES)
    for name in got:
        if name.startswith("images/20260303/"):
            assert (site.home / name).read_bytes() == got[name]


def test_images_restore_follows_only_the_operators_images_link(tmp_path: Path) -> None:
    site = make_site(tmp_path, images_elsewhere=tmp_path / "usb")
    archive = backup(site, "imgs", "type: images\n")
    before = tree_state(tmp_path / "usb")
    night, other = site.tree.nights[0], site.tree.nights[1]
    shutil.rmtree(tmp_path / "usb" / night)
    (tmp_path / "usb" / other / "keogram").rename(tmp_path / "usb" / other / "moved")
    summary = restore(archive, site.home, opts(site, folders=[night, other]))
    assert (site.home / "images").is_symlink() and summary.chosen == [night, other]
    assert comparable(tree_state(tmp_path / "usb"), f"{other}/moved",
                      f"{other}/moved/keogram-{other}.jpg") == before
    assert logs(site) and summary.undo is None  # images: no undo backup
    os.unlink(site.home / "images")  # an images folder that is gone: a fresh one is made
    restore(archive, site.home, opts(site, folders=[night]))
    assert (site.home / "images" / night).is_dir() and not (site.home / "images").is_symlink()


def _allsky_config(path: Path, site: Site, extra: list, **meta: Any) -> Path:
    """A valid Allsky-style config archive with the site's camera files plus `extra`."""
    home = site.home
    base = [raw("config/settings_RPi_HQ.json", (home / "config/settings.json").read_bytes()),
            raw("config/cc_RPi_HQ.json", (home / "config/cc.json").read_bytes()),
            raw("env.json", b"{}")]
    body = base + list(extra)
    return write_tar(path, body, allsky_meta(body, **meta))


def _perm(mode: str, owner: str = "ALLSKY_OWNER", kind: str = "file") -> dict[str, Any]:
    """One entry of Allsky's permissions map."""
    return {"mode": mode, "owner": owner, "group": "root", "ownerId": 0, "groupId": 0,
            "type": kind}


@pytest.mark.parametrize("case", ["traversal", "symlink escape", "images with env.json",
                                  "images with scripts"])
def test_hostile_archives_are_blocked_before_any_change(site: Site, tmp_path: Path,
                                                        case: str) -> None:
    path = tmp_path / "hostile.tar.gz"
    if case == "traversal":
        _allsky_config(path, site, [raw("config/../../escaped.txt", b"x")])
    elif case == "symlink escape":
        _allsky_config(path, site, [link("config/overlay/images/evil", "../../../../escaped")])
    else:
        name = "env.json" if "env" in case else "scripts/x"
        body = [folder("images"), raw("images/20260303/a.jpg", b"j"), raw(name, b"x")]
        write_tar(path, body, allsky_meta(body, kind="images"))
    before = tree_state(site.home)
    with pytest.raises(RestoreBlocked) as err:
        restore(path, site.home, opts(site))
    assert "Archive verifies" in str(err.value)
    assert tree_state(site.home) == before
    assert not (site.root / "escaped.txt").exists() and not (tmp_path / "escaped").exists()


def test_permissions_never_reach_through_symlinks_outside_the_home(site: Site,
                                                                    tmp_path: Path) -> None:
    home = site.home
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("secret.txt", "target.ttf"):
        (outside / name).write_bytes(b"keep me")
        os.chmod(outside / name, 0o600)
        os.chown(outside / name, 4242, 4343)
    shutil.rmtree(home / "config/overlay/images")
    os.symlink(outside, home / "config/overlay/images")
    os.symlink(outside / "target.ttf", home / "config/overlay/fonts/evil.ttf")
    perms = {"config/overlay/images": _perm("0777", kind="dir"),
             "config/overlay/images/logo.png": _perm("0666", "no-such-user-here"),
             "config/overlay/images/secret.txt": _perm("0777", "nobody"),
             "config/overlay/fonts/evil.ttf": _perm("0777", "nobody")}
    archive = _allsky_config(tmp_path / "a.tar.gz", site, [
        folder("config/overlay/images"), raw("config/overlay/images/logo.png", b"png")],
        permissions=perms)
    summary = restore(archive, home, opts(site))
    assert any("'no-such-user-here' does not exist" in w for w in summary.warnings)
    for name in ("secret.txt", "target.ttf"):
        st = (outside / name).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 4242, 4343)
        assert (outside / name).read_bytes() == b"keep me"
    assert sorted(os.listdir(outside)) == ["secret.txt", "target.ttf"]
    live = home / "config/overlay/images"
    assert not live.is_symlink() and stat.S_IMODE(live.stat().st_mode) == 0o777
    assert stat.S_IMODE((live / "logo.png").stat().st_mode) == 0o666
    assert (live / "logo.png").stat().st_uid == home.stat().st_uid  # unknown user: the home's
    assert (home / "config/overlay/fonts/evil.ttf").is_symlink()


@pytest.fixture
def standin(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A running stand-in service and its config; every daemon is ended afterwards."""
    service_dir = tmp_path / "service"
    service_dir.mkdir()
    start_standin(service_dir)
    try:
        yield service_dir, ServiceConfig.from_spec(service_spec(service_dir))
    finally:
        kill_standins(service_dir)


def test_setgid_modes_restore_and_the_service_restarts(site: Site, tmp_path: Path,
                                                       standin: tuple) -> None:
    service_dir, cfg = standin
    first = standin_pid(service_dir)
    archive = _allsky_config(tmp_path / "sg.tar.gz", site, [
        folder("config/overlay/myTemplates", 0o2775),
        raw("config/overlay/myTemplates/t.json", b"{}")],
        permissions={"config/overlay/myTemplates": _perm("2775", kind="dir"),
                     "config/overlay/myTemplates/t.json": _perm("2755")})
    summary = restore(archive, site.home, opts(site, service=cfg))
    templates = site.home / "config/overlay/myTemplates"
    assert stat.S_IMODE(templates.stat().st_mode) == 0o2775
    assert stat.S_IMODE((templates / "t.json").stat().st_mode) == 0o755
    assert any("2755" in w for w in summary.warnings)
    assert standin_running(service_dir) and standin_pid(service_dir) != first
    assert summary.service and summary.service["stopped"] and summary.service["restarted"]


def test_failed_extraction_restarts_the_service_and_changes_nothing(site: Site,
                                                                    standin: tuple) -> None:
    service_dir, cfg = standin
    archive = backup(site, "quick", "type: config\n")
    settings = site.home / "config/settings_RPi_HQ.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "angle": 7}))
    other = backup(site, "quick", "type: config\n")
    prep = prepare(archive, site.home, opts(site, service=cfg, undo=False))
    assert not prep.blocked
    archive.write_bytes(other.read_bytes())  # swapped after the checks
    before = tree_state(site.home)
    with pytest.raises(UnsafeArchiveError, match="checked"):
        execute(prep)
    assert standin_running(service_dir)
    assert comparable(tree_state(site.home)) == comparable(before)
    assert not list(site.home.glob(".allsky-restore-*"))
    assert "Status: FAILED: ArchiveRejected" in logs(site)[0]


def test_restore_logs_of_one_second_never_overwrite_each_other(site: Site) -> None:
    written = [write_log(site.home, [f"restore {n}"]) for n in range(3)]
    assert len(set(written)) == 3 and [p.read_text() for p in written] == [
        "restore 0\n", "restore 1\n", "restore 2\n"]
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o664


def test_cli_checks_dry_run_block_and_restore(site: Site, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALLSKY_HOME", str(site.home))
    monkeypatch.setenv("ALLSKY_BACKUP_DIR", str(site.env.backup_dir))
    monkeypatch.delenv("ALLSKY_IMAGES", raising=False)
    archive = backup(site, "quick", "type: config\n")
    base = ["restore", archive.name.removesuffix(".tar.zst"), "--no-service"]
    assert main(base + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[pass] Archive verifies" in out and "Dry run: nothing was changed" in out
    assert main(base + ["--sections", "core,nope"]) == 21
    assert "[FAIL] Selection not empty: section 'nope'" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal
    assert main(base) == 2 and "needs --yes" in capsys.readouterr().err
    assert main(base + ["--yes", "--no-undo", "--files", "config/overlay/*"]) == 0
    out = capsys.readouterr().out
    assert "Status: SUCCESS" in out and "Restore Mode: advanced" in out and "Restore log:" in out
