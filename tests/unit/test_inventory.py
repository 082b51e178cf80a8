"""Inventory: listing (sidecars first, archives as fallback), warnings, info, verify, delete."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import read_sidecar, sidecar_path
from allsky_tasks.cli import main
from allsky_tasks.errors import InventoryError, VerifyError
from allsky_tasks.inventory.advice import listing_warnings
from allsky_tasks.inventory.full_read import verify_backup
from allsky_tasks.inventory.listing import delete_backup, info, list_backups, load_record, resolve
from allsky_tasks.inventory.retention import set_pinned

from ..conftest import Site, archive_metadata, backup
from .test_safety import FIXTURES, good_config

ALLSKY_MADE = sorted(FIXTURES.glob("*.tar.gz")) if FIXTURES.exists() else []
CONFIG = "type: config\nsections: {databases: true}\n"


@pytest.fixture
def filled(site: Site) -> Site:
    """Two config backups of ours (zstd, gzip), one images backup, plus clutter."""
    backup(site, "quick", CONFIG)
    backup(site, "compat", "type: config\nformat: allsky\n")
    backup(site, "nights", "type: images\nfolders: {last: 1}\n")
    dest = site.env.backup_dir
    for clutter in (".allsky-config-backup-20990101-000000.tar.zst.part", ".import-1-ab.part",
                    ".hidden.tar.gz", "notes.txt", "orphan.json"):
        (dest / clutter).write_bytes(b"not an archive")
    return site


def test_list_groups_newest_first_and_skips_clutter(filled: Site) -> None:
    records = list_backups(filled.env.backup_dir)
    assert [r.type for r in records] == ["config", "config", "images"]
    assert records[0].timestamp >= records[1].timestamp
    assert {r.spec for r in records} == {"quick", "compat", "nights"}
    assert all(r.source == "sidecar" and r.kind == "ours" and not r.problem for r in records)
    config = records[0]
    assert (config.cameratype, config.cameramodel, config.version) == ("RPi", "HQ",
                                                                      "v2025.xx.xx")
    assert records[2].cameratype == records[2].cameramodel == "N/A"
    assert records[0].verified is None and not records[0].pinned


def test_allsky_archive_without_sidecar_is_read_and_cached(site: Site) -> None:
    dest = site.env.backup_dir
    dest.mkdir()
    for src in ALLSKY_MADE:
        shutil.copy(src, dest / src.name)  # no sidecar: as if Allsky never wrote one
    first = {r.name: r for r in list_backups(dest)}
    assert {r.source for r in first.values()} == {"archive"}
    assert not any(sidecar_path(dest / src.name).exists() for src in ALLSKY_MADE)  # Allsky's
    cached = json.loads((dest / ".allsky-tasks" / "archive-metadata.json").read_text())
    for src in ALLSKY_MADE:
        entry = cached["archives"][src.name]
        assert entry["facts"]["sizeBytes"] == src.stat().st_size
        assert entry["identity"]["inode"] == (dest / src.name).stat().st_ino
        expected = json.loads(sidecar_path(src).read_text())
        assert entry["metadata"]["created"] == expected["created"]
    second = {r.name: r for r in list_backups(dest)}
    for name, record in second.items():
        assert (record.type, record.created, record.spec) == (first[name].type,
                                                               first[name].created, "allsky")


def test_damaged_archive_is_listed_with_its_problem_and_not_cached(site: Site) -> None:
    ours = backup(site, "quick", CONFIG)
    damaged = ours.with_name("allsky-config-backup-20260101-000000.tar.zst")
    damaged.write_bytes(ours.read_bytes()[:-100])
    record = load_record(damaged)
    assert record.type == "config" and record.problem and "damaged" in record.problem
    assert not sidecar_path(damaged).exists()
    advice = listing_warnings(list_backups(site.env.backup_dir), site.env.backup_dir,
                              site.home)
    assert any(damaged.name in a.message and "delete" in a.command for a in advice)


def test_warnings_each_name_their_fix(site: Site, tmp_path: Path) -> None:
    dest = site.env.backup_dir
    assert "no backups" in listing_warnings([], dest, site.home)[0].message
    backup(site, "nights", "type: images\nfolders: {last: 1}\n")
    only_images = listing_warnings(list_backups(dest), dest, site.home)
    assert "only images" in only_images[0].message and "run backup" in only_images[0].command
    archive = backup(site, "quick", CONFIG)
    pin = next(a for a in listing_warnings(list_backups(dest), dest, site.home)
               if "pinned" in a.message)
    # Never verified: never suggested for pinning; the fix verifies first.
    assert archive.name not in pin.command and pin.command == "allsky-tasks verify --all"
    verify_backup(archive)
    set_pinned(archive, True)
    records = list_backups(dest)
    now = max(r.timestamp for r in records)  # the backup's own time, not the clock's
    assert not any("pinned" in a.message for a in listing_warnings(records, dest, site.home))
    old = listing_warnings(records, dest, site.home, max_age_days=30, now=now + 31 * 86400)
    assert any("31 days old" in a.message for a in old)
    assert not any("days old" in a.message for a in listing_warnings(records, dest, site.home))
    same = [a for a in old if "same filesystem" in a.message]
    assert same and "cp -p" in same[0].command and archive.name in same[0].command
    # /proc is always another filesystem: no off-device warning then.
    elsewhere = listing_warnings(records, dest, Path("/proc"))
    assert not any("same filesystem" in a.message for a in elsewhere)


def test_resolve_names_stems_and_paths(filled: Site) -> None:
    dest = filled.env.backup_dir
    archive = list_backups(dest)[0].path
    assert resolve(archive.name, dest) == archive
    assert resolve(archive.name.split(".tar")[0], dest) == archive
    assert resolve(str(archive), Path("/nonexistent")) == archive
    for bad in ("..", ".", ".hidden.tar.gz", "nope", "../" + archive.name, "orphan.json"):
        with pytest.raises(InventoryError):
            resolve(bad, dest)


def test_verify_records_success_and_failure(site: Site) -> None:
    archive = backup(site, "quick", CONFIG)
    side = sidecar_path(archive).read_bytes()
    result = verify_backup(archive)
    assert result["ok"] and result["kind"] == "ours"
    assert sidecar_path(archive).read_bytes() == side  # records live in our state folder
    records = json.loads((archive.parent / ".allsky-tasks" / "verify.json").read_text())
    assert records["archives"][archive.name]["ok"] is True
    assert load_record(archive).verified is True
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x02
    archive.write_bytes(bytes(data))
    assert load_record(archive).verified is None  # another file now: the old read says nothing
    with pytest.raises(VerifyError):
        verify_backup(archive)
    assert load_record(archive).verified is False
    assert "verify" not in read_sidecar(archive)["allskyTasks"]


def test_verify_of_an_allsky_style_archive_checks_the_files_list(tmp_path: Path) -> None:
    dest = tmp_path / "allskybackups"
    dest.mkdir()
    good = good_config(dest / "allsky-config-backup-20260101-000000.tar.gz")
    assert verify_backup(good)["kind"] == "allsky"
    liar = good_config(dest / "allsky-config-backup-20260102-000000.tar.gz",
                       files=["env.json", "config/missing.json"])
    with pytest.raises(VerifyError) as err:
        verify_backup(liar)
    assert any("config/missing.json" in p for p in err.value.problems)
    assert load_record(liar).verified is False


def test_info_shows_sections_databases_and_counts(site: Site) -> None:
    archive = backup(site, "quick", CONFIG)
    shown = info(archive)
    meta = archive_metadata(archive)
    assert shown["sections"] == ["core", "databases"]
    assert shown["databases"][0]["path"] == "config/myFiles/allsky.db"
    assert shown["files"] == meta["allskyTasks"]["totals"]["files"]
    assert shown["requiredModules"] == meta["requiredModules"]
    assert shown["estimate"] is None and shown["size"] == archive.stat().st_size
    assert shown["spec"] == "quick" and shown["verify"] is None


def test_delete_removes_archive_and_sidecar(site: Site) -> None:
    archive = backup(site, "quick", CONFIG)
    assert delete_backup(archive) == [archive.name, sidecar_path(archive).name]
    assert not archive.exists() and not sidecar_path(archive).exists()
    assert list_backups(site.env.backup_dir) == []


def _cli(site: Site, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """Run the CLI with the site's environment."""
    for key, value in site.environ().items():
        if key.startswith("ALLSKY_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("ALLSKY_IMAGES", raising=False)
    return main(list(argv))


def test_cli_list_table_json_info_and_delete(filled: Site, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(filled, monkeypatch, "list") == 0
    out = capsys.readouterr().out
    assert "Config Backups (2)" in out and "Images Backups (1)" in out
    for column in ("Backup Date/Time", "Camera Model", "Size", "Pinned", "Verified", "Spec"):
        assert column in out
    assert " KB " in out and "WARNING: No pinned known-good config backup." in out
    assert _cli(filled, monkeypatch, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["backups"]) == 3 and listed["warnings"]
    name = listed["backups"][0]["name"]
    assert _cli(filled, monkeypatch, "info", name) == 0
    assert "Sections:" in capsys.readouterr().out
    assert _cli(filled, monkeypatch, "info", name, "--json") == 0
    assert json.loads(capsys.readouterr().out)["name"] == name
    assert _cli(filled, monkeypatch, "verify", name) == 0
    assert "ok" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    assert _cli(filled, monkeypatch, "delete", name) == 1
    assert (filled.env.backup_dir / name).exists()
    assert _cli(filled, monkeypatch, "pin", name) == 0
    assert _cli(filled, monkeypatch, "delete", name, "--yes") == 20  # pinned: needs --force
    assert "is pinned as known-good; not deleted" in capsys.readouterr().err
    assert (filled.env.backup_dir / name).exists()
    assert _cli(filled, monkeypatch, "delete", name, "--yes", "--force") == 0
    assert not (filled.env.backup_dir / name).exists()
    assert _cli(filled, monkeypatch, "info", "../etc/passwd") == 20


def test_listing_many_archives_is_fast(site: Site) -> None:
    archive = backup(site, "quick", "type: config\n")
    dest = site.env.backup_dir
    side = sidecar_path(archive)
    for i in range(200):
        copy = dest / f"allsky-config-backup-20250101-{i:06d}.tar.zst"
        os.link(archive, copy)
        os.link(side, sidecar_path(copy))
    started = time.monotonic()
    records = list_backups(dest)
    elapsed = time.monotonic() - started
    assert len(records) == 201
    assert elapsed < 5, elapsed
