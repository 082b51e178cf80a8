"""Compressed-size estimates, measured by compressing a bounded sample of the real files."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..archive.compression import frame_wanted, zstd_params
from ..archive.tar_header import ustar_header

if TYPE_CHECKING:
    from .scan import Entry

BLOCK, RECORD = tarfile.BLOCKSIZE, tarfile.RECORDSIZE
CHUNK, MIN_CHUNK = 64 << 10, 4 << 10  # one read from a large file: many reads spread wide
EXACT_MEMBERS = 20_000  # a group within budget and this size is compressed whole, not sampled
RUN, KEEP = 32, 256  # header/metadata samples: runs of consecutive members, about KEEP kept
RESCALE = 1 << 20  # whole groups up to this tar size are also compressed unflushed (see _Sim)
OVERHEAD_KEY = "<archive>"  # tar end, metadata.json's fixed fields, compression frame
Reader = Callable[[str, int, int], bytes]


@dataclass
class Estimate:
    """What one section or night folder adds to the archive, raw and compressed."""

    key: str
    files: int = 0
    members: int = 0
    raw_bytes: int = 0  # file contents, Allsky's "size"
    tar_bytes: int = 0  # raw tar stream: headers, contents, padding
    metadata_bytes: int = 0  # its share of metadata.json (uncompressed)
    estimated_bytes: int = 0  # compressed bytes in the archive, metadata share included
    sampled_bytes: int = 0  # file bytes read to measure it
    exact: bool = False  # everything was compressed: nothing extrapolated

    @property
    def ratio(self) -> float:
        """Estimated over raw bytes (0 for a group without file contents)."""
        return round(self.estimated_bytes / self.raw_bytes, 4) if self.raw_bytes else 0.0


def read_range(path: str, offset: int, length: int) -> bytes:
    """Up to `length` bytes of a file from `offset`; b"" if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO swapped in: never block on it
            return b""
        os.set_blocking(fd, True)
        return os.pread(fd, length, offset)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _names(uid: int, gid: int) -> tuple[str, str]:
    """User and group names as pack writes them into tar headers (cached there)."""
    from .pack import group_name, user_name  # lazily: pack pulls in zstandard
    return user_name(uid), group_name(gid)


_TAR_TYPES = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}


def _header(e: Entry) -> bytes:
    """The exact tar header (PAX records included) pack writes for the member."""
    kind = _TAR_TYPES.get(e.kind, tarfile.REGTYPE)
    return ustar_header(e.arcname, kind, e.size if e.kind == "file" else 0, e.mode, e.uid,
                        e.gid, e.mtime_ns // 10 ** 9, e.linkname, *_names(e.uid, e.gid))


def _meta_text(e: Entry) -> tuple[str, str, str]:
    """The member's permissions entry, files entry and manifest row, as metadata.py writes them."""
    path, (owner, group) = json.dumps(e.arcname), _names(e.uid, e.gid)
    kind = "link" if e.kind == "symlink" else e.kind
    perm = (f'        {path}: {{\n            "mode": "{e.mode & 0o777:04o}",\n'
            f'            "owner": "ALLSKY_OWNER",\n            "group": {json.dumps(group)},\n'
            f'            "ownerId": {e.uid},\n            "groupId": {e.gid},\n'
            f'            "type": "{kind}"\n        }},\n')
    row = {"path": e.arcname, "type": e.kind, "size": e.size, "mode": f"{e.mode:04o}",
           "uid": e.uid, "gid": e.gid, "owner": owner, "group": group,
           "mtime": e.mtime_ns // 1_000_000_000}
    if e.kind == "file":  # a stand-in digest: as incompressible as the real one
        row["sha256"] = hashlib.sha256(e.arcname.encode("utf-8", "surrogateescape")).hexdigest()
    elif e.kind == "symlink":
        row["linkname"] = e.linkname
    files = "" if e.kind == "dir" else f"        {path},\n"
    return perm, files, f"            {json.dumps(row, separators=(',', ':'))},\n"


def _fixed_text() -> str:
    """A stand-in for metadata.json's fixed fields (Allsky's header, our spec and totals)."""
    digest, fingerprint = (hashlib.sha256(bytes([i])).hexdigest() for i in range(2))
    text = ("Include the databases directory which contains the allsky.db file. This can be a "
            "large directory but will allow you to restore your database if needed.")
    return json.dumps({
        "backupFile": "allsky-config-backup-20260101-000000.tar.zst", "backupType": "config",
        "created": "2026-01-01 00:00:00", "version": "v2025.xx.xx", "cameratype": "RPi",
        "cameramodel": "HQ", "settingsfile": "config/settings_RPi_HQ.json",
        "ccfile": "config/cc_RPi_HQ.json", "includedOptionalTargets": ["databases"],
        "includedSections": [{"key": "databases", "description": text, "required": False}] * 2,
        "requiredModules": ["allsky_overlay.py"], "backupModules": [], "format": 1, "allskyTasks": {
            "toolVersion": "0.1.0", "spec": {"name": "nightly", "digest": digest},
            "createdIso": "2026-01-01T00:00:00+00:00", "timezone": "Europe/London",
            "host": "allsky", "fingerprint": fingerprint, "archiveFormat": "zstd",
            "compressionLevel": 3, "mediaCompression": "fast", "sections": ["core", "databases"], "databases": [],
            "totals": dict.fromkeys(("members", "files", "dirs", "links", "rawBytes"), 1234),
            "warnings": [], "hashAlgorithm": "sha256", "service": {"needed": False, "reason":
            "no database content is selected, so allsky keeps running while packing"}}}, indent=4)


def _compressor(fmt: str, level: int, media: bool = False
                ) -> tuple[Callable[[bytes], bytes], Callable[[bool], bytes]]:
    """compress(data) and flush(end) of one stream, compressed as pack writes it."""
    if fmt == "zstd":
        import zstandard  # lazily: plan and doit list must start fast

        params = zstd_params(level, media)
        z = zstandard.ZstdCompressor(compression_params=params).compressobj()
        modes = (zstandard.COMPRESSOBJ_FLUSH_BLOCK, zstandard.COMPRESSOBJ_FLUSH_FINISH)
    else:  # Allsky's .tar.gz: the deflate stream GzipFile writes, with its gzip header
        z = zlib.compressobj(level, zlib.DEFLATED, 31)
        modes = (zlib.Z_SYNC_FLUSH, zlib.Z_FINISH)
    return z.compress, lambda end: z.flush(modes[end])


class _Sim:
    """The archive stream, simulated: costs measured per part between flushes."""

    # Flushes move block boundaries (so the size): whole parts also go to an unflushed stream.

    def __init__(self, fmt: str, level: int, media_fast: bool = True) -> None:
        self.data, self.plain = _compressor(fmt, level), _compressor(fmt, level)
        # Pack puts media in frames of their own settings (compression.py): so does the sim.
        self.media = _compressor(fmt, level, True) if fmt == "zstd" and media_fast else None
        self.pending, self.plain_size, self.media_pending = 0, 0, 0
        self.costs: dict[tuple[str, str], int] = {("data", OVERHEAD_KEY): 0}

    def feed(self, chunk: bytes, whole: bool = True) -> None:
        """Compress more of the stream (samples are not whole: they stay out of the total)."""
        self.pending += len(self.data[0](chunk))
        if whole:
            self.plain_size += len(self.plain[0](chunk))

    def feed_media(self, chunk: bytes) -> None:
        """Compress media bytes (their cost is taken with mark_media)."""
        assert self.media is not None
        self.media_pending += len(self.media[0](chunk))

    def mark_media(self) -> int:
        """Media cost since the last mark_media."""
        assert self.media is not None
        n, self.media_pending = self.media_pending + len(self.media[1](False)), 0
        return n

    def mark(self, key: tuple[str, str] | None = None, end: bool = False) -> int:
        """Cost since the last mark, booked to `key` if that part was fed whole."""
        n, self.pending = self.pending + len(self.data[1](end)), 0
        if key is not None:
            self.costs[key] = self.costs.get(key, 0) + n
        return n

    def close(self) -> dict[tuple[str, str], float]:
        """Whole parts' costs, scaled to the unflushed stream's size."""
        self.mark(("data", OVERHEAD_KEY), end=True)
        scale = (self.plain_size + len(self.plain[1](True))) / max(1, sum(self.costs.values()))
        return {k: v * scale for k, v in self.costs.items()}


def _plan(files: list[tuple[str, int, int]], budget: int) -> list[tuple[str, int, int]]:
    """(source, offset, length) reads at evenly spaced bytes of (source, start, size) files."""
    total = files[-1][1] + files[-1][2]
    if total <= budget:
        return [(src, 0, n) for src, _, n in files if n]
    size = min(CHUNK, budget, max(MIN_CHUNK, budget // 32))  # 32+ reads where possible
    m, starts = max(1, budget // max(1, min(size, total // len(files)))), [f[1] for f in files]
    while True:
        reads, last = [], (-1, 0)
        for k in range(m):
            pos = (2 * k + 1) * total // (2 * m)
            i = bisect.bisect_right(starts, pos) - 1
            src, start, n = files[i]
            off, end = (0, n) if n <= size else (pos - start, min(n, pos - start + size))
            if last[0] == i:  # never the same bytes twice: they would compress as repeats
                off = max(off, last[1])
            if off < end:
                reads.append((src, off, end - off))
                last = (i, end)
        if sum(r[2] for r in reads) <= budget or m == 1:
            return reads
        m = max(1, min(m - 1, m * budget // sum(r[2] for r in reads)))


class _Group:
    """Everything one section or folder contributes, gathered in one pass over the rows."""

    def __init__(self, key: str, budget: int, media_fast: bool) -> None:
        self.est, self.budget, self.stride = Estimate(key), budget, 1
        self.media_fast = media_fast  # media strata are measured with pack's media settings
        self.whole: list[Entry] | None = []  # all members while the group is small
        self.strata: dict[tuple[str, int, bool], list[tuple[str, int, int]]] = {}
        self.kept: list[tuple[int, Entry]] = []

    def add(self, e: Entry) -> None:
        """Count a member and keep what the samples need."""
        est, index = self.est, self.est.members
        est.members += 1
        # Only long or non-ASCII names (or huge sizes and ids) need PAX records: a longer header.
        simple = len(e.arcname) < 100 and len(e.linkname) <= 100 and max(e.uid, e.gid) < 8 ** 7
        simple = simple and (e.arcname + e.linkname).isascii() and e.size < 8 ** 11
        if simple:  # long or non-ASCII user and group names need PAX records too
            owner, group = _names(e.uid, e.gid)
            simple = len(owner) <= 32 and len(group) <= 32 and (owner + group).isascii()
        est.tar_bytes += BLOCK if simple else len(_header(e))
        if e.kind == "file":
            est.files += 1
            est.raw_bytes += e.size
            est.tar_bytes += e.size + (-e.size % BLOCK)
            ext, media = os.path.splitext(e.arcname)[1].lower(), self.media_fast and \
                frame_wanted(e.arcname, e.size) is True
            files = self.strata.setdefault((ext[:9], e.size.bit_length() // 2, media), [])
            files.append((e.source, files[-1][1] + files[-1][2] if files else 0, e.size))
        if est.raw_bytes > self.budget or est.members > EXACT_MEMBERS:
            self.whole = None
        elif self.whole is not None:
            self.whole.append(e)
        # Runs of RUN consecutive members, thinned by doubling the stride: bounded, even, stable.
        if (index // RUN) % self.stride == 0:
            self.kept.append((index, e))
            if len(self.kept) > KEEP:
                self.stride *= 2
                self.kept = [(i, x) for i, x in self.kept if (i // RUN) % self.stride == 0]


def _allot(totals: Mapping[tuple[str, int, bool], int], budget: int
           ) -> dict[tuple[str, int, bool], int]:
    """Split a group's read budget over its strata: a floor each, the rest by raw bytes."""
    floor, whole = budget // (4 * max(1, len(totals))), max(1, sum(totals.values()))
    rest = budget - floor * len(totals)
    return {k: min(t, floor + rest * t // whole) for k, t in totals.items()}


def _feed_sampled(g: _Group, sim: _Sim, read: Reader) -> float:
    """Contents extrapolated per stratum by raw bytes, plus sampled headers per member."""
    cost = 0.0
    totals = {k: f[-1][1] + f[-1][2] for k, f in g.strata.items()}
    for key, share in _allot(totals, g.budget).items():
        got, media = 0, key[2] and sim.media is not None
        for source, offset, length in _plan(g.strata[key], share):
            chunk = read(source, offset, length)
            got += len(chunk)
            sim.feed_media(chunk) if media else sim.feed(chunk, whole=False)
        g.est.sampled_bytes += got
        measured = sim.mark_media() if media else sim.mark()
        cost += measured * totals[key] / got if got else totals[key]  # unread: as stored
    for _, e in g.kept:  # headers back to back still match each other, as in the stream
        sim.feed(_header(e) + bytes(-e.size % BLOCK if e.kind == "file" else 0), whole=False)
    return cost + sim.mark() * g.est.members / max(1, len(g.kept))


def _feed_whole(g: _Group, sim: _Sim, read: Reader) -> float:
    """Feed the group's exact tar stream; returns its cost unless booked for rescaling."""
    small = g.est.tar_bytes <= RESCALE  # next to a big group a flush costs nothing: no copy
    media = 0
    for e in g.whole or ():
        sim.feed(_header(e), small)
        if e.kind == "file" and e.size:
            body = read(e.source, 0, e.size)
            g.est.sampled_bytes += len(body)
            body += bytes(-len(body) % BLOCK)
            if sim.media is not None and frame_wanted(e.arcname, e.size) is True:
                sim.feed_media(body)
            else:
                sim.feed(body, small)
    if sim.media is not None:
        media = sim.mark_media()
    measured = sim.mark(("data", g.est.key) if small else None)
    return float(media) + (0.0 if small else float(measured))


def _feed_metadata(groups: dict[str, _Group], sim: _Sim) -> dict[str, float]:
    """Feed metadata.json (sampled entries); returns per group its raw over its sampled bytes."""
    sim.feed(tarfile.TarInfo("metadata.json").tobuf(tarfile.PAX_FORMAT) + _fixed_text().encode())
    sim.mark(("data", OVERHEAD_KEY))
    texts = {k: [_meta_text(e) for _, e in g.kept] for k, g in groups.items()}
    for part in range(3):  # all permissions, then all files, then all manifest rows
        for key, rows in texts.items():
            sim.feed("".join(t[part] for t in rows).encode())
            sim.mark(("meta", key))
    # Its padding and the tar end (two zero blocks, a record's padding): half a block/record.
    sim.feed(bytes(BLOCK // 2 + 2 * BLOCK + RECORD // 2))
    sim.mark(("data", OVERHEAD_KEY))
    factors = {}
    for key, g in groups.items():  # the runs are spread evenly: scale by member count
        sample = sum(len("".join(t).encode()) for t in texts[key])
        g.est.metadata_bytes = round(sample * g.est.members / max(1, len(g.kept)))
        factors[key] = g.est.metadata_bytes / max(1, sample)
    return factors


def estimate_compressed(rows: Iterable[Entry], fmt: str, level: int, *, budget: int = 4 << 20,
                        read: Reader | None = None, media_fast: bool = True
                        ) -> dict[str, Estimate]:
    """Per section/folder key (plus OVERHEAD_KEY): compressed bytes each adds to the archive."""
    # Groups within budget are compressed whole; larger ones sampled: at most `budget` read each.
    read = read or read_range
    groups: dict[str, _Group] = {}
    for e in rows:
        media = media_fast and fmt == "zstd"
        (groups.get(e.section) or groups.setdefault(e.section, _Group(e.section, budget, media))
         ).add(e)
    sim = _Sim(fmt, level, media_fast)
    direct = {k: _feed_whole(g, sim, read) if g.whole is not None else _feed_sampled(g, sim, read)
              for k, g in groups.items()}
    factors = _feed_metadata(groups, sim)
    costs = sim.close()
    for key, g in groups.items():
        cost = direct[key] + costs.get(("data", key), 0.0) + costs[("meta", key)] * factors[key]
        g.est.estimated_bytes, g.est.exact = round(cost), g.whole is not None and g.stride == 1
    return {**{k: g.est for k, g in groups.items()}, OVERHEAD_KEY: Estimate(
        OVERHEAD_KEY, members=1, tar_bytes=3 * BLOCK, metadata_bytes=len(_fixed_text()),
        estimated_bytes=round(costs[("data", OVERHEAD_KEY)]), exact=True)}


def estimate_total(estimates: Mapping[str, Estimate], key: str = "total") -> Estimate:
    """The sum of several estimates (every group plus OVERHEAD_KEY: the whole archive)."""
    total = Estimate(key, exact=all(e.exact for e in estimates.values()))
    for f in fields(Estimate):
        if f.type in ("int", int):
            setattr(total, f.name, sum(getattr(e, f.name) for e in estimates.values()))
    return total
