"""Pre-restore checks and the selection of sections, folders and files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from allsky_tasks.archive.members import Member
from allsky_tasks.archive.safety import Limits
from allsky_tasks.restore.checks import (
    check_archive,
    check_camera,
    check_metadata,
    check_modules,
    check_selection,
    check_space,
    check_target,
    check_version,
)
from allsky_tasks.restore.selection import EXTRA, Selection, section_of, select

from ..conftest import Site, backup
from .test_extract import allsky_meta, folder, raw, write_tar

META = {"settingsfile": "config/settings_RPi_HQ.json", "ccfile": "config/cc_RPi_HQ.json",
        "backupType": "config", "cameratype": "RPi", "cameramodel": "HQ"}


def m(path: str, kind: str = "file", size: int = 1) -> Member:
    """A member record."""
    return Member(path, kind, size if kind == "file" else 0, "0644", 0, 0, 0)


@pytest.mark.parametrize("path, key", [
    ("config/settings_RPi_HQ.json", "core"), ("config/settings_ZWO_X.json", "cameras"),
    ("config/overlay/myTemplates/a.json", "core"), ("env.json", "core"),
    ("config/myFiles/allsky.db", "databases"), ("config/myFiles/modules/allsky_x.py", "modules"),
    ("config/myFiles", "myfiles"), ("config/myFiles/notificationImages/a.png", "myfiles"),
    ("config/settings_a/b.json", EXTRA), ("config/overlay/system_fonts/x.ttf", EXTRA),
    ("darks/d.png", "darks"), ("config/ssl/k.pem", "ssl"),
])
def test_members_map_to_sections_by_the_table(path: str, key: str) -> None:
    assert section_of(path, META) == key


def test_normal_config_selection_defaults_to_every_declared_section() -> None:
    entries = [m("config/settings_RPi_HQ.json"), m("env.json"), m("config/myFiles/allsky.db"),
               m("config/myFiles/modules/allsky_x.py"), m("config/ssl/k.pem")]
    meta = {**META, "includedSections": [{"key": "core"}, {"key": "databases"}],
            "includedOptionalTargets": ["databases", "modules"]}
    sel = select(meta, entries)
    assert sel.mode == "normal" and sel.available == ["core", "databases", "modules"]
    # config/ssl is in the archive but no section the metadata declares: never restored.
    assert sel.paths == {e.path for e in entries} - {"config/ssl/k.pem"}
    assert select(meta, entries, sections=["modules"]).paths == {
        "config/myFiles/modules/allsky_x.py"}
    bad = select(meta, entries, sections=["ssl"], folders=["20260303"])
    assert any("'ssl' is not in this backup" in p for p in bad.problems)
    assert any("--folders is for images" in p for p in bad.problems)
    ours = {**META, "allskyTasks": {"sections": ["core", "ssl"]}}
    assert select(ours, entries).available == ["core", "ssl"]


def test_images_selection_by_folder_never_takes_the_root() -> None:
    entries = [m("images", "dir"), m("images/20260303", "dir"), m("images/20260303/a.jpg"),
               m("images/test_x", "dir"), m("images/test_x/b.jpg"), m("images/loose.jpg")]
    meta = {"backupType": "images"}
    sel = select(meta, entries)
    assert sel.available == ["20260303", "test_x"] and "images" not in sel.paths
    assert "images/loose.jpg" in sel.paths
    only = select(meta, entries, folders=["test_x"])
    assert only.paths == {"images/test_x", "images/test_x/b.jpg"}
    assert select(meta, entries, folders=["2099"]).problems


def test_advanced_selection_by_names_and_globs() -> None:
    entries = [m("config/overlay", "dir"), m("config/overlay/a.json"), m("config/overlay/b.png"),
               m("env.json")]
    sel = select(META, entries, files=["config/overlay/*.json", "env.json"])
    assert sel.mode == "advanced" and sel.paths == {"config/overlay/a.json", "env.json"}
    assert select(META, entries, files=["config/overlay"]).paths == {
        "config/overlay", "config/overlay/a.json", "config/overlay/b.png"}
    assert "matches nothing" in select(META, entries, files=["nope*"]).problems[0]


def test_selection_check_blocks_on_empty_or_unknown() -> None:
    assert check_selection(Selection("config", "normal", ["core"], ["core"], [m("env.json")])
                           ).passed
    empty = check_selection(Selection("config", "normal", [], [], [m("config/x", "dir")]))
    assert empty.blocks and "no files" in empty.reason


def test_metadata_check_names_bad_camera_files() -> None:
    members = [raw("config/settings_RPi_HQ.json", b"{}"), raw("config/cc_RPi_HQ.json", b"{}"),
               raw("env.json", b"{}")]
    entries = [m(i.name) for i, _ in members]
    assert check_metadata(allsky_meta(members), entries).passed
    bad = check_metadata(allsky_meta(members, settingsfile="env.json"), entries)
    assert bad.blocks and "settingsfile 'env.json'" in bad.reason


def test_camera_check_blocks_a_mismatch_unless_forced(site: Site) -> None:
    sel = Selection("config", "normal", ["core"], ["core"], [m("config/settings_ZWO_A.json")])
    zwo = {**META, "cameratype": "ZWO", "cameramodel": "A",
           "settingsfile": "config/settings_ZWO_A.json"}
    check = check_camera(zwo, site.home, sel, force=False)
    assert check.blocks and "backup camera is 'ZWO A', current camera is 'RPi HQ'" in check.reason
    forced = check_camera(zwo, site.home, sel, force=True)
    assert not forced.passed and not forced.blocks and "--force-camera" in forced.reason
    assert check_camera(zwo, site.home, Selection("config", "normal", [], [], [m("env.json")]),
                        force=False).passed  # camera files not restored
    assert check_camera(META, site.home, Selection(
        "config", "normal", [], [], [m("config/settings_RPi_HQ.json")]), False).passed


def _flow_archive(tmp_path: Path, module: str) -> Path:
    """A valid Allsky-style config archive whose night flow names `module` (list form)."""
    flow = json.dumps([{"module": module, "enabled": False}]).encode()
    members = [raw("config/settings_RPi_HQ.json", b"{}"), raw("config/cc_RPi_HQ.json", b"{}"),
               raw("env.json", b"{}"), folder("config/modules"),
               raw("config/modules/postprocessing_nightday.json", flow)]
    return write_tar(tmp_path / "flows.tar.gz", members, allsky_meta(members))


def test_module_check_reads_every_flow_and_every_place(site: Site, tmp_path: Path) -> None:
    legacy = tmp_path / "opt-allsky-modules"
    legacy.mkdir()
    archive = _flow_archive(tmp_path, "allsky_legacy.py")
    check, report = check_archive(archive, Limits())
    assert check.passed and report is not None
    sel = select(report.metadata, report.entries)
    missing = check_modules(archive, report, sel, site.home, legacy, Limits())
    assert missing.blocks and "allsky_legacy.py" in missing.reason  # disabled still counts
    (legacy / "allsky_legacy.py").write_text("")
    assert check_modules(archive, report, sel, site.home, legacy, Limits()).passed
    core = _flow_archive(tmp_path, "allsky_overlay.py")  # scripts/modules of the demo tree
    check, report = check_archive(core, Limits())
    assert check_modules(core, report, select(report.metadata, report.entries), site.home,
                         tmp_path / "none", Limits()).passed


def test_archive_check_reports_the_safety_reason(tmp_path: Path) -> None:
    bad = write_tar(tmp_path / "bad.tar.gz", [raw("../x", b"x")], {"backupType": "config"})
    check, report = check_archive(bad, Limits())
    assert check.blocks and report is None and "'..'" in check.reason


def test_archive_check_compares_the_sidecar(site: Site) -> None:
    archive = backup(site, "quick", "type: config\n")
    check, _ = check_archive(archive, Limits())
    assert check.passed and "manifest" in check.reason
    sidecar = archive.with_name(archive.name.replace(".tar.zst", ".json"))
    data = json.loads(sidecar.read_text())
    data["allskyTasks"]["archive"]["sha256"] = "0" * 64
    sidecar.write_text(json.dumps(data))
    check, _ = check_archive(archive, Limits())
    assert check.blocks and "sidecar" in check.reason


def test_space_and_version_checks(site: Site) -> None:
    huge = Selection("images", "normal", [], [], [m("images/a/b", size=1 << 62)])
    assert check_space(huge, site.home).blocks
    assert check_space(Selection("config", "normal", [], [], [m("env.json")]), site.home).passed
    other = check_version({"version": "v2024.12.06"}, site.home)
    assert not other.passed and not other.blocks
    assert os.path.exists(site.home / "version")


def test_target_checks_refuse_a_missing_home_or_an_unmounted_images_link(tmp_path: Path) -> None:
    assert check_target(tmp_path / "nope", None).blocks
    assert check_target(tmp_path, None).passed
    os.symlink(tmp_path / "usb-not-mounted", tmp_path / "images")
    dangling = check_target(tmp_path, tmp_path / "images")
    assert dangling.blocks and "not mounted" in dangling.reason
    assert check_target(tmp_path, tmp_path / "fresh").passed  # made by the restore
