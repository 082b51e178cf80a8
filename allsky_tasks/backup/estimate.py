"""Compressed-size estimates, measured by compressing a bounded sample of the real files."""

from __future__ import annotations

import bisect
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from ..archive.compression import frame_wanted
from .member_text import fixed_text, member_header, member_meta_text, tar_names
from .stream_sim import OVERHEAD_KEY, StreamSim

if TYPE_CHECKING:
    from .scan import Entry

BLOCK, RECORD = tarfile.BLOCKSIZE, tarfile.RECORDSIZE
CHUNK, MIN_CHUNK = 64 << 10, 4 << 10  # one read from a large file: many reads spread wide
EXACT_MEMBERS = 20_000  # a group within budget and this size is compressed whole, not sampled
RUN, KEEP = 32, 256  # header/metadata samples: runs of consecutive members, about KEEP kept
RESCALE = 1 << 20  # whole groups up to this tar size are also compressed unflushed (see StreamSim)
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
        simple = simple and e.mtime_ns % 1_000_000_000 == 0  # an exact time: a PAX record
        if simple:  # long or non-ASCII user and group names need PAX records too
            owner, group = tar_names(e.uid, e.gid)
            simple = len(owner) <= 32 and len(group) <= 32 and (owner + group).isascii()
        est.tar_bytes += BLOCK if simple else len(member_header(e))
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


def _feed_sampled(g: _Group, sim: StreamSim, read: Reader) -> float:
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
        sim.feed(member_header(e) + bytes(-e.size % BLOCK if e.kind == "file" else 0), whole=False)
    return cost + sim.mark() * g.est.members / max(1, len(g.kept))


def _feed_whole(g: _Group, sim: StreamSim, read: Reader) -> float:
    """Feed the group's exact tar stream; returns its cost unless booked for rescaling."""
    small = g.est.tar_bytes <= RESCALE  # next to a big group a flush costs nothing: no copy
    media = 0
    for e in g.whole or ():
        sim.feed(member_header(e), small)
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


def _feed_metadata(groups: dict[str, _Group], sim: StreamSim) -> dict[str, float]:
    """Feed metadata.json (sampled entries); returns per group its raw over its sampled bytes."""
    sim.feed(tarfile.TarInfo("metadata.json").tobuf(tarfile.PAX_FORMAT) + fixed_text().encode())
    sim.mark(("data", OVERHEAD_KEY))
    texts = {k: [member_meta_text(e) for _, e in g.kept] for k, g in groups.items()}
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
    sim = StreamSim(fmt, level, media_fast)
    direct = {k: _feed_whole(g, sim, read) if g.whole is not None else _feed_sampled(g, sim, read)
              for k, g in groups.items()}
    factors = _feed_metadata(groups, sim)
    costs = sim.close()
    for key, g in groups.items():
        cost = direct[key] + costs.get(("data", key), 0.0) + costs[("meta", key)] * factors[key]
        g.est.estimated_bytes, g.est.exact = round(cost), g.whole is not None and g.stride == 1
    return {**{k: g.est for k, g in groups.items()}, OVERHEAD_KEY: Estimate(
        OVERHEAD_KEY, members=1, tar_bytes=3 * BLOCK, metadata_bytes=len(fixed_text()),
        estimated_bytes=round(costs[("data", OVERHEAD_KEY)]), exact=True)}


def estimate_total(estimates: Mapping[str, Estimate], key: str = "total") -> Estimate:
    """The sum of several estimates (every group plus OVERHEAD_KEY: the whole archive)."""
    total = Estimate(key, exact=all(e.exact for e in estimates.values()))
    for f in fields(Estimate):
        if f.type in ("int", int):
            setattr(total, f.name, sum(getattr(e, f.name) for e in estimates.values()))
    return total
