"""Fetching a copy for restore: the SHA-256 it must have comes from our record, else its sidecar."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from allsky_tasks.archive import authkey
from allsky_tasks.archive.manifest import sidecar_path
from allsky_tasks.copies import records
from allsky_tasks.copies.path import PathTarget
from allsky_tasks.copies.stage import copy_archive
from allsky_tasks.errors import CopyError
from allsky_tasks.restore.fetch import fetch

from ..conftest import Site, backup


def _copied(site: Site) -> tuple[PathTarget, Path, bytes]:
    """A real archive copied (with its sidecar) to a folder target, then gone from the backup folder."""
    archive = backup(site, "cfg", "type: config\n")
    data = archive.read_bytes()
    item = {"name": "disk", "path": str(site.root / "target"), "must_be_mounted": False}
    target = PathTarget(item, {"home": site.home})
    copy_archive(target, item, archive, sidecar_path(archive), hashlib.sha256(data).hexdigest(),
                 "cfg", lambda n: None, key=authkey.ensure()[0])  # tagged, as a copy run tags it
    archive.unlink()
    sidecar_path(archive).unlink()
    return target, archive, data


def _set_record(site: Site, archive: Path, entry: object) -> None:
    record = records.load(site.env.backup_dir, "cfg", "disk")
    record["copies"] = {"other.tar.zst": "not an entry", archive.name: entry}
    records.save(site.env.backup_dir, record)


@pytest.mark.parametrize("sha", [5, None, ["a"]])
def test_a_damaged_record_falls_back_to_the_copied_sidecar(site: Site, sha: object) -> None:
    target, archive, data = _copied(site)
    _set_record(site, archive, {"stored": archive.name, "storedSha256": sha})
    assert fetch(target, archive.name, site.env.backup_dir, key=authkey.load()).read_bytes() == data


def test_a_recorded_sha256_that_does_not_match_refuses_the_copy(site: Site) -> None:
    target, archive, _ = _copied(site)
    _set_record(site, archive, {"stored": archive.name, "storedSha256": "0" * 64})
    with pytest.raises(CopyError, match="does not match its recorded SHA-256"):
        fetch(target, archive.name, site.env.backup_dir, key=authkey.load())
    assert not archive.exists()
