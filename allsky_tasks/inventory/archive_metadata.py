"""An archive's own metadata.json, streamed out of it, and made fit for a sidecar."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from ..archive.io import CHUNK, HashingReader, ZstdFrameWalker, archive_format, drain, open_decompressed
from ..archive.metadata import NAMESPACE
from ..archive.verify import CORRUPT
from ..safefs import open_file

__all__ = ["MAX_METADATA", "SIDECAR_ONLY", "clean_metadata", "read_archive_metadata"]

MAX_METADATA = 64 << 20
# Keys only the sidecar may carry: an archive's own metadata.json must not set them.
SIDECAR_ONLY = ("pinned", "verify", "imported", "archive")


def clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """An archive's metadata fit for a sidecar: the sidecar-only keys removed."""
    ours = metadata.get(NAMESPACE)
    ours = {k: v for k, v in ours.items() if k not in SIDECAR_ONLY} if isinstance(
        ours, dict) else {}
    return {**metadata, NAMESPACE: ours}


def read_archive_metadata(archive: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """metadata.json streamed from the archive (it is last) plus size/SHA-256, or an error."""
    walker = ZstdFrameWalker() if archive_format(archive) == "zstd" else None
    raw_meta: bytes | None = None
    facts: dict[str, Any] = {}
    with open_file(archive, "rb") as raw:  # never through a link, never blocking
        hashed = HashingReader(raw, walker.feed if walker else None)
        try:
            stream = open_decompressed(archive, hashed)
            with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 16) as tar:  # see safety
                while (info := tar.next()) is not None:
                    if info.name == "metadata.json" and info.isreg() and \
                            info.size <= MAX_METADATA and raw_meta is None:
                        member = tar.extractfile(info)  # a regular file: never None
                        raw_meta = member.read() if member is not None else None
                    tar.members.clear()  # type: ignore[attr-defined]  # not in the stub; stream mode: hold no headers
            drain(stream)
            while hashed.read(CHUNK):
                pass
            if walker is not None and not walker.complete:
                raise EOFError("the zstd frame ends early (file cut short)")
        except CORRUPT as e:
            facts["problem"] = f"damaged or incomplete archive: {type(e).__name__}: {e}"
        facts.update(sizeBytes=hashed.size, sha256=hashed.sha256.hexdigest())
    try:
        meta = json.loads(raw_meta) if raw_meta is not None else None
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        facts.setdefault("problem", "no usable metadata.json in the archive")
        return None, facts
    return meta, facts
