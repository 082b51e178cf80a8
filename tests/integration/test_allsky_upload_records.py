"""Round trips with Allsky's WebUI: its upload replaces the archive and writes its own sidecar.

Allsky's Upload stores the uploaded file (a new file under the same name) and writes the
sidecar as the derived subset of the metadata (no `allskyTasks`, mode 0664). What is ours
(pins, what verify found, which spec and per-night set an archive belongs to) lives in our
state or in the archive itself, so nothing of it is lost, and nothing of Allsky's is rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.archive import authkey
from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site, archive_metadata

NIGHTS = "type: images\nfolders: all\nper_night: true\nservice: {pause: never}\n"
# The sidecar Allsky's Upload writes: this subset of the archive's metadata (reference 4.5b).
UPLOAD_KEYS = ("backupType", "version", "cameratype", "cameramodel", "created", "settingsfile",
               "ccfile", "permissions", "includedOptionalTargets", "includedSections",
               "imageBackupAll", "imageFolders", "imageTargets", "requiredModules",
               "backupModules", "backupHasModules", "files")


def _cli(site: Site, *args: str, code: int = 0) -> str:
    proc = subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def allsky_upload(archive: Path, tmp: Path) -> None:
    """What Allsky's WebUI upload of a downloaded backup leaves: a new file, Allsky's sidecar."""
    meta = archive_metadata(archive)
    staged = tmp / archive.name
    shutil.copy2(archive, staged)
    os.replace(staged, archive)  # move_uploaded_file: a new inode under the old name
    side = sidecar_path(archive)
    side.write_text(json.dumps({k: meta[k] for k in UPLOAD_KEYS if k in meta}, indent=4))
    side.chmod(0o664)


def _rows(site: Site) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(_cli(site, "list", "--json"))["backups"]}


def test_after_allskys_upload_list_still_knows_spec_set_and_verdict(site: Site,
                                                                  tmp_path: Path) -> None:
    site.spec("nights", NIGHTS)
    site.doit("backup:nights", check=True)
    archives = site.archives()
    nights = len(archives)
    staging = tmp_path / "upload"
    staging.mkdir()
    for archive in archives:
        allsky_upload(archive, staging)
    rows = _rows(site)
    assert {r["spec"] for r in rows.values()} == {"nights"}
    assert {r["set"] for r in rows.values()} == {"nights"}
    assert all(r["verified"] is True for r in rows.values()), rows  # the same bytes verified
    listing = _cli(site, "list")
    assert listing.count(f"set:nights ({nights} nights)") == 1
    for archive in archives:  # Allsky's sidecar is left exactly as Allsky wrote it
        side = json.loads(sidecar_path(archive).read_text())
        assert "allskyTasks" not in side
        assert stat.S_IMODE(sidecar_path(archive).stat().st_mode) == 0o664


def test_the_archive_read_is_cached_in_our_state_and_only_our_entries_count(
        site: Site, tmp_path: Path) -> None:
    site.spec("nights", NIGHTS)
    site.doit("backup:nights", check=True)
    staging = tmp_path / "upload"
    staging.mkdir()
    archive = site.archives()[0]
    allsky_upload(archive, staging)
    assert _rows(site)[archive.name]["spec"] == "nights"
    cache = site.env.state_dir / "archive-metadata.json"
    data = json.loads(cache.read_text())
    entry = data["archives"][archive.name]
    assert entry["identity"]["inode"] == archive.stat().st_ino
    assert "permissions" not in entry["metadata"] and "files" not in entry["metadata"]
    # The next listing takes the cached entry instead of reading the archive again: an entry
    # this device tagged is believed (here one naming another version), an untagged one is not.
    key = authkey.load()
    assert key is not None
    body = {k: v for k, v in entry.items() if k != "tag"}
    real = body["metadata"]["version"]
    body["metadata"]["version"] = "from-the-cache"
    data["archives"][archive.name] = {**body, "tag": key.tag("metadata-cache/1", archive.name, body)}
    cache.write_text(json.dumps(data))
    assert _rows(site)[archive.name]["version"] == "from-the-cache"
    data["archives"][archive.name]["tag"] = "0" * 64
    cache.write_text(json.dumps(data))
    assert _rows(site)[archive.name]["version"] == real  # read again, and cached anew


@pytest.fixture
def pinned_site(site: Site) -> tuple[Site, Path]:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    site.doit("backup:cfg", check=True)
    (archive,) = site.archives()
    sidecar_path(archive).chmod(0o664)  # as Allsky leaves its sidecars
    return site, archive


def test_pin_never_writes_into_the_sidecar_and_survives_allskys_upload(
        pinned_site: tuple[Site, Path], tmp_path: Path) -> None:
    site, archive = pinned_site
    side = sidecar_path(archive)
    before = side.read_bytes()
    _cli(site, "pin", archive.name)
    _cli(site, "pin", archive.name)  # twice: still one pin, still no write
    assert side.read_bytes() == before and stat.S_IMODE(side.stat().st_mode) == 0o664
    pins = json.loads((site.env.state_dir / "pins.json").read_text())["pins"]
    assert list(pins) == [archive.name] and pins[archive.name]["pinned"] is True
    staging = tmp_path / "upload"
    staging.mkdir()
    allsky_upload(archive, staging)
    assert _rows(site)[archive.name]["pinned"] is True
    _cli(site, "unpin", archive.name)
    assert _rows(site)[archive.name]["pinned"] is False


def test_a_pin_an_older_version_wrote_into_the_sidecar_is_still_read(
        pinned_site: tuple[Site, Path]) -> None:
    site, archive = pinned_site
    side = sidecar_path(archive)
    data = json.loads(side.read_text())
    data["allskyTasks"]["pinned"] = True
    side.write_text(json.dumps(data, indent=4))
    before = side.read_bytes()
    assert _rows(site)[archive.name]["pinned"] is True
    _cli(site, "unpin", archive.name)  # recorded in our state; the sidecar is left alone
    assert _rows(site)[archive.name]["pinned"] is False and side.read_bytes() == before


def test_pinning_a_backup_that_failed_verification_is_refused(
        pinned_site: tuple[Site, Path]) -> None:
    site, archive = pinned_site
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    _cli(site, "verify", archive.name, code=18)
    out = _cli(site, "pin", archive.name, code=20)
    assert "failed verification" in out and archive.name in out
    assert _rows(site)[archive.name]["pinned"] is False
