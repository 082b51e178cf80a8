"""One scan row: an archive member as found on disk (Entry), and a section's totals (Stats)."""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["Entry", "Stats", "json_str"]


# json's own C string escaper; ASCII output keeps surrogate-escaped names writable.
json_str = json.encoder.encode_basestring_ascii


@dataclass(slots=True)
class Entry:
    """One archive member as found on disk."""

    arcname: str
    source: str
    kind: str  # file | dir | symlink
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    linkname: str
    section: str

    def to_line(self) -> str:
        """The JSON row as one line; built by hand because json.dumps per row dominated scans."""
        esc = json_str
        return (f"[{esc(self.arcname)},{esc(self.source)},\"{self.kind}\",{self.size},"
                f"{self.mode},{self.uid},{self.gid},{self.mtime_ns},{esc(self.linkname)},"
                f"{esc(self.section)}]\n")

    def to_row(self) -> list[object]:
        """Compact JSON row (field order as declared)."""
        return [self.arcname, self.source, self.kind, self.size, self.mode, self.uid,
                self.gid, self.mtime_ns, self.linkname, self.section]

    @classmethod
    def from_row(cls, row: list[object]) -> Entry:
        """Inverse of to_row."""
        return cls(*row)  # type: ignore[arg-type]  # a row to_row wrote: the fields in their order


@dataclass
class Stats:
    """File count and raw bytes of one section or night folder."""

    key: str
    files: int = 0
    dirs: int = 0
    links: int = 0
    raw_bytes: int = 0
