"""Verify: every kind of damage to a real archive is caught and named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import read_sidecar, record_verify, sidecar_path
from allsky_tasks.archive.records import STATE, RecordStore
from allsky_tasks.archive.verify import verify, verify_streamed
from allsky_tasks.errors import VerifyError

from ..conftest import Site, backup

FORMATS = ("zstd", "allsky")


@pytest.fixture(params=FORMATS)
def made(request: pytest.FixtureRequest, site: Site) -> tuple[Path, dict]:
    """A real config archive with its sidecar, in each format."""
    archive = backup(site, f"cfg-{request.param}",
                     f"type: config\nsections: {{modules: true, databases: true}}\n"
                     f"format: {request.param}\n")
    return archive, read_sidecar(archive)


def _damaged(archive: Path, blob: bytes) -> Path:
    """A copy of the archive with other bytes, keeping the archive's name pattern."""
    out = archive.with_name("damaged-" + archive.name)
    out.write_bytes(blob)
    return out


def test_verify_passes_a_good_archive(made: tuple[Path, dict]) -> None:
    archive, sidecar = made
    result = verify(archive, sidecar)
    assert result["ok"] and result["members"] == len(sidecar["allskyTasks"]["manifest"])
    assert verify(archive, None)["sha256"] == sidecar["allskyTasks"]["archive"]["sha256"]


@pytest.mark.parametrize("where", [0.0, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("with_sidecar", [True, False])
def test_verify_detects_one_flipped_bit(made: tuple[Path, dict], where: float,
                                        with_sidecar: bool) -> None:
    archive, sidecar = made
    data = bytearray(archive.read_bytes())
    pos = min(int(len(data) * where), len(data) - 1)
    data[pos] ^= 0x04
    with pytest.raises(VerifyError) as info:
        verify(_damaged(archive, bytes(data)), sidecar if with_sidecar else None)
    assert info.value.problems


@pytest.mark.parametrize("keep", [0.5, 0.99, -4, -1])
@pytest.mark.parametrize("with_sidecar", [True, False])
def test_verify_detects_truncated_archive(made: tuple[Path, dict], keep: float,
                                          with_sidecar: bool) -> None:
    archive, sidecar = made
    data = archive.read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)
    with pytest.raises(VerifyError):
        verify(_damaged(archive, data[:cut]), sidecar if with_sidecar else None)


def test_verify_detects_appended_bytes(made: tuple[Path, dict]) -> None:
    archive, _ = made
    with pytest.raises(VerifyError):
        verify(_damaged(archive, archive.read_bytes() + b"\0garbage"), None)


def _edit(sidecar: dict, path: str, **changes: object) -> dict:
    """A sidecar whose manifest row for `path` says something else."""
    edited = copy.deepcopy(sidecar)
    for row in edited["allskyTasks"]["manifest"]:
        if row["path"] == path:
            row.update(changes)
    return edited


def test_verify_names_a_member_whose_content_differs(made: tuple[Path, dict]) -> None:
    archive, sidecar = made
    edited = _edit(sidecar, "env.json", sha256="0" * 64)
    with pytest.raises(VerifyError) as info:
        verify(archive, edited)
    assert any(p.startswith("env.json: sha256 is") for p in info.value.problems)
    assert any("metadata.json: its manifest differs" in p for p in info.value.problems)


def test_verify_names_missing_extra_and_changed_members(made: tuple[Path, dict]) -> None:
    archive, sidecar = made
    edited = copy.deepcopy(sidecar)
    rows = edited["allskyTasks"]["manifest"]
    dropped = rows.pop(0)["path"]
    rows.append({"path": "config/ghost.json", "type": "file", "size": 1, "mode": "0644",
                 "mtime": 0, "sha256": "0" * 64})
    edited = _edit(edited, "config/modules", mode="0700")
    edited = _edit(edited, "env.json", size=1)
    with pytest.raises(VerifyError) as info:
        verify(archive, edited)
    problems = "\n".join(info.value.problems)
    assert f"{dropped}: in the archive but not in the manifest" in problems
    assert "config/ghost.json: missing from the archive" in problems
    assert "config/modules: mode is '0775', manifest says '0700'" in problems
    assert "env.json: size is" in problems
    assert str(archive) in str(info.value)


def test_verify_without_any_manifest_is_an_error(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    archive = tmp_path / "plain.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(tmp_path / "src"), "a.txt"], check=True)
    with pytest.raises(VerifyError, match="metadata.json: missing from the archive"):
        verify(archive, None)


def test_sidecar_is_json_with_allsky_and_our_fields(made: tuple[Path, dict]) -> None:
    archive, sidecar = made
    assert json.loads(json.dumps(sidecar)) == sidecar
    assert sidecar["backupFile"] == archive.name
    assert sidecar["allskyTasks"]["archive"]["name"] == archive.name


def test_streamed_verify_passes_and_records_in_the_state_folder(made: tuple[Path, dict]
                                                                 ) -> None:
    archive, sidecar = made
    before = sidecar_path(archive).read_bytes()
    result = verify_streamed(archive)
    assert result is not None and result["members"] == len(sidecar["allskyTasks"]["manifest"])
    record_verify(archive, result)
    assert sidecar_path(archive).read_bytes() == before  # the sidecar is never rewritten
    assert RecordStore(archive.parent / STATE).get(archive)["members"] == result["members"]


def test_streamed_verify_names_a_tampered_manifest_row(made: tuple[Path, dict]) -> None:
    archive, _ = made
    path = sidecar_path(archive)
    text = path.read_text()
    row = next(line for line in text.splitlines() if '"path":"env.json"' in line)
    path.write_text(text.replace(row, row.replace('"size":', '"size":1')))
    with pytest.raises(VerifyError) as info:
        verify_streamed(archive)
    assert any(p.startswith("env.json: size is") for p in info.value.problems)


def test_streamed_verify_detects_a_flipped_bit_and_other_layouts_fall_back(
        made: tuple[Path, dict]) -> None:
    archive, sidecar = made
    data = bytearray(archive.read_bytes())
    data[len(data) // 3] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(VerifyError):
        verify_streamed(archive)
    sidecar_path(archive).write_text(json.dumps(sidecar))  # one line: not our layout
    assert verify_streamed(archive) is None
    record_verify(archive, {"ok": False})  # into our state folder, leaving no temp file
    assert RecordStore(archive.parent / STATE).get(archive)["ok"] is False
    assert "verify" not in read_sidecar(archive)["allskyTasks"]
    assert not [p for p in archive.parent.rglob("*") if ".part" in p.name]
