"""Safety: check an untrusted .tar.gz/.tar.zst in one streaming read, never extracting it."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import sys
import tarfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from .io import BLOCK, CHUNK, HashingReader, ZstdFrameWalker, open_decompressed
from ..errors import UnsafeArchiveError
from ..safefs import open_source
from ..spec.sections import SECTIONS
from .verify import CORRUPT, Member, compare, manifest_of, member_of, structure_problems

_SUFFIX = {"allsky": ".tar.gz", "zstd": ".tar.zst"}
_MAGIC = {"allsky": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
_ALLOWED = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
            tarfile.SYMTYPE: "symlink"}
_REFUSED = {tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
            tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO",
            tarfile.CONTTYPE: "a contiguous file", tarfile.GNUTYPE_SPARSE: "a sparse file"}
# Control characters but tab (real file names have tabs); surrogates are non-UTF-8 bytes.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_MODE = re.compile(r"[0-7]{3,4}")
_TARBUF = 1 << 16  # tarfile copies its whole buffer per header: 1 MiB made 100k headers 2x slower
# Every top-level name a config backup may hold, from the one section table.
CONFIG_ROOTS = tuple(sorted({"config"} | {p.split("/")[0] for s in SECTIONS
                                          for p in s.paths + s.globs if p[0] != "{"}))
FILE_ROOTS = ("env.json", "metadata.json")  # never folders


@dataclass(frozen=True)
class Limits:
    """How much an untrusted archive may make us read (all configurable)."""

    max_members: int = 200_000
    max_total_bytes: int = 64 << 30
    max_ratio: float = 200.0
    ratio_grace_bytes: int = 8 << 20  # small archives of JSON legitimately compress very well
    max_metadata_bytes: int = 64 << 20
    max_header_bytes: int = 1 << 20  # tarfile reads PAX/GNU long-name headers whole


@dataclass
class SafetyReport:
    """What a successful check found."""

    archive: str
    format: str
    kind: str  # "ours" (checked against our manifest) or "allsky"
    metadata: dict[str, Any]
    members: int
    bytes: int
    decompressed_bytes: int
    size: int
    sha256: str
    seconds: float
    entries: list[Member] = field(default_factory=list, repr=False)


class ArchiveRejected(UnsafeArchiveError):
    """An archive failed a safety check: names the archive, the problem and the member."""

    def __init__(self, archive: Path | str, problem: str, member: str | None = None,
                 read_bytes: int = 0) -> None:  # read_bytes: compressed bytes read until then
        self.archive, self.problem, self.member = str(archive), problem, member
        self.read_bytes = read_bytes
        where = f" (member {member!r})" if member else ""
        super().__init__(f"{archive}: rejected: {problem}{where}",
                         hint="nothing was stored or extracted; use a backup you trust")


class _Stop(Exception):
    """A rule failed mid-stream (not an OSError/ValueError, so no layer swallows it)."""

    def __init__(self, problem: str, member: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.member = problem, member


class _SinkFailed(Exception):
    """Writing the caller's copy failed (the OSError is the cause): not the archive's fault."""


def path_problem(name: str) -> str | None:
    """Why a member or metadata path is unsafe, or None."""
    if not name or _CONTROL.search(name):
        return "empty name, or a NUL, control character or non-UTF-8 byte in it"
    parts = name.removesuffix("/").split("/")
    for bad, why in (("/", "absolute path"), ("..", "'..' in the path"),
                     (".", "'.' in the path (e.g. a ./ prefix)"), ("", "empty path component")):
        if name.startswith("/") if bad == "/" else bad in parts:
            return why
    if len(name.encode()) > 4096 or any(len(p.encode()) > 255 for p in parts):
        return "name too long"
    return None


def _ancestors(name: str) -> list[str]:
    """config/a/b -> [config, config/a]."""
    return ["/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)]


def _in_area(name: str, roots: tuple[str, ...]) -> bool:
    """True if name is one of the roots or below one (file roots have nothing below)."""
    return any(name == r or name.startswith(r + "/") and r not in FILE_ROOTS for r in roots)


def resolve_link(name: str, target: str, links: dict[str, str]) -> str | None:
    """Where a symlink leads inside the archive root, through its other links; None: out."""
    parts, todo, hops = name.split("/")[:-1], target.split("/"), 0
    while todo:
        comp = todo.pop(0)
        if comp == "..":
            if not parts:
                return None
            parts.pop()
        elif comp not in ("", "."):
            parts.append(comp)
            nxt = links.get("/".join(parts))
            if nxt is not None:
                hops += 1
                if hops > 40 or nxt.startswith("/"):
                    return None
                parts.pop()
                todo = nxt.split("/") + todo
    return "/".join(parts)


class _Limiter:
    """The decompressed stream as tarfile reads it: counted, capped, its tail remembered."""

    def __init__(self, stream: BinaryIO, hashed: HashingReader, limits: Limits) -> None:
        self.stream, self.hashed, self.limits, self.pos = stream, hashed, limits, 0
        self.window: int | None = None  # while tarfile reads headers: how far it may read
        self.recent: deque[tuple[int, bytes]] = deque()

    def read(self, size: int = -1) -> bytes:
        """Read, then stop at once if a limit was passed."""
        data = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.recent.append((self.pos, data))
        self.pos += len(data)
        # Keep enough to re-check the block tarfile stopped at (it reads ahead <= CHUNK).
        while self.pos - self.recent[0][0] - len(self.recent[0][1]) > 3 * CHUNK:
            self.recent.popleft()
        lim = self.limits
        if self.pos > lim.max_total_bytes:
            raise _Stop(f"more than {lim.max_total_bytes} bytes when decompressed (limit)")
        if self.pos > lim.ratio_grace_bytes and \
                self.pos > lim.max_ratio * max(self.hashed.size, 1):
            raise _Stop(f"decompresses to more than {lim.max_ratio:g} times its compressed "
                        "size (a decompression bomb?)")
        if self.window is not None and self.pos > self.window:
            raise _Stop(f"a member header larger than {lim.max_header_bytes} bytes")
        return data

    def tail_is_zero(self, start: int) -> bool:
        """True if every byte delivered from `start` on is NUL (and still remembered)."""
        if self.recent and self.recent[0][0] > start:
            return False
        tails = (data[max(0, start - begin):] for begin, data in self.recent)
        return all(tail.count(0) == len(tail) for tail in tails)


class _Scan:
    """Per-member rules, applied as each header arrives."""

    def __init__(self, limits: Limits, hash_members: bool = True) -> None:
        self.limits, self.file_bytes = limits, 0
        self.hash_members = hash_members  # False: data skipped (still decompressed, checksummed)
        self.types: dict[str, str] = {}
        self.parents: set[str] = set()
        self.links: dict[str, str] = {}
        self.entries: list[Member] = []
        self.metadata_raw: bytes | None = None
        self.current: str | None = None

    def add(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        """Check one member; hash its data (metadata.json's bytes are kept)."""
        name = self.current = info.name
        problem = path_problem(name)
        if problem:
            raise _Stop(problem, name)
        if info.offset_data - info.offset > self.limits.max_header_bytes:
            raise _Stop(f"a member header larger than {self.limits.max_header_bytes} bytes", name)
        if len(self.types) >= self.limits.max_members:
            raise _Stop(f"more than {self.limits.max_members} members (limit)", name)
        if info.type not in _ALLOWED:
            what = _REFUSED.get(info.type, f"an unsupported member type {info.type!r}")
            target = f" to {info.linkname!r}" if info.islnk() else ""
            raise _Stop(f"{what}{target} is not allowed", name)
        key, kind = name.rstrip("/"), _ALLOWED[info.type]
        self._place(key, kind)
        if kind != "dir" and info.mode & 0o4000 or kind == "file" and info.mode & 0o2000:
            raise _Stop(f"set-user/group-ID mode {info.mode & 0o7777:04o}", name)
        if kind == "symlink":
            self._link(key, info.linkname)
        digest = self._data(tar, info, key) if kind == "file" and (
            self.hash_members or key == "metadata.json") else None
        if key != "metadata.json":
            self.entries.append(member_of(info, digest))
            self.file_bytes += info.size * (kind == "file")

    def _place(self, key: str, kind: str) -> None:
        """No duplicates, nothing below a file or link, no file or link above a member."""
        if key in self.types:
            raise _Stop("duplicate member name", key)
        for parent in _ancestors(key):
            if self.types.get(parent, "dir") != "dir":
                raise _Stop(f"below {parent!r}, which is a {self.types[parent]}", key)
        if kind != "dir" and key in self.parents:
            raise _Stop(f"a {kind} where earlier members have a folder", key)
        self.types[key] = kind
        self.parents.update(_ancestors(key))

    def _link(self, key: str, target: str) -> None:
        """A symlink must be relative and stay inside the archive root."""
        if not target or _CONTROL.search(target):
            raise _Stop("symlink with an empty target or a control character", key)
        if target.startswith("/"):
            raise _Stop(f"symlink to the absolute path {target!r}", key)
        if posixpath.normpath(posixpath.join(posixpath.dirname(key), target)).startswith(".."):
            raise _Stop(f"symlink to {target!r} points outside the archive", key)
        self.links[key] = target

    def _data(self, tar: tarfile.TarFile, info: tarfile.TarInfo, key: str) -> str:
        """SHA-256 of a file member's data; metadata.json's bytes are kept (size-capped)."""
        keep = key == "metadata.json"
        if keep and info.size > self.limits.max_metadata_bytes:
            raise _Stop(f"metadata.json is {info.size} bytes (limit "
                        f"{self.limits.max_metadata_bytes})", key)
        fh = tar.extractfile(info)
        assert fh is not None
        digest, parts = hashlib.sha256(), []
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            parts += [chunk] if keep else []
        self.metadata_raw = b"".join(parts) if keep else self.metadata_raw
        return digest.hexdigest()


def _read_tar(limiter: _Limiter, scan: _Scan) -> None:
    """Iterate the members; after the tar end marker only NULs may follow."""
    headroom = limiter.limits.max_header_bytes + 2 * CHUNK
    limiter.window = headroom  # headers may be read only this far ahead (open reads one)
    with tarfile.open(fileobj=limiter, mode="r|", bufsize=_TARBUF) as tar:  # type: ignore
        while (info := tar.next()) is not None:
            limiter.window = None  # member data is capped by the total and ratio limits
            scan.add(tar, info)
            tar.members.clear()  # stream mode never looks back: don't hold 200k headers
            # Data not read by add (members not hashed) is skipped by the next header read.
            data_end = info.offset_data + (-(-info.size // BLOCK) * BLOCK if info.isreg() else 0)
            limiter.window = max(limiter.pos, data_end) + headroom
        end = tar.offset
    scan.current = "(after the last member)"
    # tarfile also ends quietly at a damaged header: the block it stopped at must be NULs.
    if not limiter.tail_is_zero(end):
        raise _Stop("data after the end of the tar archive (or a damaged header)")
    while chunk := limiter.read(CHUNK):
        if chunk.count(0) != len(chunk):
            raise _Stop("data after the end of the tar archive")
    if limiter.pos - end < 2 * BLOCK:
        raise _Stop("the tar end marker is missing (archive cut short?)")


def _stream(path: Path, fmt: str, limits: Limits, scan: _Scan,
            sink: Callable[[memoryview], object] | None) -> tuple[str, int, int]:
    """One read of the whole file: (sha256, compressed size, decompressed size).

    For an archive we just wrote (members not hashed), the caller compares the whole file's
    SHA-256 and size with those written: that proves it complete, so the frame walker (a
    Python call per 4 KiB) is skipped, and the SHA-256 is taken on a second core
    (readback.FileDigest) while this thread decompresses and parses.
    """
    fresh = not scan.hash_members
    with open_source(path) as raw:  # never blocking; an unreadable file is the caller's OSError
        if raw.read(4)[: len(_MAGIC[fmt])] != _MAGIC[fmt]:
            raise ArchiveRejected(path, f"not {'gzip' if fmt == 'allsky' else 'zstd'} data "
                                  f"although named {_SUFFIX[fmt]}")
        raw.seek(0)
        walker = ZstdFrameWalker() if fmt == "zstd" and not fresh else None

        def observe(view: memoryview) -> None:
            # Small slices: the walker copies its buffer per header, so a MiB of tiny
            # frames fed at once costs seconds; 4 KiB at a time costs milliseconds.
            for at in range(0, len(view), 4096) if walker is not None else ():
                walker.feed(view[at:at + 4096])  # type: ignore[union-attr]
            if sink is not None:
                try:
                    sink(view)
                except OSError as e:
                    raise _SinkFailed() from e

        digest = None
        if fresh:
            from .readback import FileDigest

            digest = FileDigest(path)
            hashed = _Counting(raw, observe)  # type: ignore[arg-type]
        else:
            hashed = HashingReader(raw, observe)  # type: ignore[arg-type]
        stream = open_decompressed(Path("x" + _SUFFIX[fmt]), hashed)  # type: ignore[arg-type]
        limiter = _Limiter(stream, hashed, limits)
        try:
            _read_tar(limiter, scan)
            while hashed.read(CHUNK):  # compressed bytes the decompressor did not need
                pass
            if walker is not None and not walker.complete:
                raise EOFError("the zstd frame ends early (file cut short)")
        except _SinkFailed as e:
            raise e.__cause__ from None  # type: ignore[misc]
        except _Stop as e:
            raise ArchiveRejected(path, e.problem, e.member or scan.current,
                                  hashed.size) from None
        except (*CORRUPT, RecursionError) as e:
            raise ArchiveRejected(path, f"damaged or truncated: {type(e).__name__}: {e}",
                                  scan.current, hashed.size) from e
        finally:
            if digest is not None and sys.exc_info()[0] is not None:
                digest.stop()
        if digest is not None:
            sha256, size = digest.result()
            if size != hashed.size:  # the file changed between the two reads
                raise ArchiveRejected(path, f"the file changed while it was checked ({size} "
                                      f"bytes hashed, {hashed.size} parsed)")
            return sha256, size, limiter.pos
        return hashed.sha256.hexdigest(), hashed.size, limiter.pos


class _Counting(HashingReader):
    """Counts compressed bytes without hashing them (a FileDigest hashes the file)."""

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read and count."""
        n = self.raw.readinto(buffer)
        if n:
            self.size += n
            if self.observer is not None:
                self.observer(memoryview(buffer)[:n])
        return n or 0


def _claimed_areas(meta: dict[str, Any]) -> tuple[str, ...]:
    """The roots the metadata says the archive holds."""
    if meta.get("backupType") != "images":
        return CONFIG_ROOTS
    targets = meta.get("imageTargets", ["images"])
    if not isinstance(targets, list) or not all(
            isinstance(t, str) and re.fullmatch(r"images(/[^/]+)?", t) and not path_problem(t)
            for t in targets):
        raise _Stop(f"imageTargets {targets!r} are not folders below images/", "metadata.json")
    return ("images",) if "images" in targets else tuple(targets)


def _metadata(raw: bytes | None, scan: _Scan) -> dict[str, Any]:
    """metadata.json parses, is an object, and claims exactly what the archive holds."""
    types = scan.types
    if types.get("metadata.json", "file") != "file":
        raise _Stop("metadata.json is not a regular file", "metadata.json")
    if raw is None:
        raise _Stop("no root metadata.json (not an Allsky backup)")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _Stop(f"metadata.json is not valid JSON: {e}", "metadata.json") from None
    if not isinstance(meta, dict):
        raise _Stop(f"metadata.json is a JSON {type(meta).__name__}, not an object",
                    "metadata.json")
    areas = _claimed_areas(meta)
    for name in types:
        # An images archive may also hold the images folder above its targets.
        if name not in ("metadata.json", "images") and not _in_area(name, areas):
            raise _Stop(f"outside the areas metadata.json claims ({', '.join(areas)})", name)
    for key, target in scan.links.items():  # with every link known: chains are followed
        end = resolve_link(key, target, scan.links)
        if end is None or not (_in_area(end, areas) or end == "images"):
            raise _Stop(f"symlink to {target!r} leads outside {', '.join(areas)} "
                        "(through other links) or loops", key)
    perms, files = meta.get("permissions", {}), meta.get("files")
    for path in [*(perms if isinstance(perms, dict) else [perms]),
                 *(files if isinstance(files, list) else [])]:
        if not isinstance(path, str) or path_problem(path) or \
                not (_in_area(path, areas) or path == "images"):
            raise _Stop(f"metadata.json names {path!r}: unsafe or outside its own areas",
                        "metadata.json")
    for path, entry in (perms.items() if isinstance(perms, dict) else ()):
        mode = entry.get("mode") if isinstance(entry, dict) else None
        if not isinstance(mode, str) or not _MODE.fullmatch(mode) or int(mode, 8) & 0o4000:
            raise _Stop(f"permissions of {path!r}: bad mode {mode!r}", "metadata.json")
    problems = structure_problems(meta, scan.entries)
    if problems:
        raise _Stop(problems[0], "metadata.json")
    return meta


def validate_archive(path: Path, limits: Limits = Limits(),
                     sink: Callable[[memoryview], object] | None = None,
                     hash_members: bool = True) -> SafetyReport:
    """Check an untrusted archive completely; raise ArchiveRejected at the first problem.

    `sink` receives every compressed byte as it is checked: import copies with it, so the
    stored bytes are exactly the checked bytes. hash_members=False (only for an archive this
    process just wrote, see scrub.fresh) skips the members' SHA-256; everything else stands.
    """
    started = time.monotonic()
    fmt = next((f for f, sfx in _SUFFIX.items() if path.name.lower().endswith(sfx)), None)
    if fmt is None:
        raise ArchiveRejected(path, "not a .tar.gz or .tar.zst file")
    scan = _Scan(limits, hash_members)
    sha256, size, decompressed = _stream(path, fmt, limits, scan, sink)
    try:
        metadata = _metadata(scan.metadata_raw, scan)
        manifest = manifest_of(metadata)
        if manifest is not None:
            if not hash_members and isinstance(manifest, list):
                manifest = [{k: v for k, v in row.items() if k != "sha256"}
                            if isinstance(row, dict) else row for row in manifest]
            try:
                problems = compare(scan.entries, manifest)
            except (KeyError, TypeError, AttributeError) as e:
                problems = [f"malformed manifest ({type(e).__name__}: {e})"]
            if problems:
                more = f" (and {len(problems) - 1} more)" if problems[1:] else ""
                raise _Stop(f"does not match its own manifest: {problems[0]}{more}",
                            "metadata.json")
    except _Stop as e:
        raise ArchiveRejected(path, e.problem, e.member, size) from None
    return SafetyReport(archive=str(path), format=fmt,
                        kind="ours" if manifest is not None else "allsky", metadata=metadata,
                        members=len(scan.entries), bytes=scan.file_bytes,
                        decompressed_bytes=decompressed, size=size, sha256=sha256,
                        seconds=round(time.monotonic() - started, 3), entries=scan.entries)
