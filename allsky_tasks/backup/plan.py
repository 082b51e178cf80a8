"""The plan: what Allsky's create dialog shows (sections or folders, sizes, measured estimates)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..service.control import ServiceConfig, pause_needed
from ..spec.model import Spec
from ..spec.sections import BY_KEY, IMAGES_SECTION
from .estimate import Estimate, estimate_compressed, estimate_total
from .scan import Entry, ScanSummary, read_rows
from .space import existing_parent, format_bytes, free_bytes, required_bytes, spec_margin

ALLSKY_RATIO = 0.92  # Allsky's own estimate: raw x 0.92 for everything
_CORE_PARTS = "overlays (myTemplates, images, fonts, config), module flows, env.json"


def _group(est: Estimate) -> dict[str, Any]:
    """The sizes of one section or folder, JSON-ready."""
    return {"files": est.files, "members": est.members, "rawBytes": est.raw_bytes,
            "estimatedBytes": est.estimated_bytes, "ratio": est.ratio,
            "sampledBytes": est.sampled_bytes, "measuredWhole": est.exact,
            "metadataBytes": est.metadata_bytes}


def _sections(spec: Spec, summary: ScanSummary, ests: dict[str, Estimate]) -> list[dict[str, Any]]:
    """One row per selected config section, in the section table's order; core always."""
    rows = []
    for key in ("core",) + tuple(k for k in spec.sections if k != "core"):
        section = BY_KEY[key]
        row = {"key": key, "shortdescription": section.shortdescription,
               "description": section.description, "required": section.required,
               "allskyNative": section.allsky_native, **_group(ests.get(key, Estimate(key)))}
        if key == "core" and summary.camera:
            # The live settings.json/cc.json go in under the current camera's names.
            row["includes"] = [summary.camera["settingsfile"], summary.camera["ccfile"]]
        rows.append(row)
    return rows


def _folders(summary: ScanSummary, ests: dict[str, Estimate]) -> list[dict[str, Any]]:
    """One row per selected night folder (an empty one still shows, with zeros)."""
    return [{"name": name, **_group(ests.get(name, Estimate(name)))}
            for name in summary.image_folders]


def _others(spec: Spec, ests: dict[str, Estimate], shown: set[str]) -> list[dict[str, Any]]:
    """Groups outside the table with files in them: loose files in images/, extra includes."""
    labels = {"images": ("images/", "files loose in the images folder"),
              "include": ("Extra includes", ", ".join(spec.include))}
    return [{"key": key, "label": labels.get(key, (key, ""))[0],
             "description": labels.get(key, ("", ""))[1], **_group(est)}
            for key, est in ests.items() if key not in shown and est.files]


def _counting_databases(rows: Iterator[Entry], names: set[str], sizes: list[int]
                        ) -> Iterator[Entry]:
    """Pass rows through, noting database sizes (pack makes a private copy of each)."""
    for e in rows:
        if e.arcname in names:
            sizes.append(e.size)
        yield e


def build_plan(spec: Spec, summary: ScanSummary, rows_path: Path, *, free: int | None = None,
               budget: int = 4 << 20) -> dict[str, Any]:
    """Everything the create dialog shows for a spec, JSON-ready, from a scan's rows."""
    db_sizes: list[int] = []
    rows = _counting_databases(read_rows(rows_path), set(summary.database_files), db_sizes)
    ests = estimate_compressed(rows, spec.format, spec.level, budget=budget,
                               media_fast=spec.media_compression == "fast")
    total = estimate_total(ests)
    plan: dict[str, Any] = {
        "spec": spec.name, "description": spec.description, "type": spec.type,
        "format": spec.format, "level": spec.level,
        "mediaCompression": spec.media_compression if spec.format == "zstd" else None,
        "fingerprint": summary.fingerprint,
        "destination": str(spec.destination),
        "archivePattern": f"allsky-{spec.type}-backup-YYYYMMDD-HHMMSS"
                          f"{'-night-<folder>' if spec.per_night else ''}{spec.suffix}",
        "camera": summary.camera, "warnings": list(summary.warnings),
    }
    if spec.type == "config":
        plan["sections"] = _sections(spec, summary, ests)
        shown = {row["key"] for row in plan["sections"]}
    else:
        plan["allFolders"], plan["folders"] = summary.image_all, _folders(summary, ests)
        shown = set(summary.image_folders)
        plan["section"] = {"key": IMAGES_SECTION.key,
                           "shortdescription": IMAGES_SECTION.shortdescription}
    plan["other"] = _others(spec, ests, shown)
    # Folders alone (the images folder's own entry) count as archive overhead.
    shown |= {row["key"] for row in plan["other"]}
    overhead = estimate_total({k: e for k, e in ests.items() if k not in shown})
    plan["overhead"] = {"label": "Archive overhead", "description": "metadata.json, tar end",
                        **_group(overhead)}
    plan["totals"] = {**_group(total), "members": summary.entries,
                      "allskyEstimateBytes": round(summary.raw_bytes * ALLSKY_RATIO)}
    needed = _needed(total.estimated_bytes, total.metadata_bytes) + sum(db_sizes)
    free = free_bytes(spec.destination) if free is None else free
    margin, floor = spec_margin(getattr(spec, "free_space", None))
    required = required_bytes(needed, margin, floor)
    from ..copies.mounts import mount_problem, must_be_mounted

    # The refusal pack would make: a USB destination that is not mounted fits nowhere.
    unmounted = mount_problem(spec.destination, spec.home) if must_be_mounted(
        spec.destination, spec.must_be_mounted) else None
    fits = free >= required and unmounted is None
    plan["space"] = {"path": str(existing_parent(spec.destination)), "freeBytes": free,
                     "neededBytes": needed, "requiredBytes": required, "fits": fits,
                     "marginPercent": margin * 100, "minFreeBytes": floor,
                     "notMounted": unmounted}
    plan["fits"] = fits
    cfg = ServiceConfig.from_spec(spec.service)
    pause, reason = pause_needed(cfg, "databases" in spec.sections or bool(summary.database_files))
    plan["service"] = {"unit": cfg.unit, "policy": cfg.pause, "pause": pause, "reason": reason}
    return plan


def _needed(estimated: int, metadata: int) -> int:
    """Destination bytes for an archive: itself, its sidecar and the temporary files."""
    # The sidecar (metadata re-indented, ~1.4x), metadata.json and its manifest rows while
    # packing (~1.5x): 4x the metadata leaves room. Database copies are added by the caller.
    return estimated + 4 * metadata


def share(plan: dict[str, Any], keys: Iterable[str]) -> dict[str, int]:
    """Estimated and needed bytes of an archive of only some sections/folders (per night)."""
    rows = {r.get("key", r.get("name")): r
            for r in plan.get("sections", []) + plan.get("folders", []) + plan["other"]}
    picked = [rows[k] for k in keys if k in rows] + [plan["overhead"]]
    estimated = sum(r["estimatedBytes"] for r in picked)
    return {"estimatedBytes": estimated,
            "neededBytes": _needed(estimated, sum(r["metadataBytes"] for r in picked))}


def size_text(raw: int, estimated: int) -> str:
    """Allsky's row text: "20.0 MB (est. 9.4 MB)"."""
    return f"{format_bytes(raw)} (est. {format_bytes(estimated)})"


_DESCRIPTION_WIDTH = 46


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Rows of (name, description, files, size) as text; descriptions wrap in their column."""
    width = max(len(r[0]) for r in rows)
    out = []
    for name, description, files, size in rows:
        lines = textwrap.wrap(description, _DESCRIPTION_WIDTH) or [""]
        out.append(f"  {name:<{width}}  {lines[0]:<{_DESCRIPTION_WIDTH}} {files:>6}  {size}")
        out += [f"  {'':<{width}}  {line}" for line in lines[1:]]
    return [line.rstrip() for line in out]


def _rows(plan: dict[str, Any]) -> list[str]:
    """The table: sections or folders, other groups, overhead, total."""
    rows: list[tuple[str, str, str, str]] = []
    if plan["type"] == "config":
        rows.append(("Section", "Description", "Files", "Size"))
        for row in plan["sections"]:
            text = row["description"]
            if row.get("includes"):
                text = f"Always included: {', '.join(row['includes'])}, {_CORE_PARTS}"
            rows.append((row["shortdescription"], text, str(row["files"]),
                         size_text(row["rawBytes"], row["estimatedBytes"])))
    else:
        rows.append(("Folder", "All folders" if plan["allFolders"] else "Selected folders",
                     "Files", "Size"))
        rows += [(row["name"], "", str(row["files"]),
                  size_text(row["rawBytes"], row["estimatedBytes"])) for row in plan["folders"]]
    rows += [(row["label"], row["description"], str(row["files"]),
              size_text(row["rawBytes"], row["estimatedBytes"])) for row in plan["other"]]
    over, totals = plan["overhead"], plan["totals"]
    rows.append((over["label"], over["description"], "",
                 f"(est. {format_bytes(over['estimatedBytes'])})"))
    rows.append(("Total selected", f"Allsky's estimate (raw x {ALLSKY_RATIO}): "
                 f"{format_bytes(totals['allskyEstimateBytes'])}", str(totals["files"]),
                 size_text(totals["rawBytes"], totals["estimatedBytes"])))
    return _table(rows)


def render_plan(plan: dict[str, Any]) -> str:
    """The plan as text, laid out like the create dialog."""
    head = f"{plan['spec']}: {plan['description']}" if plan["description"] else plan["spec"]
    media = ", media fast (no entropy stage)" if plan.get("mediaCompression") == "fast" else ""
    lines = [head, f"  {plan['type']} backup, {plan['format']} level {plan['level']}{media} -> "
                   f"{Path(plan['destination']) / plan['archivePattern']}"]
    if plan.get("camera"):
        cam = plan["camera"]
        lines.append(f"  camera {cam['cameratype']} {cam['cameramodel']}: "
                     f"{cam['settingsfile']}, {cam['ccfile']}")
    lines += [""] + _rows(plan) + [""]
    space = plan["space"]
    verdict = "fits" if space["fits"] else "DOES NOT FIT"
    if space.get("notMounted"):
        verdict = f"NOT MOUNTED ({space['notMounted']}): a backup would be refused"
    lines.append(f"  free space at {space['path']}: {format_bytes(space['freeBytes'])}; needs "
                 f"{format_bytes(space['neededBytes'])} + margin "
                 f"({space.get('marginPercent', 10):g} %, at least "
                 f"{format_bytes(space.get('minFreeBytes', 64 << 20))}), "
                 f"{format_bytes(space['requiredBytes'])} in all: {verdict}")
    service = plan["service"]
    lines.append(f"  service: {'pause' if service['pause'] else 'no pause'} ({service['reason']})")
    lines += [f"  warning: {w}" for w in plan["warnings"]]
    return "\n".join(lines)
