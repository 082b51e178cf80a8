"""Verify: re-read a finished archive end to end and check every member against its manifest."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import zstandard

from .io import (CHUNK, HashingReader, ZstdFrameWalker, archive_format, drain,
                         open_decompressed)
from ..errors import VerifyError
from ..safefs import open_file
from .metadata import NAMESPACE, full_mode

_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
# Errors that mean "the bytes are damaged", from each layer of the stack.
CORRUPT = (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, OSError, ValueError)


@dataclass
class Member:
    """One member as actually read from the archive."""

    path: str
    type: str
    size: int
    mode: str
    mtime: int
    uid: int
    gid: int
    linkname: str = ""
    sha256: str | None = None


@dataclass
class ArchiveRead:
    """Everything one full read of an archive yields."""

    members: list[Member] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    sha256: str = ""
    size: int = 0
    error: str | None = None


def _member(info: tarfile.TarInfo, digest: str | None) -> Member:
    """Our view of a tar header."""
    return Member(path=info.name.rstrip("/"), type=_KINDS.get(info.type, f"type {info.type!r}"),
                  size=info.size if info.isreg() else 0, mode=full_mode(info.mode),
                  mtime=int(info.mtime), uid=info.uid, gid=info.gid,
                  linkname=info.linkname if info.issym() or info.islnk() else "", sha256=digest)


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
                    tar.members.clear()  # stream mode never looks back: hold no headers
                    current = info.name
                    keep = (on_member is None and info.name == "metadata.json"
                            and result.metadata is None)
                    digest, kept = _hash_member(tar, info, keep) if info.isreg() else (None,
                                                                                       None)
                    if kept is not None:
                        result.metadata = json.loads(kept)
                        continue
                    member = _member(info, digest)
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


def manifest_of(metadata: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """Our manifest rows from a metadata document, if it has them."""
    ours = (metadata or {}).get(NAMESPACE)
    rows = ours.get("manifest") if isinstance(ours, dict) else None
    return rows if isinstance(rows, list) else None


def compare(members: list[Member], manifest: list[dict[str, Any]]) -> list[str]:
    """Every difference between what was read and the manifest, by member name."""
    problems: list[str] = []
    seen: dict[str, Member] = {}
    for m in members:
        if m.path in seen:
            problems.append(f"{m.path}: duplicate member")
        seen[m.path] = m
    expected = {row["path"]: row for row in manifest}
    for path in sorted(set(expected) - set(seen)):
        problems.append(f"{path}: missing from the archive")
    for path in sorted(set(seen) - set(expected)):
        problems.append(f"{path}: in the archive but not in the manifest")
    for path in sorted(set(seen) & set(expected)):
        problems += compare_one(seen[path], expected[path])
    return problems


def compare_one(got: Member, want: dict[str, Any]) -> list[str]:
    """Differences between one member read and its manifest row."""
    checks = [("type", got.type, want.get("type")), ("size", got.size, want.get("size", 0)),
              ("mode", got.mode, want.get("mode")), ("mtime", got.mtime, want.get("mtime"))]
    if want.get("type") == "file":
        checks.append(("sha256", got.sha256, want.get("sha256")))
    if want.get("type") == "symlink":
        checks.append(("link target", got.linkname, want.get("linkname")))
    return [f"{got.path}: {what} is {have!r}, manifest says {should!r}"
            for what, have, should in checks if have != should]


class StreamCompare:
    """Compares members with manifest rows as both stream by, in the same order."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self.rows = rows
        self.pending: dict[str, dict[str, Any]] = {}  # rows read ahead (only if out of order)
        self.problems: list[str] = []
        self.metadata: Member | None = None
        self.members = 0

    def __call__(self, member: Member) -> None:
        """Check the next member read."""
        if member.path == "metadata.json" and self.metadata is None:
            self.metadata = member
            return
        self.members += 1
        row = self.pending.pop(member.path, None)
        while row is None:
            nxt = next(self.rows, None)
            if nxt is None:
                self.problems.append(f"{member.path}: in the archive but not in the manifest"
                                     " (or a duplicate member)")
                return
            if nxt.get("path") == member.path:
                row = nxt
            else:
                self.pending[str(nxt.get("path"))] = nxt
        self.problems += compare_one(member, row)

    def finish(self) -> list[str]:
        """Problems, including manifest rows no member matched."""
        for row in self.rows:
            self.pending[str(row.get("path"))] = row
        return self.problems + [f"{path}: missing from the archive"
                                for path in sorted(self.pending)]


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



def member_of(info: tarfile.TarInfo, digest: str | None) -> Member:
    """Our view of a tar header (public, for the safety checks of untrusted archives)."""
    return _member(info, digest)


def _unknown(value: Any) -> bool:
    """Allsky's 'unknown' (or missing/empty) metadata value."""
    return not isinstance(value, str) or value.strip() in ("", "unknown")


def structure_problems(meta: Any, members: list[Member], upload_rules: bool = True
                       ) -> list[str]:
    """Allsky's structural rules for a backup, plus `files` against the members read.

    upload_rules adds what Allsky's upload insists on (version and camera known, the
    settings/cc files metadata names present).
    """
    if not isinstance(meta, dict):
        return ["metadata.json: missing or not a JSON object"]
    kinds = {m.path: m.type for m in members}
    kind = meta.get("backupType")
    problems: list[str] = []
    if kind == "images":
        if not any(n == "images" or n.startswith("images/") for n in kinds):
            problems.append("images/: no images folder in an images backup")
    elif kind == "config":
        if kinds.get("env.json") != "file":
            problems.append("env.json: missing from a config backup")
        for prefix in ("config/settings_", "config/cc_"):
            if not any(n.startswith(prefix) and n.endswith(".json") and t == "file"
                       for n, t in kinds.items()):
                problems.append(f"{prefix}*.json: missing from a config backup")
        if upload_rules:
            for key in ("version", "cameratype", "cameramodel"):
                if _unknown(meta.get(key)):
                    problems.append(f"metadata.json: {key} is missing or unknown")
            for key in ("settingsfile", "ccfile"):
                named = meta.get(key)
                if named is not None and (not isinstance(named, str)
                                          or kinds.get(named) != "file"):
                    problems.append(f"metadata.json: {key} {named!r} is not in the archive")
    else:
        problems.append(f"metadata.json: backupType {kind!r} is not 'config' or 'images'")
    files = meta.get("files")
    if isinstance(files, list) and all(isinstance(f, str) for f in files):
        listed, stored = set(files), {n for n, t in kinds.items() if t != "dir"}
        problems += [f"{p}: listed in metadata.json but missing from the archive"
                     for p in sorted(listed - stored)]
        problems += [f"{p}: in the archive but not in metadata.json's files list"
                     for p in sorted(stored - listed)]
    else:
        problems.append("metadata.json: files is not a list of names")
    return problems


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
