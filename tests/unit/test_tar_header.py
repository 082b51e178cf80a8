"""Tar headers: the direct ustar block is tarfile's, byte for byte, and GNU tar reads it."""

from __future__ import annotations

import io
import os
import random
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from allsky_tasks.archive.io import open_decompressed
from allsky_tasks.archive.tar_header import mtime_ns_of, pax_mtime, plain_header, ustar_header

from ..conftest import Site, archive_metadata, backup

KINDS = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE)
FILE_TYPES = {tarfile.REGTYPE: stat.S_IFREG, tarfile.DIRTYPE: stat.S_IFDIR,
              tarfile.SYMTYPE: stat.S_IFLNK}
PRINTABLE = "".join(chr(c) for c in range(32, 127))
ODD_TEXT = ("naïve", "日本", "😀", os.fsdecode(b"bad\xffbyte"), "tab\there", "nul\0byte", "\x7f")


def reference(name: str, kind: bytes, size: int | float, mode: int, uid: int, gid: int,
              mtime: int | float, linkname: str, uname: str, gname: str,
              pax: dict[str, str] | None = None) -> bytes:
    """What tarfile itself writes for the member."""
    info = tarfile.TarInfo(name)
    info.pax_headers = dict(pax or {})
    info.type, info.size, info.mode, info.uid, info.gid = kind, size, mode, uid, gid
    info.mtime, info.linkname, info.uname, info.gname = mtime, linkname, uname, gname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pick(rng: random.Random, plain: tuple, edges: tuple) -> object:
    """A plain value mostly, else one at or past a limit (so a fair share of members is plain)."""
    return rng.choice(plain if rng.random() < 0.85 else edges)


def _text(rng: random.Random, plain: tuple[int, ...], edges: tuple[int, ...]) -> str:
    """ASCII of a length near a field's limit; sometimes non-ASCII or escaped bytes."""
    n = _pick(rng, plain, edges)
    text = "".join(rng.choice(PRINTABLE) for _ in range(n))  # type: ignore[arg-type]
    if n and rng.random() < 0.1:
        i = rng.randrange(n)  # type: ignore[arg-type]
        text = text[:i] + rng.choice(ODD_TEXT) + text[i + 1:]
    return text


def _member(rng: random.Random) -> tuple:
    """A random member: each field plain most of the time, odd or at a limit otherwise."""
    kind = rng.choice(KINDS)
    name = _text(rng, (0, 1, 30, 98, 99, 100), (101, 102, 160, 300))
    if rng.random() < 0.3:  # path-like, sometimes already ending in "/"
        name = "/".join(name[i:i + 12] for i in range(0, len(name), 12)) + rng.choice(("", "/"))
    linkname = _text(rng, (0, 0, 10, 99, 100), (101, 250))
    uname, gname = (_text(rng, (0, 2, 31, 32), (33, 40)) for _ in range(2))
    size = _pick(rng, (0, 1, 511, 512, 4 << 20, 8 ** 11 - 1), (8 ** 11, 2 ** 40, 2 ** 64, 0.0))
    uid, gid = (_pick(rng, (0, 33, 1000, 65534, 8 ** 7 - 1), (8 ** 7, 2 ** 32 - 1, -1))
                for _ in range(2))
    mtime = _pick(rng, (0, 1, 1_767_225_600, 8 ** 11 - 1),
                  (8 ** 11, 2 ** 40, -1, -86400, 1_767_225_600.5, 0.0))
    mode = rng.choice((0o644, 0o755, 0o2775, 0o1777, 0o4755, 0o7777, 0o100644, 0o40755,
                       0o120777, 0, -1))
    return name, kind, size, mode, uid, gid, mtime, linkname, uname, gname


def test_headers_are_tarfiles_byte_for_byte() -> None:
    rng = random.Random(20260101)
    plain = padded = 0
    for _ in range(20_000):
        member = _member(rng)
        expected = reference(*member)
        assert ustar_header(*member) == expected, member
        # The direct block covers exactly the members tarfile writes without PAX records.
        fast = plain_header(*member)
        if len(expected) == tarfile.BLOCKSIZE:
            assert fast == expected, member
            plain += 1
        else:
            assert fast is None, member
            padded += 1
    assert plain > 2000 and padded > 2000  # both paths well exercised


@pytest.mark.parametrize("kind", KINDS)
def test_limits_exactly(kind: bytes) -> None:
    base = {"name": "n", "kind": kind, "size": 0, "mode": 0o644, "uid": 0, "gid": 0,
            "mtime": 0, "linkname": "", "uname": "", "gname": ""}
    edges = [{"name": "d" * 99}, {"name": "d" * 100}, {"name": "d" * 99 + "/"},
             {"name": "d" * 100 + "/"}, {"linkname": "l" * 100}, {"linkname": "l" * 101},
             {"uname": "u" * 32}, {"uname": "u" * 33}, {"gname": "g" * 32}, {"gname": "g" * 33},
             {"uid": 8 ** 7 - 1}, {"uid": 8 ** 7}, {"gid": 8 ** 7 - 1}, {"gid": 8 ** 7},
             {"size": 8 ** 11 - 1}, {"size": 8 ** 11}, {"mtime": 8 ** 11 - 1},
             {"mtime": 8 ** 11}, {"mtime": -1}, {"mtime": 1.0}, {"mode": 0o106777},
             {"name": "ü"}, {"uname": "jöhn"}, {"linkname": os.fsdecode(b"\xfe")}]
    for edge in edges:
        member = {**base, **edge}
        expected = reference(**member)
        assert ustar_header(**member) == expected, edge
        assert (plain_header(**member) is not None) == (len(expected) == 512), edge


def test_other_types_go_to_tarfile() -> None:
    for kind in (tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.CONTTYPE):
        member = ("dev/x", kind, 0, 0o600, 0, 0, 0, "", "root", "root")
        assert plain_header(*member) is None
        assert ustar_header(*member) == reference(*member)


def _odd_tree(site: Site) -> None:
    """Names and links at and past the ustar limits, non-ASCII and undecodable names."""
    night = site.home / "images" / site.tree.nights[0]
    exact = night / ("d" * (99 - len(f"images/{site.tree.nights[0]}/")))  # 99 + "/" = 100
    exact.mkdir()
    (exact / "f.jpg").write_bytes(b"a" * 700)
    deep = night / ("long-folder-name-" * 5)
    deep.mkdir()
    (deep / ("a-file-with-a-long-name-" * 4 + ".jpg")).write_bytes(b"x" * 1500)
    (night / "naïve 😀.txt").write_text("non-ASCII name\n")
    with open(os.path.join(os.fsencode(night), b"bad\xffbyte.txt"), "w") as fh:
        fh.write("undecodable name\n")
    os.symlink("x" * 100, night / "link-100")
    os.symlink("x" * 101, night / "link-101")
    os.symlink("ü", night / "link-non-ascii")
    sticky = night / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o3775)


def test_pack_archive_reads_the_same_in_gnu_tar_and_tarfile(site: Site, tmp_path: Path) -> None:
    _odd_tree(site)
    archive = backup(site, "odd", "type: images\nfolders: all\nformat: zstd\nlevel: 3\n")
    with archive.open("rb") as raw:
        data = open_decompressed(archive, raw).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
    # Each header in the archive is exactly the one tarfile makes of the member it reads.
    seconds = {}  # the whole seconds of each member (tarfile's float rounds an exact time)
    for m in members:
        name = m.name + "/" if m.isdir() else m.name
        exact = mtime_ns_of(m.pax_headers.get("mtime"))
        seconds[m.name] = int(m.mtime) if exact is None else exact // 10 ** 9
        pax = {"mtime": m.pax_headers["mtime"]} if exact is not None else None
        assert data[m.offset:m.offset_data] == reference(
            name, m.type, m.size, m.mode, m.uid, m.gid, seconds[m.name], m.linkname, m.uname,
            m.gname, pax)
    spans = [m.offset_data - m.offset for m in members]
    assert 512 in spans and max(spans) > 512  # plain members and PAX ones both present
    rows = {r["path"]: r for r in archive_metadata(archive)["allskyTasks"]["manifest"]}
    assert [m.name for m in members] == [*rows, "metadata.json"]
    for m in members[:-1]:
        row = rows[m.name]
        assert (m.size, f"{m.mode:04o}", m.uid, m.gid, seconds[m.name], m.uname, m.gname) == (
            row["size"], row["mode"], row["uid"], row["gid"], row["mtime"], row["owner"],
            row["group"])
        assert m.linkname == row.get("linkname", "")
    assert rows[f"images/{site.tree.nights[0]}/sticky"]["mode"] == "3775"
    # GNU tar lists the same members, names and link targets, with no complaint.
    listing = subprocess.run(["tar", "--zstd", "-tvf", str(archive), "--quoting-style=escape",
                              "--numeric-owner", "--full-time"], capture_output=True,
                             env={**os.environ, "LC_ALL": "C"}, check=True)
    # tarfile marks undecodable names with hdrcharset=BINARY, a keyword GNU tar does not know.
    assert set(listing.stderr.decode().splitlines()) <= {
        "tar: Ignoring unknown extended header keyword 'hdrcharset'"}
    lines = listing.stdout.decode("utf-8", "surrogateescape").splitlines()
    assert len(lines) == len(members)
    for line, m in zip(lines, members, strict=True):
        perms, owner, size, _, _, rest = line.split(None, 5)
        assert stat.filemode(m.mode | FILE_TYPES[m.type]) == perms
        assert (owner, int(size)) == (f"{m.uid}/{m.gid}", m.size)
        shown = rest.split(" -> ")[0] if m.issym() else rest
        assert shown == _escaped(m.name + ("/" if m.isdir() else "")), line
        if m.issym():
            assert rest.split(" -> ")[1] == _escaped(m.linkname)


def _escaped(name: str) -> str:
    """A name as GNU tar's escape quoting lists it in the C locale: other bytes in octal."""
    raw = name.encode("utf-8", "surrogateescape")
    return "".join("\\\\" if b == 92 else chr(b) if 32 <= b < 127 else f"\\{b:03o}" for b in raw)


def test_a_sub_second_time_is_one_exact_pax_record_as_tarfile_writes_it() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        name, kind, size, mode, uid, gid, _m, linkname, uname, gname = _member(rng)
        ns = rng.choice((1_796_691_978_847_808_145, 1_796_691_978_999_999_999, 5, 10 ** 9 + 1,
                         rng.randrange(1, 8 ** 11 * 10 ** 9)))
        if ns % 10 ** 9 == 0:
            continue
        got = ustar_header(name, kind, size, mode, uid, gid, ns // 10 ** 9, linkname, uname,
                           gname, mtime_ns=ns)
        assert got == reference(name, kind, size, mode, uid, gid, ns // 10 ** 9, linkname,
                                uname, gname, {"mtime": pax_mtime(ns)}), ns
    # Read back, the record gives the very nanoseconds (tarfile's own float would round them).
    for ns in (1_796_691_978_847_808_145, 1_796_691_978_999_999_999, 1_000_000_001):
        header = ustar_header("a", tarfile.REGTYPE, 0, 0o644, 0, 0, ns // 10 ** 9, mtime_ns=ns)
        with tarfile.open(fileobj=io.BytesIO(header + bytes(1024)), mode="r:") as tar:
            info = tar.next()
        assert info is not None and mtime_ns_of(info.pax_headers["mtime"]) == ns
    # Whole seconds: no record, the header stays one block.
    assert len(ustar_header("a", tarfile.REGTYPE, 1, 0o644, 0, 0, 7, mtime_ns=7 * 10 ** 9)) == 512
