"""Safety: a corpus of hostile archives, built here byte by byte, each rejected with its reason."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from allsky_tasks.archive.io import open_decompressed
from allsky_tasks.archive.member_names import path_problem, resolve_link
from allsky_tasks.archive.safety import ArchiveRejected, Limits, validate_archive
from allsky_tasks.environment import PROJECT_DIR
from allsky_tasks.errors import UnsafeArchiveError

from ..conftest import Site, backup

FIXTURES = PROJECT_DIR / "tests" / "data" / "allsky-made"
Member = tuple[tarfile.TarInfo, bytes]


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = "",
           mode: int = 0o644, size: int | None = None) -> Member:
    """One raw tar member, exactly as named (tarfile's addfile does not sanitise)."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, linkname, 1_790_000_000
    info.size = (len(data) if size is None else size) if kind == tarfile.REGTYPE else 0
    return info, data


def directory(name: str) -> Member:
    """A folder member."""
    return member(name, kind=tarfile.DIRTYPE, mode=0o755)


def config_members() -> list[Member]:
    """What a minimal valid config backup holds."""
    return [directory("config"), member("config/settings_RPi_HQ.json", b'{"a": 1}\n'),
            member("config/cc_RPi_HQ.json", b'{"b": 2}\n'), member("env.json", b"{}\n")]


def images_members() -> list[Member]:
    """What a minimal valid images backup holds."""
    return [directory("images"), directory("images/20260303"),
            member("images/20260303/image-1.jpg", b"\xff\xd8jpeg")]


def metadata_for(members: list[Member], kind: str = "config", **extra: Any) -> dict[str, Any]:
    """Allsky-style metadata.json that tells the truth about `members`."""
    files = sorted(i.name for i, _ in members if not i.isdir())
    meta: dict[str, Any] = {"backupFile": "x.tar.gz", "backupType": kind,
                            "created": "2026-03-10 22:48:51", "version": "v2025.xx.xx",
                            "files": files, "format": 1}
    if kind == "config":
        meta.update(cameratype="RPi", cameramodel="HQ",
                    settingsfile="config/settings_RPi_HQ.json", ccfile="config/cc_RPi_HQ.json")
    else:
        meta.update(imageBackupAll=True, imageFolders=["20260303"], imageTargets=["images"])
    meta.update(extra)
    return meta


def tar_bytes(members: list[Member], end: bool = True) -> bytes:
    """An uncompressed tar stream (PAX), with or without its end-of-archive marker."""
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closing writes the end
    for info, data in members:
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    if end:
        tar.close()
        return buf.getvalue()
    tar.fileobj.flush()
    return buf.getvalue()


def compress(raw: bytes, fmt: str) -> bytes:
    """gzip (Allsky) or zstd with frame checksums (ours)."""
    if fmt == "zstd":
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw)
    return gzip.compress(raw, mtime=0)


def write_archive(path: Path, members: list[Member], meta: Any = None, *,
                  meta_name: str = "metadata.json", raw_meta: bytes | None = None,
                  fmt: str | None = None, end: bool = True) -> Path:
    """An archive: members, then metadata.json last (as Allsky writes it)."""
    fmt = fmt or ("zstd" if path.name.endswith(".zst") else "allsky")
    body = list(members)
    if raw_meta is None and meta is not None:
        raw_meta = json.dumps(meta, indent=4).encode()
    if raw_meta is not None:
        body.append(member(meta_name, raw_meta))
    path.write_bytes(compress(tar_bytes(body, end), fmt))
    return path


def good_config(path: Path, extra: list[Member] = (), **meta: Any) -> Path:  # type: ignore[assignment]
    """A valid config archive, plus extra members that the metadata owns up to."""
    members = config_members() + list(extra)
    return write_archive(path, members, metadata_for(members, **meta))


def many_members_tar(n: int) -> bytes:
    """n tiny members, headers stamped from one template (tarfile needs ~35 us a member)."""
    template = bytearray(tarfile.TarInfo("images/20260303/000000.jpg").tobuf(tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    base, at = sum(template), template.index(b"000000")
    out = bytearray()
    for i in range(n):
        digits = b"%06d" % i
        header = template[:]
        header[at:at + 6] = digits
        header[148:156] = b"%06o\0 " % (base - 6 * 48 + sum(digits))
        out += header
    return bytes(out)


def bomb(path: Path, fmt: str, frames: int) -> Path:
    """One member of zeros, 16 MiB per compressed frame/member, concatenated `frames` times."""
    unit = 16 << 20
    info, _ = member("images/20260303/zeros.jpg", size=frames * unit)
    head = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    first, rest = head + b"\0" * unit, b"\0" * unit
    if fmt == "zstd":
        cctx = zstandard.ZstdCompressor(level=19, write_checksum=True)
        path.write_bytes(cctx.compress(first) + cctx.compress(rest) * (frames - 1))
    else:
        path.write_bytes(gzip.compress(first, 9, mtime=0)
                         + gzip.compress(rest, 9, mtime=0) * (frames - 1))
    return path


def rejected(path: Path, limits: Limits = Limits()) -> ArchiveRejected:
    """The rejection (the test fails if the archive is accepted)."""
    with pytest.raises(ArchiveRejected) as info:
        validate_archive(path, limits)
    assert isinstance(info.value, UnsafeArchiveError) and info.value.exit_code == 19
    assert str(path) in str(info.value)
    return info.value


def _link(name: str, target: str) -> Member:
    """A symlink member."""
    return member(name, kind=tarfile.SYMTYPE, linkname=target, mode=0o777)


# (id, builder(tmp_path) -> archive, expected reason, expected member or None)
Case = tuple[str, Callable[[Path], Path], str, str | None]


def _images(tmp: Path, extra: list[Member], **meta: Any) -> Path:
    """A valid images archive plus extra members that the metadata owns up to."""
    members = images_members() + extra
    return write_archive(tmp / "h.tar.gz", members, metadata_for(members, "images", **meta))


CASES: list[Case] = [
    ("dotdot", lambda t: good_config(t / "h.tar.gz", [member("../x", b"x")]), "'..'", "../x"),
    ("nested-dotdot", lambda t: good_config(t / "h.tar.gz", [member("config/../../x", b"x")]),
     "'..'", "config/../../x"),
    ("absolute", lambda t: good_config(t / "h.tar.gz", [member("/etc/x", b"x")]),
     "absolute path", "/etc/x"),
    ("symlink-escape", lambda t: _images(t, [_link("images/x", "../../etc")]),
     "points outside", "images/x"),
    ("symlink-absolute", lambda t: _images(t, [_link("images/x", "/etc")]),
     "absolute path", "images/x"),
    # Each link alone stays inside images/ (d is images/ itself); e escapes only through d.
    ("symlink-chain", lambda t: _images(t, [directory("images/a"), directory("images/a/b"),
                                            _link("images/a/b/d", "../.."),
                                            _link("images/a/b/e", "d/../..")]),
     "through other links", "images/a/b/e"),
    ("below-symlink", lambda t: _images(t, [_link("images/l", "20260303"),
                                            member("images/l/x.jpg", b"x")]),
     "which is a symlink", "images/l/x.jpg"),
    ("hardlink-outside", lambda t: good_config(t / "h.tar.gz", [
        member("config/h", kind=tarfile.LNKTYPE, linkname="/etc/shadow")]), "hard link", "config/h"),
    ("hardlink-later", lambda t: good_config(t / "h.tar.gz", [
        member("config/h", kind=tarfile.LNKTYPE, linkname="config/z.json"),
        member("config/z.json", b"{}")]), "not an earlier member", "config/h"),
    ("chardev", lambda t: good_config(t / "h.tar.gz", [
        member("config/null", kind=tarfile.CHRTYPE)]), "character device", "config/null"),
    ("blockdev", lambda t: good_config(t / "h.tar.gz", [
        member("config/sda", kind=tarfile.BLKTYPE)]), "block device", "config/sda"),
    ("fifo", lambda t: good_config(t / "h.tar.gz", [member("config/p", kind=tarfile.FIFOTYPE)]),
     "FIFO", "config/p"),
    ("duplicate", lambda t: good_config(t / "h.tar.gz", [member("env.json", b"{}")]),
     "duplicate", "env.json"),
    ("duplicate-dir-slash", lambda t: good_config(t / "h.tar.gz", [directory("config/")]),
     "duplicate", "config"),
    ("file-then-folder", lambda t: good_config(t / "h.tar.gz", [
        member("config/x/y", b"y"), member("config/x", b"x")]), "have a folder", "config/x"),
    ("images-claims-env", lambda t: _images(t, [member("env.json", b"{}")]),
     "outside the areas metadata.json claims", "env.json"),
    ("outside-any-area", lambda t: good_config(t / "h.tar.gz", [member("scripts/evil.sh", b"x")]),
     "outside the areas metadata.json claims", "scripts/evil.sh"),
    ("images-link-to-secrets", lambda t: _images(t, [
        _link("images/20260303/env", "../../env.json")]),
     "leads outside images", "images/20260303/env"),
    ("images-root-is-link", lambda t: write_archive(t / "h.tar.gz", [_link("images", "config")],
                                                    metadata_for([], "images")),
     "leads outside images", "images"),
    ("target-outside", lambda t: _images(t, [], imageTargets=["scripts"]), "imageTargets", None),
    ("images-outside-target", lambda t: _images(t, [directory("images/20260304")],
                                                imageTargets=["images/20260303"]),
     "outside the areas metadata.json claims", "images/20260304"),
    ("control-char", lambda t: good_config(t / "h.tar.gz", [member("config/a\x1b[2Jb", b"x")]),
     "control character", None),
    ("setuid", lambda t: good_config(t / "h.tar.gz", [member("config/sh", b"x", mode=0o4755)]),
     "set-user/group-ID", "config/sh"),
    ("missing-metadata", lambda t: write_archive(t / "h.tar.gz", config_members()),
     "no root metadata.json", None),
    ("dot-slash-metadata-only", lambda t: write_archive(
        t / "h.tar.gz", config_members(), metadata_for(config_members()),
        meta_name="./metadata.json"), "'.' in the path", "./metadata.json"),
    ("metadata-list", lambda t: write_archive(t / "h.tar.gz", config_members(), [1, 2]),
     "not an object", "metadata.json"),
    ("metadata-invalid-json", lambda t: write_archive(t / "h.tar.gz", config_members(),
                                                      raw_meta=b"{nope"), "not valid JSON",
     "metadata.json"),
    ("metadata-deep-json", lambda t: write_archive(t / "h.tar.gz", config_members(),
                                                   raw_meta=b"[" * 100_000 + b"]" * 100_000),
     "not valid JSON", "metadata.json"),
    ("metadata-symlink", lambda t: write_archive(t / "h.tar.gz", config_members() + [
        _link("metadata.json", "env.json")]), "not a regular file", "metadata.json"),
    ("bad-backup-type", lambda t: good_config(t / "h.tar.gz", backupType="system"),
     "backupType", "metadata.json"),
    ("config-without-env", lambda t: write_archive(t / "h.tar.gz", config_members()[:3],
                                                   metadata_for(config_members()[:3])),
     "env.json", None),
    ("unknown-camera", lambda t: good_config(t / "h.tar.gz", cameratype="unknown"),
     "cameratype is missing or unknown", None),
    ("files-lie-missing", lambda t: good_config(t / "h.tar.gz", files=[
        "config/cc_RPi_HQ.json", "config/settings_RPi_HQ.json", "env.json", "config/gone.json"]),
     "missing from the archive", None),
    ("files-lie-extra", lambda t: good_config(t / "h.tar.gz", files=["env.json"]),
     "not in metadata.json's files list", None),
    ("permissions-escape", lambda t: good_config(t / "h.tar.gz", permissions={
        "../../etc/shadow": {"mode": "0777"}}), "unsafe or outside", "metadata.json"),
    ("permissions-setuid", lambda t: good_config(t / "h.tar.gz", permissions={
        "env.json": {"mode": "4755"}}), "bad mode", "metadata.json"),
    ("no-end-marker", lambda t: write_archive(t / "h.tar.gz", config_members(),
                                              metadata_for(config_members()), end=False),
     "end marker is missing", None),
    ("hidden-after-end", lambda t: t.joinpath("h.tar.gz").write_bytes(compress(
        tar_bytes(config_members() + [member("metadata.json", json.dumps(
            metadata_for(config_members())).encode())]) + tar_bytes([member(
                "config/hidden.sh", b"rm -rf /")]), "allsky")) and t / "h.tar.gz",
     "data after the end", None),
    ("wrong-compression", lambda t: write_archive(t / "h.tar.gz", config_members(),
                                                  metadata_for(config_members()), fmt="zstd"),
     "not gzip data", None),
    ("wrong-suffix", lambda t: write_archive(t / "h.zip", config_members(),
                                             metadata_for(config_members()), fmt="allsky"),
     "not a .tar.gz or .tar.zst", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_archive_is_rejected_with_its_reason(tmp_path: Path, case: Case) -> None:
    _, build, reason, where = case
    err = rejected(build(tmp_path))
    assert reason in err.problem, err
    if where is not None:
        assert err.member == where, err


def test_the_corpus_builder_makes_acceptable_archives(tmp_path: Path) -> None:
    # Without the hostile part, the same builders pass: each rejection above is for its reason.
    report = validate_archive(good_config(tmp_path / "c.tar.gz"))
    assert report.kind == "allsky" and report.members == 4
    assert validate_archive(_images(tmp_path, [])).metadata["backupType"] == "images"
    inside = _images(tmp_path, [_link("images/latest", "20260303/image-1.jpg")])
    assert validate_archive(inside).members == 4
    zst = write_archive(tmp_path / "c.tar.zst", config_members(), metadata_for(config_members()))
    assert validate_archive(zst).format == "zstd"


@pytest.mark.parametrize("fmt,frames", [("allsky", 64), ("zstd", 8192)])
def test_decompression_bomb_is_rejected_fast_without_reading_it_all(tmp_path: Path, fmt: str,
                                                                    frames: int) -> None:
    # gzip: 1 GiB of zeros in ~1 MB; zstd: 128 GiB in ~4 MB.
    path = bomb(tmp_path / f"bomb{'.tar.zst' if fmt == 'zstd' else '.tar.gz'}", fmt, frames)
    started = time.monotonic()
    err = rejected(path)
    elapsed = time.monotonic() - started
    assert "decompression bomb" in err.problem and err.member == "images/20260303/zeros.jpg"
    assert elapsed < 2.0, elapsed
    assert err.read_bytes < path.stat().st_size / 2


def test_total_size_limit_stops_reading(tmp_path: Path) -> None:
    data = bytes(range(256)) * (4 << 12)  # 4 MiB that compresses only somewhat
    path = good_config(tmp_path / "big.tar.gz", [member(f"config/b{i}", data) for i in range(8)])
    err = rejected(path, Limits(max_total_bytes=10 << 20, ratio_grace_bytes=1 << 40))
    assert "bytes when decompressed" in err.problem and err.member == "config/b2"


def test_too_many_members_is_rejected_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.tar.gz"
    path.write_bytes(gzip.compress(many_members_tar(100_000) + b"\0" * 1024, 1))
    started = time.monotonic()
    err = rejected(path, Limits(max_members=10_000))
    assert "more than 10000 members" in err.problem
    assert err.member == "images/20260303/010000.jpg"
    assert time.monotonic() - started < 5


def test_oversized_metadata_and_headers_are_refused_before_reading(tmp_path: Path) -> None:
    meta = metadata_for(config_members(), padding="x" * 5000)
    path = write_archive(tmp_path / "m.tar.gz", config_members(), meta)
    assert "metadata.json is" in rejected(path, Limits(max_metadata_bytes=4096)).problem
    padded, _ = member("config/x")
    padded.pax_headers = {"comment": "x" * 5000}  # tarfile would read it into memory whole
    long = good_config(tmp_path / "l.tar.gz", [(padded, b"")])
    err = rejected(long, Limits(max_header_bytes=2048))
    assert "header larger than" in err.problem


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.zst"])
@pytest.mark.parametrize("damage", ["flip 0.05", "flip 0.5", "flip 0.95", "cut 0.3", "cut 0.8",
                                    "cut -1"])
def test_flipped_bit_or_truncation_is_rejected(tmp_path: Path, suffix: str, damage: str) -> None:
    path = good_config(tmp_path / f"d{suffix}", [member("config/blob.bin", bytes(range(256)) * 64)])
    data, (how, where) = bytearray(path.read_bytes()), damage.split()
    at = int(len(data) * float(where)) if float(where) > 0 else len(data) - 1
    if how == "flip":
        data[at] ^= 0x10
    path.write_bytes(bytes(data if how == "flip" else data[:at]))
    assert "damaged" in rejected(path).problem or how == "flip"


def test_trailing_garbage_after_the_compressed_stream(tmp_path: Path) -> None:
    path = good_config(tmp_path / "g.tar.zst")
    path.write_bytes(path.read_bytes() + b"garbage!")
    assert "damaged" in rejected(path).problem


def test_our_archive_passes_and_a_tampered_copy_fails_its_manifest(site: Site,
                                                                   tmp_path: Path) -> None:
    archive = backup(site, "cfg", "type: config\nsections: {modules: true}\n")
    report = validate_archive(archive)
    assert report.kind == "ours" and report.metadata["allskyTasks"]["manifest"]
    # Same headers and metadata, one byte of env.json changed (length kept).
    members: list[Member] = []
    meta = b""
    with archive.open("rb") as raw, \
            tarfile.open(fileobj=open_decompressed(archive, raw), mode="r|") as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            if info.name == "metadata.json":
                meta = data
                continue
            if info.name == "env.json":
                data = data[:-2] + (b"X" if data[-2:-1] != b"X" else b"Y") + data[-1:]
            members.append((info, data))
    tampered = write_archive(tmp_path / "t.tar.zst", members, raw_meta=meta)
    err = rejected(tampered)
    assert "does not match its own manifest" in err.problem and "env.json" in err.problem


def test_allsky_made_archives_pass() -> None:
    for path in sorted(FIXTURES.glob("*.tar.gz")):
        report = validate_archive(path)
        assert report.kind == "allsky" and report.sha256 and report.members > 0


def test_path_rules() -> None:
    assert path_problem("config/settings_RPi_HQ.json") is None
    assert path_problem("config/modules/") is None
    assert path_problem("config/tab\tname.json") is None
    for bad in ("", "/x", "../x", "a/../b", "./a", "a//b", "a/.", "a\0b", "a\nb", "a\udcffb"):
        assert path_problem(bad), bad


def test_link_resolution_follows_other_links() -> None:
    links = {"images/a/d": "../..", "images/b": "a", "images/c": "b/d/.."}
    assert resolve_link("images/x", "20260303/y", links) == "images/20260303/y"
    assert resolve_link("images/a/d", "../..", links) == ""
    assert resolve_link("images/c", "b/d/..", links) is None  # images/a/d is the root: .. leaves
    assert resolve_link("images/l1", "l2", {"images/l1": "l2", "images/l2": "l1"}) is None


def test_sink_gets_every_byte_and_its_errors_are_not_blamed_on_the_archive(tmp_path: Path
                                                                           ) -> None:
    path = good_config(tmp_path / "c.tar.zst")
    copy = bytearray()
    report = validate_archive(path, sink=copy.extend)
    assert bytes(copy) == path.read_bytes() and report.size == len(copy)

    def full_disk(_view: memoryview) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as err:
        validate_archive(path, sink=full_disk)
    assert not isinstance(err.value, UnsafeArchiveError) and err.value.errno == 28


# --- strict metadata: a format we do not know, or a top-level key neither Allsky's nor ours ---

@pytest.mark.parametrize(("meta", "named"), [
    ({"format": 999}, "format 999"), ({"format": "1"}, "format '1'"), ({"format": True}, "format True"),
    ({"evil": {"run": "rm -rf ~"}}, "unknown top-level key 'evil'"),
    ({"_metadataSource": "sidecar"}, "unknown top-level key '_metadataSource'"),
])
def test_metadata_with_an_unknown_format_or_key_is_refused(tmp_path: Path, meta: dict[str, Any],
                                                           named: str) -> None:
    archive = good_config(tmp_path / "odd.tar.gz", **meta)
    with pytest.raises(ArchiveRejected, match=re.escape(named)):
        validate_archive(archive)


def test_a_restore_refuses_it_too(site: Site, tmp_path: Path) -> None:
    from allsky_tasks.restore.prepare import RestoreOptions, prepare

    archive = good_config(tmp_path / "odd.tar.gz", format=2)
    prep = prepare(archive, site.home, RestoreOptions(service=None, legacy_modules=tmp_path / "no-opt"))
    assert prep.blocked and any("format 2" in c.reason for c in prep.blocked)


def test_allsky_made_archives_and_every_sidecar_variant_pass_the_key_check(site: Site) -> None:
    from allsky_tasks.archive.structure import key_problems

    for archive in sorted(FIXTURES.glob("*.tar.gz")):
        report = validate_archive(archive)  # Allsky's own metadata.json, as its PHP writes it
        created = json.loads(archive.with_name(archive.name[:-7] + ".json").read_text())  # (a) Create
        upload = {k: v for k, v in created.items() if k in (  # (b) Upload's derived subset, no format
            "backupType", "version", "cameratype", "cameramodel", "created", "settingsfile", "ccfile",
            "permissions", "includedOptionalTargets", "includedSections", "imageBackupAll", "imageFolders",
            "imageTargets", "requiredModules", "backupModules", "backupHasModules", "files")}
        lazy = {**report.metadata, "backupHasModules": report.metadata.get("backupHasModules")}  # (c)
        for variant in (created, upload, lazy):
            assert key_problems(variant) == [], (archive.name, variant.keys())
    ours = backup(site, "cfg", "type: config\n")
    assert validate_archive(ours).kind == "ours"
