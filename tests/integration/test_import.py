"""Import: every hostile archive is refused and leaves nothing behind; good ones are stored."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import read_sidecar, sidecar_path
from allsky_tasks.archive.safety import Limits
from allsky_tasks.cli import main
from allsky_tasks.errors import InventoryError, UnsafeArchiveError
from allsky_tasks.inventory.full_read import verify_backup
from allsky_tasks.inventory.importer import import_archive, safe_stem
from allsky_tasks.inventory.listing import info, list_backups

from ..conftest import Site, backup, last_read
from ..unit.test_safety import CASES, FIXTURES, Case, bomb, good_config, many_members_tar, member

ALLSKY_MADE = sorted(FIXTURES.glob("*.tar.gz")) if FIXTURES.exists() else []


def _refused(src: Path, dest: Path, limits: Limits = Limits()) -> UnsafeArchiveError:
    """Import must fail and leave the destination exactly as it was (here: empty)."""
    before = sorted(os.listdir(dest)) if dest.exists() else []
    with pytest.raises(UnsafeArchiveError) as err:
        import_archive(src, dest, limits)
    after = sorted(os.listdir(dest)) if dest.exists() else []
    assert after == before, "a rejected import left files behind"
    return err.value


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_archive_is_not_stored(tmp_path: Path, case: Case) -> None:
    _, build, reason, _ = case
    src_dir = tmp_path / "upload"
    src_dir.mkdir()
    err = _refused(build(src_dir), tmp_path / "allskybackups")
    assert reason in str(err)


@pytest.mark.parametrize("fmt,frames", [("allsky", 64), ("zstd", 8192)])
def test_bomb_import_is_refused_quickly(tmp_path: Path, fmt: str, frames: int) -> None:
    src = bomb(tmp_path / ("bomb.tar.zst" if fmt == "zstd" else "bomb.tar.gz"), fmt, frames)
    dest = tmp_path / "allskybackups"
    started = time.monotonic()
    err = _refused(src, dest)
    assert time.monotonic() - started < 2.0
    assert "decompression bomb" in str(err)


def test_many_members_import_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "many.tar.gz"
    src.write_bytes(gzip.compress(many_members_tar(100_000) + b"\0" * 1024, 1))
    err = _refused(src, tmp_path / "allskybackups", Limits(max_members=10_000))
    assert "more than 10000 members" in str(err)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_archive_import_is_refused(site: Site, tmp_path: Path, damage: str) -> None:
    ours = backup(site, "cfg", "type: config\n")
    data = bytearray(ours.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x01
    src = tmp_path / f"damaged{''.join(ours.suffixes)}"
    src.write_bytes(bytes(data))
    _refused(src, tmp_path / "elsewhere")


def test_our_archive_imports_with_sidecar_and_modes(site: Site, tmp_path: Path) -> None:
    ours = backup(site, "cfg", "type: config\nsections: {modules: true}\n")
    upload = tmp_path / "upload"
    upload.mkdir()
    src = upload / ours.name
    shutil.copy(ours, src)
    dest = tmp_path / "imported"
    result = import_archive(src, dest)
    assert result.path == dest / ours.name and result.report.kind == "ours"
    assert result.path.read_bytes() == ours.read_bytes()
    for path in (result.path, result.sidecar):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    side = read_sidecar(result.path)
    imported = side["allskyTasks"]["imported"]
    assert imported["sha256"] == result.report.sha256 and imported["from"] == str(src)
    assert side["allskyTasks"]["archive"]["sizeBytes"] == ours.stat().st_size
    assert sorted(os.listdir(dest)) == sorted([".allsky-tasks", ours.name,
                                               sidecar_path(ours).name])
    assert last_read(result.path)["ok"] is True  # the import's full check, in our state folder
    assert verify_backup(result.path)["ok"]


def test_names_are_sanitised_and_never_overwrite(tmp_path: Path) -> None:
    src = good_config(tmp_path / "My Backup (1).TAR.GZ")
    dest = tmp_path / "allskybackups"
    first = import_archive(src, dest).path
    (tmp_path / "other").mkdir()
    other = good_config(tmp_path / "other" / src.name, created="2026-03-11 00:00:00")  # another backup
    second = import_archive(other, dest).path
    assert first.name == "My_Backup__1_.tar.gz" and second.name == "My_Backup__1_-1.tar.gz"
    (dest / "x.tar.zst").write_bytes(b"taken")  # a .tar.zst of the same stem blocks .tar.gz too
    x = good_config(tmp_path / "x.tar.gz", created="2026-03-12 00:00:00")
    assert import_archive(x, dest).path.name == "x-1.tar.gz"
    assert safe_stem(".hidden name.tar.zst") == ("hidden_name", ".tar.zst")
    assert safe_stem(".tar.gz") == ("imported", ".tar.gz")


def test_sidecar_does_not_trust_the_archives_own_status(tmp_path: Path) -> None:
    forged = {"pinned": True, "verify": {"ok": True, "verifiedAt": "forever"},
              "archive": {"sha256": "0" * 64}, "imported": {"from": "nowhere"}}
    src = good_config(tmp_path / "forged.tar.gz", allskyTasks=forged)
    result = import_archive(src, tmp_path / "allskybackups")
    ours = read_sidecar(result.path)["allskyTasks"]
    assert ours.get("pinned") is None and ours["archive"]["sha256"] == result.report.sha256
    assert ours["imported"]["from"] == str(src) and ours["verify"]["verifiedAt"] != "forever"
    assert not list_backups(tmp_path / "allskybackups")[0].pinned


def test_missing_or_special_source_is_an_inventory_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError):
        import_archive(tmp_path / "nope.tar.gz", tmp_path / "dest")
    fifo = tmp_path / "pipe.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(InventoryError):
        import_archive(fifo, tmp_path / "dest")


def test_stale_temp_of_a_killed_import_is_cleaned(tmp_path: Path) -> None:
    dest = tmp_path / "allskybackups"
    dest.mkdir()
    stale = dest / ".import-999999999-abcd.part"  # no such pid
    stale.write_bytes(b"half")
    import_archive(good_config(tmp_path / "c.tar.gz"), dest)
    assert not stale.exists()


def test_allsky_made_archives_import_list_show_and_verify(tmp_path: Path) -> None:
    dest = tmp_path / "allskybackups"
    for src in ALLSKY_MADE:
        assert import_archive(src, dest).path.name == src.name
    records = {r.name: r for r in list_backups(dest)}
    assert set(records) == {p.name for p in ALLSKY_MADE}
    for name, record in records.items():
        assert record.spec == "allsky" and record.kind == "allsky" and not record.problem
        assert record.version == "v2025.xx.xx"
        shown = info(dest / name)
        if record.type == "config":
            assert (record.cameratype, record.cameramodel) == ("RPi", "HQ")
            assert shown["sections"] == ["core", "databases", "modules"]
            assert shown["backupModules"] == ["allsky_test.py"]
        else:
            assert record.cameratype == "N/A"
            assert shown["imageFolders"] == ["20260303", "20260304", "test_stretches"]
        result = verify_backup(dest / name)
        assert result["ok"] and result["method"].startswith("structure")
        assert last_read(dest / name)["ok"] is True  # recorded in our state folder


def test_cli_import_reports_and_exits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "allskybackups"
    assert main(["import", str(ALLSKY_MADE[0]), "--dest", str(dest)]) == 0
    assert "imported" in capsys.readouterr().out
    hostile = good_config(tmp_path / "h.tar.gz", [member("../x", b"x")])
    assert main(["import", str(hostile), "--dest", str(dest)]) == 19
    err = capsys.readouterr().err
    assert "ArchiveRejected" in err and "'..'" in err and "../x" in err
    # the rejected file left nothing (the state folder holds the accepted one's check record)
    assert sorted(os.listdir(dest)) == sorted([".allsky-tasks", ALLSKY_MADE[0].name,
                                               sidecar_path(ALLSKY_MADE[0]).name])
    data = json.loads(sidecar_path(dest / ALLSKY_MADE[0].name).read_text())
    assert data["backupType"] in ("config", "images")


def test_importing_the_same_file_twice_says_where_it_is(tmp_path: Path) -> None:
    import subprocess
    import sys

    src = good_config(tmp_path / "c.tar.gz")
    dest = tmp_path / "allskybackups"
    first = import_archive(src, dest)
    again = import_archive(src, dest)
    assert again.duplicate and again.path == first.path and again.report is None
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == \
        ["c.json", "c.tar.gz"]
    proc = subprocess.run([sys.executable, "-m", "allsky_tasks", "import", str(src), "--dest",
                           str(dest)], text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"is already stored as c.tar.gz in {dest}" in proc.stdout
