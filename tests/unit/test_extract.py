"""Staged extraction: the import rules enforced again while writing, nothing outside staging."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from allsky_tasks.archive.member_names import CONFIG_ROOTS
from allsky_tasks.archive.members import Member
from allsky_tasks.archive.safety import ArchiveRejected, Limits
from allsky_tasks.restore.dirs import STAGING_PREFIX, clean_stale_staging, staging_area
from allsky_tasks.restore.extract import extract

MTIME = 1_790_000_000
Raw = tuple[tarfile.TarInfo, bytes]


def raw(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = "",
        mode: int = 0o644) -> Raw:
    """One tar member exactly as named (tarfile's addfile does not sanitise)."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, linkname, MTIME
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def folder(name: str, mode: int = 0o755) -> Raw:
    """A folder member."""
    return raw(name, kind=tarfile.DIRTYPE, mode=mode)


def link(name: str, target: str) -> Raw:
    """A symlink member."""
    return raw(name, kind=tarfile.SYMTYPE, linkname=target, mode=0o777)


def write_tar(path: Path, members: list[Raw], meta: dict[str, Any] | None = None) -> Path:
    """A .tar.gz or .tar.zst of the members, then metadata.json (if given) last."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = list(members) + ([raw("metadata.json", json.dumps(meta, indent=4).encode())]
                                if meta is not None else [])
        for info, data in body:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    data = buf.getvalue()
    path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(data)
                     if path.name.endswith(".zst") else gzip.compress(data, mtime=0))
    return path


def allsky_meta(members: list[Raw], kind: str = "config", **extra: Any) -> dict[str, Any]:
    """Allsky-style metadata.json telling the truth about the members."""
    meta: dict[str, Any] = {
        "backupFile": "x.tar.gz", "backupType": kind, "created": "2026-03-10 22:48:51",
        "version": "v2025.xx.xx", "files": sorted(i.name for i, _ in members if not i.isdir()),
        "format": 1}
    if kind == "config":
        meta.update(cameratype="RPi", cameramodel="HQ", settingsfile="config/settings_RPi_HQ.json",
                    ccfile="config/cc_RPi_HQ.json", includedSections=[{"key": "core"}],
                    includedOptionalTargets=[])
    else:
        meta.update(imageBackupAll=True, imageFolders=["20260303"], imageTargets=["images"])
    meta.update(extra)
    return meta


def no_attrs(member: Member) -> tuple[int | None, int, int]:
    """Keep the header's mode, leave owners alone."""
    return (None if member.type == "symlink" else int(member.mode, 8)), -1, -1


def run(tmp_path: Path, members: list[Raw], areas: tuple[str, ...] = CONFIG_ROOTS,
        **kwargs: Any) -> Path:
    """Extract everything into tmp_path/tree; returns the tree."""
    archive = write_tar(tmp_path / "a.tar.gz", members)
    tree = tmp_path / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    extract(archive, tree, areas, lambda p: True, no_attrs, **kwargs)
    return tree


def outside_untouched(tmp_path: Path) -> None:
    """Nothing appeared beside the tree (the hostile names aim there)."""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "tree"]
    assert not Path("/tmp/allsky-restore-escape").exists()


def test_writes_files_folders_links_with_modes_and_times(tmp_path: Path) -> None:
    tree = run(tmp_path, [folder("config", 0o2775), raw("config/a.json", b"{}", mode=0o600),
                          link("config/l", "a.json"), raw("env.json", b"{}"),
                          raw("config/x/metadata.json", b"[]")])
    a = (tree / "config/a.json").stat()
    assert stat.S_IMODE(a.st_mode) == 0o600 and a.st_mtime == MTIME
    assert os.readlink(tree / "config/l") == "a.json"
    assert os.lstat(tree / "config/l").st_mtime == MTIME
    # A nested metadata.json is an ordinary file (Allsky's unanchored exclude skips it).
    assert (tree / "config/x/metadata.json").read_bytes() == b"[]"
    assert stat.S_IMODE((tree / "config").stat().st_mode) == 0o700  # set once placed


def test_only_selected_members_are_written(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [raw("config/a", b"1"), raw("config/b/c", b"2")])
    tree = tmp_path / "tree"
    tree.mkdir()
    got = extract(archive, tree, CONFIG_ROOTS, {"config/b/c"}.__contains__, no_attrs)
    assert got.files == ["config/b/c"] and not (tree / "config/a").exists()
    assert (tree / "config/b/c").read_bytes() == b"2"


HOSTILE = {
    "absolute": ([raw("/tmp/allsky-restore-escape", b"x")], "absolute path"),
    "traversal": ([raw("config/../../allsky-restore-escape", b"x")], "'..'"),
    "dot prefix": ([raw("./env.json", b"x")], "'.'"),
    "symlink absolute": ([link("config/l", "/etc/passwd")], "points outside"),
    "symlink up": ([link("config/l", "../../etc")], "points outside"),
    "symlink chain": ([link("config/up", ".."), link("config/esc", "up/..")], "leads outside"),
    "symlink out of areas": ([link("config/s", "../scripts/x")], "leads outside"),
    "hard link": ([raw("config/h", kind=tarfile.LNKTYPE, linkname="/etc/passwd")], "hard link"),
    "char device": ([raw("config/tty", kind=tarfile.CHRTYPE)], "character device"),
    "fifo": ([raw("config/p", kind=tarfile.FIFOTYPE)], "FIFO"),
    "duplicate": ([raw("env.json", b"1"), raw("env.json", b"2")], "duplicate"),
    "below a symlink": ([folder("config/sub"), link("config/l", "sub"),
                         raw("config/l/x", b"x")], "below 'config/l'"),
    "file then folder": ([raw("config/f", b"x"), raw("config/f/x", b"y")], "below 'config/f'"),
    "folder under env.json": ([raw("env.json/x", b"x")], "outside the areas"),
    "outside areas": ([raw("scripts/x.sh", b"#!/bin/sh\n")], "outside the areas"),
    "staging name": ([raw(f"config/{STAGING_PREFIX}1/x", b"x")], "reserved"),
    "setuid": ([raw("config/su", b"x", mode=0o4755)], "set-user/group-ID"),
    "setgid file": ([raw("config/sg", b"x", mode=0o2755)], "set-user/group-ID"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_rejected_and_nothing_escapes(tmp_path: Path, case: str) -> None:
    members, problem = HOSTILE[case]
    with pytest.raises(ArchiveRejected) as err:
        run(tmp_path, members)
    assert problem in err.value.problem
    outside_untouched(tmp_path)


@pytest.mark.parametrize("name", ["env.json", "scripts/x", "config/settings_RPi_HQ.json"])
def test_images_areas_hold_only_images(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArchiveRejected, match="outside the areas"):
        run(tmp_path, [folder("images"), raw("images/20260303/a.jpg", b"j"), raw(name, b"x")],
            areas=("images",))
    outside_untouched(tmp_path)


def test_only_the_claimed_night_folders_may_be_written(tmp_path: Path) -> None:
    night = [folder("images"), folder("images/20260303"), raw("images/20260303/a.jpg", b"j")]
    assert (run(tmp_path, night, areas=("images/20260303",)) / "images/20260303/a.jpg").exists()
    with pytest.raises(ArchiveRejected, match="outside the areas"):
        run(tmp_path, night + [raw("images/20260304/b.jpg", b"x")], areas=("images/20260303",))
    with pytest.raises(ArchiveRejected, match="outside the areas"):
        run(tmp_path, [folder("images")])  # config areas: no images folder at all


def test_decompressed_bytes_are_capped(tmp_path: Path) -> None:
    big = [raw("config/big", b"\0" * (4 << 20))]
    with pytest.raises(ArchiveRejected, match="more than"):
        run(tmp_path, big, limits=Limits(max_total_bytes=1 << 20))
    with pytest.raises(ArchiveRejected, match="more than"):
        run(tmp_path, big, max_bytes=1 << 20)  # more than the checked read saw
    with pytest.raises(ArchiveRejected, match="a bomb"):
        run(tmp_path, big, limits=Limits(ratio_grace_bytes=0, max_ratio=10))


def _expected(members: list[Raw], **change: Any) -> dict[str, Member]:
    """Member records as a checked read (or manifest) would give them."""
    import hashlib

    out = {}
    for info, data in members:
        kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}.get(info.type, "file")
        out[info.name] = Member(path=info.name, type=kind, size=len(data), mode=f"{info.mode:04o}",
                                mtime=MTIME, uid=0, gid=0, linkname=info.linkname,
                                sha256=hashlib.sha256(data).hexdigest() if kind == "file" else None)
    for path, fields in change.items():
        for key, value in fields.items():
            setattr(out[path.replace("__", "/")], key, value)
    return out


def test_members_must_match_what_was_checked(tmp_path: Path) -> None:
    members = [raw("config/a", b"new"), raw("env.json", b"{}")]
    run(tmp_path, members, expected=_expected(members))  # the same archive passes
    for change, problem in (({"config__a": {"sha256": "0" * 64}}, "does not match"),
                            ({"config__a": {"mode": "0600"}}, "differs from the archive")):
        with pytest.raises(ArchiveRejected, match=problem):
            run(tmp_path, members, expected=_expected(members, **change))
    extra = _expected(members)
    extra["config/gone"] = Member("config/gone", "file", 1, "0644", MTIME, 0, 0, "", "x")
    with pytest.raises(ArchiveRejected, match="missing on the second read"):
        run(tmp_path, members, expected=extra)


def test_damaged_archive_is_rejected(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [raw("config/a", os.urandom(300_000))])
    data = bytearray(archive.read_bytes())
    archive.write_bytes(bytes(data[: len(data) // 2]))
    (tmp_path / "tree").mkdir()
    with pytest.raises(ArchiveRejected, match="damaged or truncated"):
        extract(archive, tmp_path / "tree", CONFIG_ROOTS, lambda p: True, no_attrs)


def test_staging_is_private_and_always_removed(tmp_path: Path) -> None:
    stale = tmp_path / f"{STAGING_PREFIX}999999999"  # a pid that cannot exist
    (stale / "tree").mkdir(parents=True)
    live = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-not-ours"
    live.mkdir()
    with pytest.raises(RuntimeError), staging_area(tmp_path) as staging:
        assert stat.S_IMODE(staging.stat().st_mode) == 0o700
        assert not stale.exists() and live.exists()
        (staging / "tree" / "half-written").write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert not staging.exists()
    assert clean_stale_staging(tmp_path) == []
