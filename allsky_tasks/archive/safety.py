"""Safety: check an untrusted .tar.gz/.tar.zst in one streaming read, never extracting it."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnsafeArchiveError
from ..safefs import open_source
from .io import CHUNK, HashingReader, ZstdFrameWalker, open_decompressed
from .limits import Limiter, Limits, Stop  # Limits re-exported: scrub and many callers take it from here
from .member_names import CONFIG_ROOTS, in_area, path_problem, resolve_link
from .members import Member, compare, manifest_of
from .structure import structure_problems
from .tar_scan import Scan, read_tar
from .verify import CORRUPT

__all__ = ["ArchiveRejected", "Limits", "SafetyReport", "check_areas", "claimed_areas", "validate_archive"]

_SUFFIX = {"allsky": ".tar.gz", "zstd": ".tar.zst"}
_MAGIC = {"allsky": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
_MODE = re.compile(r"[0-7]{3,4}")


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


class _SinkFailed(Exception):
    """Writing the caller's copy failed (the OSError is the cause): not the archive's fault."""


def _stream(path: Path, fmt: str, limits: Limits, scan: Scan,
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
            if walker is not None:
                for at in range(0, len(view), 4096):
                    walker.feed(view[at:at + 4096])
            if sink is not None:
                try:
                    sink(view)
                except OSError as e:
                    raise _SinkFailed() from e

        digest = None
        hashed: HashingReader
        if fresh:
            from .readback import FileDigest

            digest = FileDigest(path)
            hashed = _Counting(raw, observe)
        else:
            hashed = HashingReader(raw, observe)
        stream = open_decompressed(Path("x" + _SUFFIX[fmt]), hashed)
        limiter = Limiter(stream, hashed, limits)
        try:
            read_tar(limiter, scan)
            while hashed.read(CHUNK):  # compressed bytes the decompressor did not need
                pass
            if walker is not None and not walker.complete:
                raise EOFError("the zstd frame ends early (file cut short)")
        except _SinkFailed as e:
            assert e.__cause__ is not None  # always raised from the sink's OSError
            raise e.__cause__ from None
        except Stop as e:
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

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # narrower: what readers pass
        """Read and count."""
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]  # a binary file has it; typing.IO omits it
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
        raise Stop(f"imageTargets {targets!r} are not folders below images/", "metadata.json")
    return ("images",) if "images" in targets else tuple(targets)


def check_areas(scan: Scan, areas: tuple[str, ...]) -> None:
    """Every member, and every link's end (through other links), inside `areas`; else Stop.

    Pack applies this to what it wrote before the archive gets its name, so it never keeps
    an archive that verify, import or restore would refuse.
    """
    for name in scan.types:
        # An images archive may also hold the images folder above its targets.
        if name not in ("metadata.json", "images") and not in_area(name, areas):
            raise Stop(f"outside the areas metadata.json claims ({', '.join(areas)})", name)
    for key, target in scan.links.items():  # with every link known: chains are followed
        end = resolve_link(key, target, scan.links)
        if end is None or not (in_area(end, areas) or end == "images"):
            raise Stop(f"symlink to {target!r} leads outside {', '.join(areas)} "
                        "(through other links) or loops", key)


def claimed_areas(backup_type: str, image_targets: list[str]) -> tuple[str, ...]:
    """The areas an archive of this type and these images targets claims."""
    return _claimed_areas({"backupType": backup_type, "imageTargets": image_targets})


def _metadata(raw: bytes | None, scan: Scan) -> dict[str, Any]:
    """metadata.json parses, is an object, and claims exactly what the archive holds."""
    types = scan.types
    if types.get("metadata.json", "file") != "file":
        raise Stop("metadata.json is not a regular file", "metadata.json")
    if raw is None:
        raise Stop("no root metadata.json (not an Allsky backup)")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Stop(f"metadata.json is not valid JSON: {e}", "metadata.json") from None
    if not isinstance(meta, dict):
        raise Stop(f"metadata.json is a JSON {type(meta).__name__}, not an object",
                    "metadata.json")
    areas = _claimed_areas(meta)
    check_areas(scan, areas)
    perms, files = meta.get("permissions", {}), meta.get("files")
    for path in [*(perms if isinstance(perms, dict) else [perms]),
                 *(files if isinstance(files, list) else [])]:
        if not isinstance(path, str) or path_problem(path) or \
                not (in_area(path, areas) or path == "images"):
            raise Stop(f"metadata.json names {path!r}: unsafe or outside its own areas",
                        "metadata.json")
    for path, entry in (perms.items() if isinstance(perms, dict) else ()):
        mode = entry.get("mode") if isinstance(entry, dict) else None
        if not isinstance(mode, str) or not _MODE.fullmatch(mode) or int(mode, 8) & 0o4000:
            raise Stop(f"permissions of {path!r}: bad mode {mode!r}", "metadata.json")
    problems = structure_problems(meta, scan.entries)
    if problems:
        raise Stop(problems[0], "metadata.json")
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
    scan = Scan(limits, hash_members)
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
                raise Stop(f"does not match its own manifest: {problems[0]}{more}",
                            "metadata.json")
    except Stop as e:
        raise ArchiveRejected(path, e.problem, e.member, size) from None
    return SafetyReport(archive=str(path), format=fmt,
                        kind="ours" if manifest is not None else "allsky", metadata=metadata,
                        members=len(scan.entries), bytes=scan.file_bytes,
                        decompressed_bytes=decompressed, size=size, sha256=sha256,
                        seconds=round(time.monotonic() - started, 3), entries=scan.entries)
