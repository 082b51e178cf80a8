"""One meaning of "verified": every byte matches, the safety checks pass, restore would accept it.

The check is the very read import and restore make (safety.validate_archive: checksums to
the end, every member's path, type, link and area, the files list, our manifest when the
archive's own metadata.json carries one), plus the archive's size and SHA-256 against what
was recorded when it was written, plus the metadata rules restore applies before it starts.
A failure says where: the file's real size, the compressed offset and member where reading
stopped, and the expected and actual SHA-256 of the whole file.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import VerifyError
from .io import CHUNK
from .metadata import NAMESPACE
from .safety import ArchiveRejected, Limits, SafetyReport, validate_archive
from .structure import structure_problems

# The names restore requires (restore.checks.check_metadata applies the same two rules).
_NAMED = (("settingsfile", re.compile(r"config/settings_[^/]+\.json")),
          ("ccfile", re.compile(r"config/cc_[^/]+\.json")))


def restore_problems(metadata: dict[str, Any], report: SafetyReport) -> list[str]:
    """What restore's metadata check would refuse, beyond the safety checks."""
    problems = structure_problems(metadata, report.entries)
    if metadata.get("backupType") == "config":
        for key, rule in _NAMED:
            value = metadata.get(key)
            if not isinstance(value, str) or not rule.fullmatch(value):
                problems.append(f"metadata.json: {key} {value!r} is not a "
                                f"config/{key[:-4]}_*.json name (restore refuses it)")
    return problems


def file_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 and size of the whole file, read to its end."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fact_problems(sha256: str, size: int, recorded: dict[str, Any]) -> list[str]:
    """The whole file's SHA-256 and size against what was recorded when it was written."""
    problems = []
    want_sha, want_size = recorded.get("sha256"), recorded.get("sizeBytes")
    if isinstance(want_size, int) and want_size != size:
        problems.append(f"the file is {size} bytes; {want_size} were written")
    if isinstance(want_sha, str) and want_sha != sha256:
        problems.append(f"SHA-256 of the whole file ({size} bytes) is {sha256}, expected "
                        f"{want_sha}")
    return problems


def fresh(path: Path, written: dict[str, Any], limits: Limits = Limits(),
          on_read: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The check of an archive this run just wrote, in one read of the medium.

    Proven: the file holds exactly the bytes pack wrote (its SHA-256 and size, read back from
    the disk, equal those pack computed while writing); those bytes decompress to exactly
    what pack fed the compressor (zstd frame checksums / gzip CRC, read to the end); every
    member header passes the import/restore safety checks and matches its manifest row
    (type, size, mode, mtime, link), the files list and metadata.json are consistent. The
    member contents were hashed into the manifest from the very buffers fed to the
    compressor, so they are not hashed a second time: that is what makes this cheaper than
    `scrub`, which re-reads months later and hashes every member against the manifest.
    """
    if not isinstance(written.get("sha256"), str) or not isinstance(written.get("sizeBytes"),
                                                                     int):
        return scrub(path, written, limits, on_read)  # nothing to compare with: the full read
    result = scrub(path, written, limits, on_read, hash_members=False)
    result["method"] = ("fresh: the file's SHA-256 read back equals the one written; frame "
                        "checksums; member headers against the manifest; safety checks of "
                        "import and restore")
    return result


def recorded_facts(sidecar: dict[str, Any] | None) -> dict[str, Any]:
    """Size and SHA-256 a sidecar of ours recorded at backup time ({} for Allsky's)."""
    ours = (sidecar or {}).get(NAMESPACE)
    facts = ours.get("archive") if isinstance(ours, dict) else None
    return facts if isinstance(facts, dict) else {}


def scrub(path: Path, recorded: dict[str, Any] | None = None, limits: Limits = Limits(),
          on_read: Callable[[int], None] | None = None, hash_members: bool = True
          ) -> dict[str, Any]:
    """Read the archive completely; return what was proven, or raise VerifyError saying where."""
    started = time.monotonic()
    recorded = recorded or {}
    sink = (lambda view: on_read(len(view))) if on_read is not None else None
    try:
        report = validate_archive(path, limits, sink=sink, hash_members=hash_members)
    except ArchiveRejected as e:
        sha, size = file_sha256(path)
        where = f" in member {e.member!r}" if e.member else ""
        if e.problem.startswith("damaged or truncated"):
            first = (f"{e.problem}{where}; found after reading {e.read_bytes} of the file's "
                     f"{size} bytes (the damage lies before that offset)")
        else:  # intact perhaps, but import and restore refuse it: never a good backup
            first = f"unsafe, import and restore refuse it: {e.problem}{where}"
        problems = [first] + _fact_problems(sha, size, recorded)
        raise VerifyError(str(path), problems) from None
    problems = _fact_problems(report.sha256, report.size, recorded)
    problems += restore_problems(report.metadata, report)
    if problems:
        raise VerifyError(str(path), problems)
    ours = report.metadata.get(NAMESPACE)
    ours = ours if isinstance(ours, dict) else {}
    spec = ours.get("spec")
    return {"ok": True, "kind": report.kind, "members": report.members,
            "sha256": report.sha256, "sizeBytes": report.size,
            "type": report.metadata.get("backupType"),
            "spec": spec.get("name") if isinstance(spec, dict) and report.kind == "ours"
            and "imported" not in ours else None,
            "method": ("every member against the manifest in its metadata.json"
                       if report.kind == "ours" else "structure and files list (no manifest)")
            + "; safety checks of import and restore",
            "seconds": round(time.monotonic() - started, 3)}


def failure_record(error: VerifyError) -> dict[str, Any]:
    """The facts of a failed read worth keeping."""
    return {"problems": error.problems[:100]}
