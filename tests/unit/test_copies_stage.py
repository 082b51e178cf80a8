"""The copy stage on a plain folder target: records, resume, damage, prune at the target."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.copies import records
from allsky_tasks.copies.path import PathTarget, hidden_name
from allsky_tasks.copies.prune import plan_target_prune, prune_target
from allsky_tasks.copies.stage import copy_archive, verify_copy
from allsky_tasks.errors import CopyError


def _archive(folder: Path, day: int, size: int = 300_000, pinned: bool = False
             ) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"allsky-config-backup-202601{day:02d}-120000.tar.zst"
    data = os.urandom(size)
    path.write_bytes(data)
    side = path.with_name(path.name.replace(".tar.zst", ".json"))
    side.write_text(json.dumps({"allskyTasks": {"pinned": pinned}}))
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict, PathTarget]:
    item = {"name": "disk", "path": str(tmp_path / "target"), "must_be_mounted": False}
    return tmp_path / "backups", item, PathTarget(item, {"home": tmp_path / "allsky"})


def test_copy_records_and_skips_what_is_there(setup) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1)
    moved: list[int] = []
    entry = copy_archive(target, item, archive, archive.with_suffix("").with_suffix(".json"),
                         sha, "cfg", moved.append)
    assert sum(moved) == archive.stat().st_size and entry["method"] == "read back"
    assert (target.folder / archive.name).read_bytes() == archive.read_bytes()
    assert records.copy_is_current(records.load(backups, "cfg", "disk")["copies"][archive.name],
                                   archive, sha)
    moved.clear()
    again = copy_archive(target, item, archive, None, sha, "cfg", moved.append)
    assert again["method"] == "already there" and moved == []


def test_resume_keeps_a_matching_partial_and_restarts_a_wrong_one(setup) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1, size=3_000_000)
    target.folder.mkdir(parents=True)
    partial = target.folder / hidden_name(archive.name)
    partial.write_bytes(archive.read_bytes()[:1_000_000])
    moved: list[int] = []
    copy_archive(target, item, archive, None, sha, "cfg", moved.append)
    assert moved[0] == 1_000_000  # the kept prefix counts once, the rest is written
    assert (target.folder / archive.name).read_bytes() == archive.read_bytes()
    assert not partial.exists()
    (target.folder / archive.name).unlink()
    records.save(backups, {"spec": "cfg", "target": "disk", "copies": {}})
    partial.write_bytes(b"x" * 1_000_000)  # not the archive's bytes: start again
    copy_archive(target, item, archive, None, sha, "cfg", lambda n: None)
    assert (target.folder / archive.name).read_bytes() == archive.read_bytes()


def test_damaged_local_archive_is_not_published(setup) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1)
    data = bytearray(archive.read_bytes())
    data[10] ^= 1
    archive.write_bytes(bytes(data))  # changed after verify recorded `sha`
    with pytest.raises(CopyError) as err:
        copy_archive(target, item, archive, None, sha, "cfg", lambda n: None)
    assert "disk" in str(err.value) and "damaged" in str(err.value)
    assert list(target.folder.iterdir()) == []


def test_foreign_file_under_our_name_is_left_alone(setup) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1)
    target.folder.mkdir(parents=True)
    (target.folder / archive.name).write_bytes(b"someone else's")
    with pytest.raises(CopyError, match="not written by this tool"):
        copy_archive(target, item, archive, None, sha, "cfg", lambda n: None)
    assert (target.folder / archive.name).read_bytes() == b"someone else's"


def test_prune_at_target_keeps_newest_pinned_and_foreign(setup) -> None:
    backups, item, target = setup
    made = [_archive(backups, day, 1000, pinned=(day == 1)) for day in range(1, 6)]
    for archive, sha in made:
        side = archive.with_name(archive.name.replace(".tar.zst", ".json"))
        copy_archive(target, item, archive, side, sha, "cfg", lambda n: None)
    (target.folder / "notes.txt").write_text("mine")
    (target.folder / "allsky-config-backup-20250101-000000.tar.zst").write_bytes(b"old, not ours")
    plan = {d.archive[21:29]: (d.delete, d.reason) for d in
            plan_target_prune(backups, "disk", "cfg", 2)}
    assert plan["20260105"] == (False, "one of the newest 2")
    assert plan["20260101"] == (False, "pinned")
    assert plan["20260102"][0] and plan["20260103"][0]
    deleted = prune_target(target, backups, "cfg", 2)
    assert sorted(d[21:29] for d in deleted) == ["20260102", "20260103"]
    left = sorted(p.name for p in target.folder.iterdir())
    assert "notes.txt" in left and "allsky-config-backup-20250101-000000.tar.zst" in left
    assert not any("20260102" in n or "20260103" in n for n in left)
    assert any(n.endswith("20260101-120000.json") for n in left)
    assert set(records.load(backups, "cfg", "disk")["copies"]) == {a.name for a, _ in made} - {
        made[1][0].name, made[2][0].name}


def test_prune_never_deletes_the_newest_verified_copy(setup) -> None:
    backups, item, target = setup
    made = [_archive(backups, day, 1000) for day in (1, 2, 3)]
    for archive, sha in made:
        copy_archive(target, item, archive, None, sha, "cfg", lambda n: None)
    (target.folder / made[2][0].name).write_bytes(b"broken")
    (target.folder / made[1][0].name).write_bytes(b"broken")
    assert verify_copy(target, backups, made[2][0].name)["ok"] is False
    assert verify_copy(target, backups, made[1][0].name)["ok"] is False
    plan = {d.archive: d for d in plan_target_prune(backups, "disk", "cfg", 1)}
    assert plan[made[0][0].name].reason == "newest verified copy"
    assert not plan[made[0][0].name].delete


def test_sidecar_failure_keeps_the_verified_archive_and_the_next_run_sends_only_the_sidecar(
        setup) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1)
    side = archive.with_name(archive.name.replace(".tar.zst", ".json"))
    target.folder.mkdir(parents=True)
    blocker = target.folder / hidden_name(side.name)
    blocker.mkdir()  # the sidecar cannot be written
    with pytest.raises(CopyError) as err:
        copy_archive(target, item, archive, side, sha, "cfg", lambda n: None)
    assert "disk" in str(err.value)
    entry = records.load(backups, "cfg", "disk")["copies"][archive.name]
    assert entry["ok"] is False and entry["archiveVerifiedAt"]
    assert not records.copy_is_current(entry, archive, sha)  # the copy task runs again
    blocker.rmdir()
    moved: list[int] = []
    again = copy_archive(target, item, archive, side, sha, "cfg", moved.append)
    assert again["method"] == "already there" and again["ok"] is True and moved == []
    assert (target.folder / side.name).read_bytes() == side.read_bytes()


def test_the_older_one_file_per_target_records_move_to_one_file_per_spec(
        setup: tuple[Path, dict[str, Any], PathTarget]) -> None:
    backups, item, target = setup
    (a, sha_a), (b, sha_b) = _archive(backups, 1), _archive(backups, 2)
    for archive, sha, spec in ((a, sha_a, "cfg"), (b, sha_b, "other")):
        copy_archive(target, item, archive, None, sha, spec, lambda n: None)
    # The layout before: both specs' entries in one disk.json.
    old = records.legacy_path(backups, "disk")
    entries = {**records.load(backups, "cfg", "disk")["copies"],
               **records.load(backups, "other", "disk")["copies"]}
    old.write_text(json.dumps({"target": "disk", "config": item, "copies": entries}))
    for spec in ("cfg", "other"):
        records.record_path(backups, spec, "disk").unlink()
    assert set(records.load(backups, "cfg", "disk")["copies"]) == {a.name}
    assert set(records.load(backups, "other", "disk")["copies"]) == {b.name}
    again = copy_archive(target, item, a, None, sha_a, "cfg", lambda n: None)
    assert again["method"] == "already there"  # migrated, not sent again
    assert set(json.loads(old.read_text())["copies"]) == {b.name}
    copy_archive(target, item, b, None, sha_b, "other", lambda n: None)
    assert not old.exists()
    assert {r["spec"] for r in records.all_records(backups)} == {"cfg", "other"}


def test_a_copy_record_that_is_not_ours_counts_as_absent(
        setup: tuple[Path, dict[str, Any], PathTarget]) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1)
    copy_archive(target, item, archive, None, sha, "cfg", lambda n: None)
    path = records.record_path(backups, "cfg", "disk")
    path.chmod(0o666)
    assert records.load(backups, "cfg", "disk")["copies"] == {}
    os.chown(path, 4321, 4321)
    path.chmod(0o640)
    assert records.load(backups, "cfg", "disk")["copies"] == {}


def test_a_damaged_record_entry_is_checked_against_the_copied_sidecar(
        setup: tuple[Path, dict[str, Any], PathTarget]) -> None:
    backups, item, target = setup
    archive, sha = _archive(backups, 1, 1000)
    side = archive.with_name(archive.name.replace(".tar.zst", ".json"))
    side.write_text(json.dumps({"allskyTasks": {"archive": {"sha256": sha}}}))
    copy_archive(target, item, archive, side, sha, "cfg", lambda n: None)
    record = records.load(backups, "cfg", "disk")
    record["copies"][archive.name] = "damaged"  # the state folder may be a shared stick
    records.save(backups, record)
    result = verify_copy(target, backups, archive.name)
    assert result["ok"] is True and result["method"].endswith("(vs the sidecar)")
