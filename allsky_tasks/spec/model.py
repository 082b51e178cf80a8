"""The checked spec (Spec) with every path resolved, and its JSON form handed between tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sections import SECTIONS

__all__ = ["CONFIG_AREAS", "NIGHT_RE", "Spec", "spec_from_json", "spec_to_json"]

# Top-level names a config archive may hold; restore and import accept nothing else.
CONFIG_AREAS = tuple(sorted({"config"} | {p.split("/")[0] for s in SECTIONS
                                          for p in s.paths + s.globs if p[0] != "{"}))
NIGHT_RE = re.compile(r"^2\d{7}$")


@dataclass(frozen=True)
class Spec:
    """A validated spec with every path resolved."""

    name: str
    path: Path
    type: str
    description: str
    home: Path
    images: Path
    destination: Path
    sections: tuple[str, ...] = ()
    folders: Any = "all"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    format: str = "zstd"
    level: int = 3
    media_compression: str = "fast"
    service: dict[str, Any] = field(default_factory=dict)
    on_file_error: str = "fail"
    retention: dict[str, Any] = field(default_factory=dict)
    per_night: bool = False
    digest: str = ""
    free_space: dict[str, Any] = field(default_factory=dict)
    copies: tuple[dict[str, Any], ...] = ()  # `copies:` items as written (see copies/target.py)
    must_be_mounted: bool | None = None  # None: decided by the destination's path
    verify: dict[str, Any] = field(default_factory=dict)  # every, max_duration (re-reads)

    @property
    def suffix(self) -> str:
        """Archive file suffix for the format."""
        return ".tar.zst" if self.format == "zstd" else ".tar.gz"


def spec_to_json(spec: Spec) -> dict[str, Any]:
    """A JSON-ready form of a checked spec (state handed from validate to later tasks)."""
    data = {k: getattr(spec, k) for k in Spec.__dataclass_fields__}
    for key in ("path", "home", "images", "destination"):
        data[key] = str(data[key])
    data["sections"], data["include"], data["exclude"] = (
        list(spec.sections), list(spec.include), list(spec.exclude))
    data["copies"] = list(spec.copies)
    return data


def spec_from_json(data: dict[str, Any]) -> Spec:
    """Inverse of spec_to_json."""
    data = dict(data)
    for key in ("path", "home", "images", "destination"):
        data[key] = Path(data[key])
    for key in ("sections", "include", "exclude"):
        data[key] = tuple(data[key])
    data["copies"] = tuple(data.get("copies", ()))
    return Spec(**data)
