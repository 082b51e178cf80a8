"""A shared backup folder: a planted archive with a forged verification record decides nothing.

The attack: someone who can write to the backup folder plants a hostile archive dated newest,
a sidecar claiming the spec, and a verification record saying "ok" with the file's real size,
times and inode (all from `stat`). Neither `list`, `status` nor `prune` may take that record's
word: it is not ours, or (when it is a file of ours) it was not made by our verify.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site

STRANGER = 4321  # a uid that is not the running user's


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)


def _genuine(site: Site) -> Path:
    """One backup made and verified by the chain."""
    site.spec("cfg", "type: config\nretention: {keep_last: 1}\n")
    proc = _cli(site, "run", "backup:cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = site.archives()
    return archive


def _plant(genuine: Path) -> Path:
    """A hostile archive named a day later than the genuine one, with a sidecar claiming cfg."""
    stamp = re.search(r"(\d{8}-\d{6})", genuine.name).group(1)  # type: ignore[union-attr]
    later = (datetime.strptime(stamp, "%Y%m%d-%H%M%S") + timedelta(days=1))
    hostile = genuine.with_name(f"allsky-config-backup-{later:%Y%m%d-%H%M%S}.tar.zst")
    hostile.write_bytes(os.urandom(4096))  # nothing anyone can restore
    side = json.loads(sidecar_path(genuine).read_text())
    side["backupFile"] = hostile.name
    side["created"] = f"{later:%Y-%m-%d %H:%M:%S}"
    side["allskyTasks"]["createdIso"] = later.astimezone().isoformat()
    side["allskyTasks"]["archive"]["name"] = hostile.name
    sidecar_path(hostile).write_text(json.dumps(side))
    return hostile


def _forge_record(state: Path, hostile: Path, how: str) -> Path:
    """verify.json claiming the hostile archive was read and found good."""
    path = state / "verify.json"
    data = json.loads(path.read_text())
    st = os.stat(hostile)
    genuine_record = next(iter(data["archives"].values()))
    forged = {**genuine_record, "identity": {"size": st.st_size, "mtimeNs": st.st_mtime_ns,
                                             "ctimeNs": st.st_ctime_ns, "inode": st.st_ino},
              "ok": True, "epoch": time.time(), "kind": "ours", "spec": "cfg"}
    if how == "ours-but-forged":  # even a file of ours: the record names a SHA-256 it never read
        import hashlib

        forged["sha256"] = hashlib.sha256(hostile.read_bytes()).hexdigest()
        forged["sizeBytes"] = st.st_size
    data["archives"][hostile.name] = forged
    path.write_text(json.dumps(data))
    if how == "other-owner":
        os.chown(path, STRANGER, STRANGER)
    elif how == "world-writable":
        path.chmod(0o666)
    return path


@pytest.mark.parametrize("how", ["other-owner", "world-writable", "ours-but-forged"])
def test_forged_verification_record_decides_nothing(site: Site, how: str) -> None:
    genuine = _genuine(site)
    hostile = _plant(genuine)
    forged = _forge_record(site.env.state_dir, hostile, how)

    listing = _cli(site, "list", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in json.loads(listing.stdout)["backups"]}
    assert rows[hostile.name]["verified"] is not True
    # A file that is not ours is ignored whole (the genuine record in it too: never verified).
    assert rows[genuine.name]["verified"] is (True if how == "ours-but-forged" else None)
    warnings = json.loads(listing.stdout)["warnings"]
    assert not any(f"pin {hostile.name}" in w["command"] for w in warnings)
    if how != "ours-but-forged":  # a record that is not ours is refused, and named
        assert any(str(forged) in w["message"] for w in warnings), warnings
    text = _cli(site, "list")
    assert f"pin {hostile.name}" not in text.stdout

    status = _cli(site, "status", "--json", "--max-age-hours", "1e9")
    (spec,) = json.loads(status.stdout)["specs"]
    assert spec["newest_verified"] == (genuine.name if how == "ours-but-forged" else None)

    pruned = _cli(site, "prune", "--yes")
    assert pruned.returncode in (0, 1), pruned.stdout + pruned.stderr
    assert genuine.exists() and sidecar_path(genuine).exists()


def test_a_genuine_record_copied_to_the_planted_archive_vouches_for_nothing(site: Site) -> None:
    """Our own record of the genuine archive, replayed under the planted one's name and stat."""
    genuine = _genuine(site)
    hostile = _plant(genuine)
    path = site.env.state_dir / "verify.json"
    data = json.loads(path.read_text())
    record = dict(data["archives"][genuine.name])
    st = os.stat(hostile)
    record["identity"] = {"size": st.st_size, "mtimeNs": st.st_mtime_ns,
                          "ctimeNs": st.st_ctime_ns, "inode": st.st_ino}
    data["archives"][hostile.name] = record
    path.write_text(json.dumps(data))
    rows = {r["name"]: r for r in json.loads(_cli(site, "list", "--json").stdout)["backups"]}
    assert rows[hostile.name]["verified"] is not True and rows[genuine.name]["verified"] is True
    assert _cli(site, "prune", "--yes").returncode in (0, 1)
    assert genuine.exists()


def test_a_run_record_that_is_not_ours_is_ignored_and_named(site: Site) -> None:
    _genuine(site)
    run = site.env.state_dir / "runs" / "cfg.json"
    data = json.loads(run.read_text())
    run.write_text(json.dumps({**data, "result": "failed", "error": "CopyError",
                               "message": "forged"}))
    os.chown(run, STRANGER, STRANGER)
    status = _cli(site, "status", "--json", "--max-age-hours", "1e9")
    report = json.loads(status.stdout)
    (spec,) = report["specs"]
    assert spec["last_run"] is None and spec["healthy"] is True, report
    assert any(str(run) in w and "owned by uid 4321" in w for w in report["warnings"]), report


def test_a_stage_record_that_is_not_ours_stops_the_run_naming_it(site: Site) -> None:
    _genuine(site)
    stage = site.env.state_dir / "specs" / "cfg" / "verify.json"
    stage.chmod(0o666)
    proc = _cli(site, "run", "backup:cfg")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 27, out
    assert str(stage) in out and "writable by group or others" in out and "Traceback" not in out


def test_after_an_upgrade_the_next_run_reads_again_what_untagged_records_said(site: Site) -> None:
    """Records an older version wrote carry no tag: they count for nothing, and the next run,
    even one with nothing new to pack, reads the spec's archives again."""
    genuine = _genuine(site)
    path = site.env.state_dir / "verify.json"
    data = json.loads(path.read_text())
    for record in data["archives"].values():
        del record["tag"]
    path.write_text(json.dumps({"format": 1, "archives": data["archives"]}))
    rows = {r["name"]: r for r in json.loads(_cli(site, "list", "--json").stdout)["backups"]}
    assert rows[genuine.name]["verified"] is None
    again = _cli(site, "run", "backup:cfg")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"verify cfg: {genuine.name} ok" in again.stdout
    rows = {r["name"]: r for r in json.loads(_cli(site, "list", "--json").stdout)["backups"]}
    assert rows[genuine.name]["verified"] is True
