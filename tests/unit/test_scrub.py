"""One meaning of "verified": intact, safe and restorable; records in our state folder only."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import sidecar_path
from allsky_tasks.archive.records import STATE, RecordStore, due, parse_duration
from allsky_tasks.archive.safety import Limits
from allsky_tasks.archive.scrub import fresh, scrub
from allsky_tasks.backup import reverify
from allsky_tasks.cli import main
from allsky_tasks.errors import VerifyError
from allsky_tasks.inventory.advice import listing_warnings
from allsky_tasks.inventory.full_read import verify_backup
from allsky_tasks.inventory.listing import info, list_backups, load_record
from allsky_tasks.restore.checks import check_archive, check_metadata
from allsky_tasks.restore.prepare import RestoreOptions
from allsky_tasks.restore.run import restore

from ..conftest import Site, backup, last_read
from .test_safety import _link, config_members, directory, member, metadata_for, write_archive

CONFIG = "type: config\nsections: {databases: true}\n"


def _hostile(dest: Path, name: str, extra: list) -> Path:
    """An Allsky-format config archive whose files list owns up to every member."""
    members = config_members() + extra
    return write_archive(dest / f"allsky-config-backup-{name}.tar.gz", members,
                         metadata_for(members))


HOSTILE = {
    "20260101-000001": [member("../evil.sh", b"#!/bin/sh\n")],
    "20260101-000002": [member("/etc/cron.d/evil", b"* * * * * root sh\n")],
    "20260101-000003": [_link("config/shadow", "/etc/shadow")],
    "20260101-000004": [_link("config/root", "/")],
    "20260101-000005": [directory("config/overlay"),
                        _link("config/overlay/up", "../../../../etc/passwd")],
}


def test_hostile_allsky_archives_are_never_called_verified(site: Site,
                                                           capsys: pytest.CaptureFixture) -> None:
    dest = site.env.backup_dir
    dest.mkdir()
    (dest / STATE).mkdir()
    paths = [_hostile(dest, name, extra) for name, extra in HOSTILE.items()]
    for path in paths:
        with pytest.raises(VerifyError):
            verify_backup(path)
        record = load_record(path)
        assert record.verified is False and record.verify_problems
        shown = info(path)
        assert shown["verify"]["ok"] is False and shown["verify"]["problems"]
    advice = listing_warnings(list_backups(dest), dest, site.home)
    for path in paths:  # never suggested for pinning or copying; each named as not good
        assert not any(f"pin {path.name}" in a.command or f"cp -p {dest}/{path.name}"
                       in a.command for a in advice)
        assert any(path.name in a.message and "not a good backup" in a.message for a in advice)
    assert main(["list", "--dest", str(dest)]) == 0
    table = capsys.readouterr().out
    assert table.count("FAILED") == len(paths) and " yes " not in table
    assert main(["info", "--dest", str(dest), paths[2].name]) == 0
    assert "/etc/shadow" in capsys.readouterr().out  # info shows why


def test_damage_report_tells_the_truth(site: Site) -> None:
    archive = backup(site, "big", "type: images\n")
    size = archive.stat().st_size
    before = json.loads(sidecar_path(archive).read_text())["allskyTasks"]["archive"]["sha256"]
    data = bytearray(archive.read_bytes())
    at = size * 2 // 3
    with open(archive, "r+b") as fh:  # one byte flipped in place: size unchanged
        fh.seek(at)
        fh.write(bytes([data[at] ^ 0x20]))
    with pytest.raises(VerifyError) as err:
        verify_backup(archive)
    text = "\n".join(err.value.problems)
    assert f"of the file's {size} bytes" in text and f"({size} bytes)" in text
    assert before in text  # the expected SHA-256 ...
    import hashlib
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in text  # ... and the actual one
    read_at = int(text.split("found after reading ")[1].split(" ")[0])
    assert at < read_at <= size  # the damage lies before the offset named


def test_foreign_file_and_allsky_sidecar_are_left_byte_identical(site: Site, tmp_path: Path
                                                                  ) -> None:
    ours = backup(site, "quick", CONFIG)
    outside = tmp_path / "downloads"
    outside.mkdir()
    foreign = outside / ours.name
    shutil.copy(ours, foreign)
    before = sorted(os.listdir(outside))
    info(foreign)
    verify_backup(foreign)
    load_record(foreign)
    assert sorted(os.listdir(outside)) == before  # nothing written beside it
    assert load_record(foreign).verified is True  # the record went to the default state folder
    # An Allsky sidecar (as Allsky's Upload writes it) beside our archive, mode 0664.
    side = sidecar_path(ours)
    allsky_side = json.dumps({"backupFile": ours.name, "backupType": "config"}).encode()
    side.write_bytes(allsky_side)
    os.chmod(side, 0o664)
    stamp = side.stat()
    for _ in range(2):
        verify_backup(ours)
        info(ours)
        list_backups(ours.parent)
    assert side.read_bytes() == allsky_side and stat.S_IMODE(side.stat().st_mode) == 0o664
    assert side.stat().st_mtime_ns == stamp.st_mtime_ns
    record = load_record(ours)  # recognised as ours by its content, whatever the sidecar says
    assert (record.kind, record.spec, record.verified) == ("ours", "quick", True)


def test_verified_means_restore_accepts_it(site: Site) -> None:
    for fmt in ("zstd", "allsky"):
        archive = backup(site, f"q-{fmt}", f"{CONFIG}format: {fmt}\n")
        assert verify_backup(archive)["ok"]
        check, report = check_archive(archive, Limits())
        assert check.passed and report is not None
        assert check_metadata(report.metadata, report.entries).passed


def test_unsafe_names_in_the_tree_end_in_a_backup_that_restores(site: Site) -> None:
    images = site.home / "config" / "overlay" / "images"
    (images / "new\nline.png").write_bytes(b"x")
    fd = os.open(os.fsencode(str(images)) + b"/bad\xffname.png", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    os.symlink("loop2", images / "loop2")
    os.symlink("ring-b", images / "ring-a")
    os.symlink("ring-a", images / "ring-b")
    archive = backup(site, "quick", CONFIG)
    assert verify_backup(archive)["ok"]
    check, report = check_archive(archive, Limits())  # what restore runs first
    assert check.passed, check.reason
    summary = restore(archive, site.home, RestoreOptions(dry_run=True, service=None))
    assert summary.dry_run and not summary.error  # every pre-restore check passed
    warnings = json.loads(sidecar_path(archive).read_text())["allskyTasks"]["warnings"]
    for name in ("new\\nline.png", "bad\\udcffname.png", "loop2", "ring-a", "ring-b"):
        assert any(name in w and "not archived" in w for w in warnings), (name, warnings)


def test_verify_all_exits_18_naming_the_damaged_archive(site: Site,
                                                        capsys: pytest.CaptureFixture) -> None:
    good = backup(site, "quick", CONFIG)
    bad = backup(site, "nights", "type: images\nfolders: {last: 1}\n")
    with open(bad, "r+b") as fh:
        fh.seek(bad.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 1]))
    code = main(["verify", "--all", "--dest", str(site.env.backup_dir)])
    out = capsys.readouterr()
    assert code == 18
    assert bad.name in out.err and good.name not in out.err
    lines = out.out.splitlines()
    assert any(line.startswith("FAILED") and bad.name in line for line in lines)
    assert any(line.startswith("ok") and good.name in line for line in lines)
    assert last_read(good)["ok"] is True and last_read(bad)["ok"] is False


def test_stale_reads_are_flagged_in_list(site: Site, capsys: pytest.CaptureFixture) -> None:
    site.spec("quick", CONFIG + "verify: {every: 7d}\n")
    archive = backup(site, "quick", CONFIG + "verify: {every: 7d}\n")
    verify_backup(archive)
    store = RecordStore(archive.parent / STATE)
    rec = store.get(archive)
    store.put(archive, {**rec, "epoch": rec["epoch"] - 8 * 86400})  # as if 8 days had passed
    os.environ["ALLSKY_SPECS_DIR"] = str(site.env.specs_dir)
    try:
        assert main(["list", "--dest", str(archive.parent)]) == 0
    finally:
        del os.environ["ALLSKY_SPECS_DIR"]
    assert "STALE" in capsys.readouterr().out


def test_durations_and_rotation_oldest_read_first(site: Site) -> None:
    assert parse_duration("7d") == 7 * 86400 and parse_duration("1h30m") == 5400
    with pytest.raises(ValueError):
        parse_duration("soon")
    archives = [backup(site, f"s{i}", CONFIG) for i in range(3)]
    dest = archives[0].parent
    store = RecordStore(dest / STATE)
    for i, path in enumerate(archives):
        rec = verify_backup(path)
        store.put(path, {**rec, "spec": "quick", "epoch": rec["epoch"] - (10 + i) * 86400})
    order = due(archives, store, 7 * 86400)
    assert order == archives[::-1]  # the longest unread first
    ticks = iter(range(0, 1000, 100))  # each look at the clock: 100 s later

    def check(path: Path, facts: dict) -> dict:
        return scrub(path, facts)

    out = reverify.run(dest, "quick", {"every": "7d", "max_duration": "250s"}, [], check,
                       lambda p: {}, clock=lambda: next(ticks))
    assert [Path(r["archive"]) for r in out.read] == archives[::-1][:2]
    assert out.left == [archives[0].name]
    assert due(archives, store, 7 * 86400) == [archives[0]]  # the next run starts there


def test_fresh_check_after_pack_proves_the_medium_and_the_headers(site: Site) -> None:
    archive = backup(site, "nights", "type: images\nfolders: {last: 1}\n")
    facts = json.loads(sidecar_path(archive).read_text())["allskyTasks"]["archive"]
    written = {"sha256": facts["sha256"], "sizeBytes": facts["sizeBytes"]}
    result = fresh(archive, written)
    assert result["ok"] and result["method"].startswith("fresh")
    assert result["sha256"] == facts["sha256"]
    with pytest.raises(VerifyError) as err:  # what was written is not what pack computed
        fresh(archive, {**written, "sha256": "0" * 64})
    assert any("expected " + "0" * 64 in p for p in err.value.problems)
    for at in (0.3, 0.97):  # one byte flipped on the medium, anywhere
        copy = archive.with_name(f"allsky-images-backup-2026010{int(at * 10)}-000000.tar.zst")
        data = bytearray(archive.read_bytes())
        data[int(len(data) * at)] ^= 0x40
        copy.write_bytes(bytes(data))
        with pytest.raises(VerifyError):
            fresh(copy, written)


def test_fresh_check_of_members_larger_than_the_header_window(site: Site) -> None:
    (site.home / "darks").mkdir(exist_ok=True)
    (site.home / "darks" / "big.raw").write_bytes(os.urandom(6 << 20))  # past the 3 MiB header window
    archive = backup(site, "darks", "type: config\nsections: {darks: true}\n")
    facts = json.loads(sidecar_path(archive).read_text())["allskyTasks"]["archive"]
    assert fresh(archive, {"sha256": facts["sha256"], "sizeBytes": facts["sizeBytes"]})["ok"]
