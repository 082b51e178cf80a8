"""A listed backup (Record), built from whatever metadata an archive or its sidecar has."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from ..archive.members import manifest_of
from ..archive.metadata import NAMESPACE

__all__ = ["Record", "make_record", "namespace", "set_members"]


@dataclass
class Record:
    """One backup as listed."""

    path: Path
    type: str  # config | images | unknown
    created: str
    timestamp: float
    version: str
    cameratype: str
    cameramodel: str
    size: int
    pinned: bool
    verified: bool | None  # None: never verified
    verified_at: str | None
    spec: str
    kind: str  # ours | allsky
    source: str  # sidecar | archive | none
    mtime: float = 0.0  # breaks ties between backups made in the same second
    problem: str | None = None
    verified_epoch: float | None = None  # when the last full read was (our state folder)
    verify_problems: list[str] = field(default_factory=list)  # why the last read failed
    stale: bool = False  # the last full read is older than the spec's verify.every
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The archive's file name."""
        return self.path.name

    @property
    def night_set(self) -> str | None:
        """The per-night set this archive belongs to (one backup of many archives), if any."""
        per_night = namespace(self.metadata).get("perNight")
        return str(per_night.get("set")) if isinstance(per_night, dict) else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready row (without the full metadata)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metadata"}
        row["path"], row["name"], row["set"] = str(self.path), self.name, self.night_set
        return row


def set_members(records: list[Record], name: str) -> list[Record]:
    """The archives of one per-night set, oldest night first."""
    members = [r for r in records if r.night_set == name]
    return sorted(members, key=lambda r: (namespace(r.metadata)["perNight"].get("folder", ""),
                                          r.timestamp))


def namespace(meta: dict[str, Any]) -> dict[str, Any]:
    """Our namespace in a metadata document ({} if absent or malformed)."""
    ours = meta.get(NAMESPACE)
    return ours if isinstance(ours, dict) else {}


def _timestamp(meta: dict[str, Any], mtime: float) -> tuple[str, float]:
    """Display time and sort key: our ISO time, Allsky's local `created`, else the mtime."""
    ours = namespace(meta)
    for value, fmt in ((ours.get("createdIso"), None), (meta.get("created"), "%Y-%m-%d %H:%M:%S")):
        if not isinstance(value, str):
            continue
        try:
            when = datetime.fromisoformat(value) if fmt is None else datetime.strptime(value, fmt)
            return when.strftime("%Y-%m-%d %H:%M:%S"), when.timestamp()
        except ValueError:
            continue
    return datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S"), mtime


def _text(value: Any, default: str = "unknown") -> str:
    """A metadata value for display."""
    return str(value) if isinstance(value, (str, int, float)) and str(value) else default


def make_record(path: Path, meta: dict[str, Any] | None, source: str, st: os.stat_result,
                problem: str | None = None, check: dict[str, Any] | None = None) -> Record:
    """A listing row from whatever metadata we have, and the last full read of this very file.

    `check` is the verification record of our state folder (never a sidecar's own claim);
    it also says what the archive's content is (ours, its spec) whatever sidecar sits beside it.
    """
    meta = meta or {}
    ours = namespace(meta)
    if meta:
        kind = "images" if meta.get("backupType") == "images" else "config"
    else:
        kind = next((k for k in ("config", "images") if f"-{k}-" in path.name), "unknown")
    created, ts = _timestamp(meta, st.st_mtime)
    spec = ours.get("spec", {}).get("name") if isinstance(ours.get("spec"), dict) else None
    spec = str(spec) if spec and "imported" not in ours else "allsky"
    content = "ours" if manifest_of(meta) is not None else "allsky"
    if check and check.get("kind") in ("ours", "allsky"):  # learned from the archive itself
        content = check["kind"]
        spec = str(check.get("spec") or spec) if content == "ours" else spec
    images = kind == "images"
    return Record(
        path=path, type=kind, created=created, timestamp=ts,
        version=_text(meta.get("version")),
        cameratype="N/A" if images else _text(meta.get("cameratype")),
        cameramodel="N/A" if images else _text(meta.get("cameramodel")),
        size=st.st_size, pinned=False,  # from our state: listing.load_record
        verified=None if check is None else check.get("ok") is True,
        verified_at=check.get("verifiedAt") if check else None,
        spec=spec, kind=content, source=source, mtime=st.st_mtime, problem=problem,
        metadata=meta, verified_epoch=check.get("epoch") if check else None,
        verify_problems=list(check.get("problems") or []) if check else [])
