"""Verify: re-read a finished archive end to end and check every member against its manifest."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from ..errors import VerifyError
from ..safefs import open_file
from .io import CHUNK, HashingReader, ZstdFrameWalker, archive_format, drain, open_decompressed
from .members import Member, StreamCompare, compare, manifest_of, member_of
from .metadata import NAMESPACE
from .structure import structure_problems

# Errors that mean "the bytes are damaged", from each layer of the stack.
CORRUPT = (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, OSError, ValueError)


@dataclass
class ArchiveRead:
    """Everything one full read of an archive yields."""

    members: list[Member] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    sha256: str = ""
    size: int = 0
    error: str | None = None


def _hash_member(tar: tarfile.TarFile, info: tarfile.TarInfo, keep: bool
                 ) -> tuple[str, bytes | None]:
    """SHA-256 of a file member; its bytes too when `keep` (metadata.json)."""
    fh = tar.extractfile(info)
    assert fh is not None
    digest = hashlib.sha256()
    parts: list[bytes] = []
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        digest.update(chunk)
        if keep:
            parts.append(chunk)
    return digest.hexdigest(), b"".join(parts) if keep else None


def read_archive(path: Path, on_read: Callable[[int], None] | None = None,
                 on_member: Callable[[Member], None] | None = None) -> ArchiveRead:
    """Read every byte: members with hashes, metadata.json, compressed SHA-256.

    With `on_member`, each member (metadata.json too) goes to it instead of into the result,
    so memory stays flat however many members there are.
    """
    result = ArchiveRead()
    current = "(before the first member)"
    walker = ZstdFrameWalker() if archive_format(path) == "zstd" else None
    with open_file(path, "rb") as raw:  # never through a link, never blocking
        def observe(view: memoryview) -> None:
            if walker is not None:
                walker.feed(view)
            if on_read is not None:
                on_read(len(view))

        hashed = HashingReader(raw, observe)
        try:
            stream = open_decompressed(path, hashed)
            # 64 KiB: tarfile's stream buffer at 1 MiB halves speed on many small members.
            with tarfile.open(fileobj=stream, mode="r|", bufsize=64 << 10) as tar:
                while (info := tar.next()) is not None:
                    tar.members.clear()  # type: ignore[attr-defined]  # not in the stub; stream mode: hold no headers
                    current = info.name
                    keep = (on_member is None and info.name == "metadata.json"
                            and result.metadata is None)
                    digest, kept = _hash_member(tar, info, keep) if info.isreg() else (None,
                                                                                       None)
                    if kept is not None:
                        result.metadata = json.loads(kept)
                        continue
                    member = member_of(info, digest)
                    if on_member is not None:
                        on_member(member)
                    else:
                        result.members.append(member)
            drain(stream)  # checksums and trailing garbage are only seen at the very end
            while hashed.read(CHUNK):  # bytes the decompressor did not need still count
                pass
            if walker is not None and not walker.complete:
                raise EOFError("the zstd frame ends early (file cut short)")
        except CORRUPT as e:
            result.error = (f"archive is damaged or truncated (at or after member {current}): "
                            f"{type(e).__name__}: {e}")
        result.sha256, result.size = hashed.sha256.hexdigest(), hashed.size
    return result


def _fact_problems(read: ArchiveRead, facts: dict[str, Any]) -> list[str]:
    """The archive's own SHA-256 and size against what its sidecar recorded (if it did)."""
    problems = []
    if facts.get("sha256") is not None and facts["sha256"] != read.sha256:
        problems.append(f"archive SHA-256 is {read.sha256}, recorded {facts['sha256']}")
    if facts.get("sizeBytes") is not None and facts["sizeBytes"] != read.size:
        problems.append(f"archive size is {read.size} bytes, recorded {facts['sizeBytes']}")
    return problems


def verify_streamed(archive: Path, on_read: Callable[[int], None] | None = None
                    ) -> dict[str, Any] | None:
    """Verify against a sidecar in our streamed layout, in flat memory (None: other layout)."""
    from .manifest import iter_manifest, read_trailers

    trailers = read_trailers(archive)
    rows = iter_manifest(archive)
    if not trailers or "archive" not in trailers or rows is None:
        return None
    started = time.monotonic()
    check = StreamCompare(rows)
    read = read_archive(archive, on_read, on_member=check)
    facts = trailers["archive"]
    problems = ([read.error] if read.error else []) + _fact_problems(read, facts)
    if not read.error:
        problems += check.finish()
        if check.metadata is None:
            problems.append("metadata.json: missing from the archive")
        elif facts.get("metadataSha256") not in (None, check.metadata.sha256):
            problems.append("metadata.json: its content differs from the one the sidecar "
                            "recorded")
    if problems:
        raise VerifyError(str(archive), problems)
    return {"ok": True, "members": check.members, "sha256": read.sha256,
            "sizeBytes": read.size, "seconds": round(time.monotonic() - started, 3),
            "verifiedAt": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def verify(archive: Path, sidecar: dict[str, Any] | None = None,
           on_read: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Check an archive of ours end to end; raise VerifyError listing every problem."""
    started = time.monotonic()
    read = read_archive(archive, on_read)
    expected = (sidecar or {}).get(NAMESPACE, {}).get("archive", {})
    problems = ([read.error] if read.error else []) + _fact_problems(read, expected)
    manifest = manifest_of(sidecar) or manifest_of(read.metadata)
    if read.metadata is None:
        problems.append("metadata.json: missing from the archive")
    if manifest is None:
        problems.append("no manifest in the sidecar or metadata.json: cannot check members")
    elif not read.error:
        problems += compare(read.members, manifest)
        inner = manifest_of(read.metadata)
        if inner is not None and sidecar is not None and inner != manifest:
            problems.append("metadata.json: its manifest differs from the sidecar's")
    if problems:
        raise VerifyError(str(archive), problems)
    return {"ok": True, "members": len(read.members), "sha256": read.sha256,
            "sizeBytes": read.size, "seconds": round(time.monotonic() - started, 3),
            "verifiedAt": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def verify_allsky(archive: Path, sidecar: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check an archive without our manifest (Allsky-made): full read, CRC, structure, files."""
    started = time.monotonic()
    read = read_archive(archive)
    expected = ((sidecar or {}).get(NAMESPACE) or {}).get("archive") or {}
    problems = ([read.error] if read.error else []) + _fact_problems(read, expected)
    if not read.error:
        problems += structure_problems(read.metadata, read.members, upload_rules=False)
    if problems:
        raise VerifyError(str(archive), problems)
    return {"ok": True, "method": "structure", "members": len(read.members),
            "sha256": read.sha256, "sizeBytes": read.size,
            "seconds": round(time.monotonic() - started, 3),
            "verifiedAt": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
