"""Per-night archives: one archive per night folder, so a closed night is never packed again."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UnsafePathError
from ..safefs import read_bytes
from .scan import Entry, ScanSummary, Stats

RECORD = "nights.json"


def load_record(state: Path) -> dict[str, dict[str, Any]]:
    """night -> {fingerprint, archive} of the archive last made for it."""
    try:
        data = json.loads(read_bytes(state / RECORD, owned=True))
    except (OSError, ValueError, UnsafePathError):  # not ours: every night is packed again
        return {}
    return data if isinstance(data, dict) else {}


def nights_to_pack(summary: ScanSummary, record: dict[str, dict[str, Any]]) -> list[str]:
    """Nights that are new, changed since their archive, or whose archive is gone."""
    out = []
    for night in summary.image_folders:
        known = record.get(night) or {}
        if (known.get("fingerprint") != summary.section_fingerprints.get(night)
                or not Path(str(known.get("archive", ""))).exists()):
            out.append(night)
    return out


def all_present(state: Path) -> bool:
    """Every night's recorded archive still exists (pack is up to date only then)."""
    record = load_record(state)
    return bool(record) and all(Path(str(r.get("archive", ""))).exists()
                                for r in record.values())


def night_summary(summary: ScanSummary, night: str) -> ScanSummary:
    """The scan summary narrowed to one night folder, as if only it was selected."""
    stats = summary.stats.get(night, Stats(night))
    fingerprint = summary.section_fingerprints.get(night, "")
    return replace(summary, fingerprint=fingerprint,
                   entries=stats.files + stats.dirs + stats.links, raw_bytes=stats.raw_bytes,
                   stats={night: stats}, image_all=False, image_folders=[night],
                   targets=[f"images/{night}"], warnings=[], database_files=[],
                   section_fingerprints={night: fingerprint})


def night_rows(rows: Iterable[Entry], night: str) -> Iterator[Entry]:
    """The scanned members of one night folder."""
    return (entry for entry in rows if entry.section == night)
