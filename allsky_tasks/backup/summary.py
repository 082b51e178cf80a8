"""The final summary of a backup: what it made, how fast, paused how long, verified or not."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..progress import human
from ..safefs import read_bytes


def _read(path: Path) -> Any:
    """A JSON state file, or {} if there is none."""
    return json.loads(read_bytes(path, owned=True)) if os.path.lexists(path) else {}


def estimate_record(estimated: int, actual: int) -> dict[str, Any]:
    """The sidecar's allskyTasks.estimate: how far the plan's estimate was from the archive."""
    error = 100 * (estimated - actual) / actual if actual else 0.0
    return {"estimatedBytes": estimated, "actualBytes": actual, "errorPercent": round(error, 2)}


def _estimate(records: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The plan's estimate against the real size, over all archives of the run."""
    if not records or any(r is None for r in records):
        return None
    return estimate_record(sum(r["estimatedBytes"] for r in records if r),
                           sum(r["actualBytes"] for r in records if r))


def backup_summary(st: Path, new: bool, run_warnings: list[str]) -> dict[str, Any]:
    """What the last backup of a spec produced (facts from the state files)."""
    packed, verified, scanned = (_read(st / n) for n in ("pack.json", "verify.json",
                                                           "scan.json"))
    service = packed.get("service") or {}
    results = packed["results"]
    size, raw = sum(r["size"] for r in results), sum(r["raw_bytes"] for r in results)
    seconds = round(sum(r["seconds"] for r in results), 3)
    warnings = list(dict.fromkeys(
        run_warnings + scanned.get("warnings", [])
        + [w for r in results for w in r.get("warnings", [])] + service.get("warnings", [])))
    return {
        "spec": st.name, "new": new, "archives": [r["archive"] for r in results],
        "sizeBytes": size, "rawBytes": raw, "members": sum(r["members"] for r in results),
        "ratio": round(size / raw, 4) if raw else None, "seconds": seconds,
        "throughput": round(raw / seconds) if seconds else None,
        "pausedSeconds": service.get("paused_seconds"), "verified": bool(verified.get("ok")),
        "estimate": _estimate([r.get("estimate") for r in results]), "warnings": warnings,
        "runSeconds": _run_seconds(), "copies": _copies(st),
    }


def _run_seconds() -> float | None:
    """Seconds since this doit run started (None outside a run)."""
    import time

    from . import reporter

    return None if reporter.RUN_STARTED is None else round(
        time.monotonic() - reporter.RUN_STARTED, 3)


def _copies(st: Path) -> list[dict[str, Any]]:
    """Where the newest archives' copies are (copies/records.py reads json only)."""
    from ..copies.records import summary_for

    return summary_for(st)


def render_summary(s: dict[str, Any]) -> str:
    """The summary as lines for the operator."""
    head = "new archive" if s["new"] else "up to date, latest archive"
    if not s["archives"]:
        lines = [f"backup {s['spec']}: nothing new to pack"]
    else:
        lines = [f"backup {s['spec']}: {head} {a}" for a in s["archives"]]
        lines += [f"  {human(s['sizeBytes'])} from {human(s['rawBytes'])} raw "
                  f"(ratio {s['ratio']}), {s['members']} members",
                  f"  verify: {'ok' if s['verified'] else 'NOT VERIFIED'}"]
        if s["new"]:  # an up-to-date summary does not repeat the old archive's pack time
            lines.insert(-1, f"  packed in {s['seconds']}s"
                         + (f" at {human(s['throughput'])}/s" if s["throughput"] else "")
                         + (f"; service paused {s['pausedSeconds']}s"
                            if s["pausedSeconds"] else ""))
    if s.get("estimate"):
        est = s["estimate"]
        lines.append(f"  estimate {human(est['estimatedBytes'])}, error {est['errorPercent']}%")
    lines += [f"  copy at {c['target']}: " + ("verified " + str(c["verifiedAt"]) if c["ok"]
              else "MISSING" + (" (required)" if c["required"] else " (optional)"))
              for c in s.get("copies", [])]
    lines += [f"  warning: {w}" for w in s["warnings"]]
    if s.get("runSeconds") is not None:
        lines.append(f"  run time {s['runSeconds']}s (this doit run, up to this summary)")
    return "\n".join(lines)
