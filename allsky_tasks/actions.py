"""doit actions, one per stage: the command layer that reports, and turns errors into failures."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from doit.exceptions import TaskFailed

from .archive_io import atomic_write_bytes
from .environment import Environment
from .errors import AllskyTasksError, PackError, ServiceStartError, VerifyError
from .lock import destination_lock
from .manifest import read_sidecar, record_verify, sidecar_path, write_sidecar
from .pack import clean_stale_parts, pack
from .progress import QUIET_ENV, RUN_WARNINGS, human, tracked
from .scan import ScanSummary, read_rows, scan
from .service import (ServiceConfig, pause_needed, paused_service, recover_stale_marker,
                      signals_as_interrupt)
from .spec import Spec, load_spec, spec_from_json, spec_to_json

# Errors of this run, newest last: the CLI maps the first to its exit code.
FAILURES: list[AllskyTasksError] = []
# Specs packed by this process (the summary says "new archive" or "up to date").
PACKED: set[str] = set()


def _write_json(path: Path, data: Any) -> None:
    """Atomically write a JSON state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode(), 0o640)


def _read_json(path: Path) -> Any:
    """Read a JSON state file."""
    return json.loads(path.read_bytes())


def _say(message: str) -> None:
    """Operator-facing line on stdout (doit's verbosity and quiet mode apply)."""
    if os.environ.get(QUIET_ENV, "") in ("", "0"):
        print(message, flush=True)


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a clean doit failure (no traceback) and remember them."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AllskyTasksError as e:
            FAILURES.append(e)
            return TaskFailed(f"[{type(e).__name__}] {e}")
    return wrapper


def _load(st: Path) -> tuple[Spec, ScanSummary | None]:
    """The checked spec and, once scanned, the scan summary."""
    spec = spec_from_json(_read_json(st / "spec.json"))
    scan_file = st / "scan.json"
    summary = ScanSummary.from_dict(_read_json(scan_file)) if scan_file.exists() else None
    return spec, summary


@stage
def run_validate(spec_path: str, env: Environment, state: str) -> None:
    """Check one spec completely and hand the resolved spec to later tasks."""
    with tracked(Path(spec_path).stem, "validate") as progress:
        spec = load_spec(Path(spec_path), env)
        _write_json(Path(state) / "spec.json", spec_to_json(spec))
        progress.finish(type=spec.type)
    what = ", ".join(spec.sections) if spec.type == "config" else f"folders {spec.folders}"
    _say(f"{spec_path}: ok ({spec.type}: {what}; {spec.format} -> {spec.destination})")


@stage
def run_scan(state: str) -> None:
    """Stat-walk the selection; rewrite the fingerprint only when something changed."""
    st = Path(state)
    spec, _ = _load(st)
    with tracked(spec.name, "scan") as progress:
        part = st / "scan.jsonl.part"
        try:
            with part.open("w", encoding="utf-8") as out:
                summary = scan(spec, out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        fp_path = st / "fingerprint"
        old = fp_path.read_text().strip() if fp_path.exists() else None
        changed = old != summary.fingerprint or not (st / "scan.jsonl").exists()
        if changed:
            os.replace(part, st / "scan.jsonl")
            _write_json(st / "scan.json", summary.to_dict())
            atomic_write_bytes(fp_path, (summary.fingerprint + "\n").encode(), 0o640)
        else:
            part.unlink()
        for warning in summary.warnings:
            progress.warning(warning)
        progress.finish(members=summary.entries, rawBytes=summary.raw_bytes, changed=changed)
    _say(f"scan {spec.name}: {summary.entries} members, {human(summary.raw_bytes)} "
         f"({'changed' if changed else 'unchanged'})")


def archive_present(state: str) -> bool:
    """pack is only up to date while the archive it made still exists."""
    try:
        return Path(_read_json(Path(state) / "pack.json")["archive"]).exists()
    except (OSError, ValueError, KeyError):
        return False


def _service(spec: Spec, summary: ScanSummary | None) -> tuple[ServiceConfig, bool, str]:
    """The spec's service settings and whether this backup pauses it, with the reason."""
    cfg = ServiceConfig.from_spec(spec.service)
    selected = "databases" in spec.sections or bool(summary and summary.database_files)
    needed, reason = pause_needed(cfg, selected)
    return cfg, needed, reason


@stage
def run_pause(state: str, env: Environment) -> None:
    """Say whether pack will pause the service; restart one a killed run left stopped."""
    spec, summary = _load(Path(state))
    with tracked(spec.name, "pause") as progress:
        cfg, needed, reason = _service(spec, summary)
        recovered = recover_stale_marker(cfg, env.state_dir)
        if recovered:
            progress.warning(recovered)
        progress.finish(pause=needed, reason=reason)
    _say(f"service {spec.name}: {reason}")


@stage
def run_pack(state: str, env: Environment) -> None:
    """Stop the service if needed, stream a new archive, start the service whatever happens."""
    st = Path(state)
    spec, summary = _load(st)
    assert summary is not None
    cfg, needed, reason = _service(spec, summary)
    work = st / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = None
    with tracked(spec.name, "pack", summary.raw_bytes) as progress:
        try:
            spec.destination.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as e:
            raise PackError(f"cannot create destination {spec.destination}: {e.strerror}") from e
        # SIGTERM/SIGHUP become KeyboardInterrupt so the restart below runs (doit's teardown
        # would not); a SIGKILL leaves the marker that the next run's pause task acts on.
        try:
            with signals_as_interrupt(), destination_lock(spec.destination):
                for name in clean_stale_parts(spec.destination):
                    progress.warning(f"removed {name} left by an interrupted run")
                with paused_service(cfg, needed, reason, env.state_dir) as record:
                    if record.stopped:
                        _say(f"  stopped {cfg.unit} ({reason})")
                    result = pack(spec, summary, read_rows(st / "scan.jsonl"), work,
                                  extra={"service": record.to_dict()},
                                  on_bytes=progress.update, on_warning=progress.warning)
        except ServiceStartError:
            if result is not None:  # the archive is good: keep it complete, with its sidecar
                _write_json(st / "pack.json", {**result.__dict__, "service": record.to_dict()})
                _manifest(st)
                _say(f"  kept {result.archive}")
            raise
        for warning in record.warnings:
            progress.warning(warning)
        progress.finish(archive=result.archive, sizeBytes=result.size, members=result.members)
    PACKED.add(spec.name)
    if record.stopped:
        _say(f"  started {cfg.unit} again after {record.paused_seconds}s")
    _write_json(st / "pack.json", {**result.__dict__, "service": record.to_dict()})
    _say(f"pack {spec.name}: {result.archive} ({human(result.size)} from "
         f"{human(result.raw_bytes)}, {result.members} members, {result.seconds}s)")


def _manifest(st: Path) -> Path:
    """Write the sidecar of the archive recorded in pack.json; returns its path."""
    packed = _read_json(st / "pack.json")
    archive = Path(packed["archive"])
    metadata = _read_json(Path(packed["metadata"]))
    # The pause ended after metadata.json was sealed: the sidecar has the full record.
    metadata.setdefault("allskyTasks", {})["service"] = packed.get("service")
    path = write_sidecar(archive, metadata, {"sizeBytes": packed["size"],
                                             "sha256": packed["sha256"]})
    _write_json(st / "manifest.json", {"archive": str(archive), "sidecar": str(path)})
    shutil.rmtree(st / "work", ignore_errors=True)
    return path


@stage
def run_manifest(state: str) -> None:
    """Write the sidecar: the archive's metadata plus its own size and SHA-256."""
    st = Path(state)
    with tracked(st.name, "manifest") as progress:
        path = _manifest(st)
        progress.finish(sidecar=str(path))
    _say(f"manifest {st.name}: {path}")


@stage
def run_verify(state: str) -> None:
    """Re-read the whole archive and check every member against the manifest."""
    st = Path(state)
    archive = Path(_read_json(st / "manifest.json")["archive"])
    with tracked(st.name, "verify", archive.stat().st_size) as progress:
        try:
            result = verify_archive(archive, lambda n: progress.update(n, archive.name))
        except VerifyError as e:
            if sidecar_path(archive).exists():
                record_verify(archive, {"ok": False, "problems": e.problems[:100]})
            raise
        progress.finish(ok=True, members=result["members"])
    _write_json(st / "verify.json", {"archive": str(archive), **result})
    _say(f"verify {st.name}: ok, {result['members']} members, sha256 {result['sha256'][:16]}...")


def verify_archive(archive: Path, on_read: Callable[[int], None] | None = None
                   ) -> dict[str, Any]:
    """Verify an archive of ours against its sidecar and record the result there."""
    from .verify import verify  # zstandard/tarfile only when verifying

    result = verify(archive, read_sidecar(archive), on_read)
    if sidecar_path(archive).exists():
        record_verify(archive, result)
    return result


@stage
def run_summary(state: str) -> None:
    """The backup's final summary, with every warning repeated."""
    st = Path(state)
    with tracked(st.name, "backup") as progress:
        summary = backup_summary(st, st.name in PACKED)
        progress.finish("done", **summary)
    _say(render_summary(summary))


def backup_summary(st: Path, new: bool) -> dict[str, Any]:
    """What the last backup of a spec produced (facts from the state files)."""
    packed = _read_json(st / "pack.json")
    verified = _read_json(st / "verify.json") if (st / "verify.json").exists() else {}
    scanned = _read_json(st / "scan.json") if (st / "scan.json").exists() else {}
    service = packed.get("service") or {}
    seconds = packed.get("seconds") or 0
    warnings = list(dict.fromkeys(RUN_WARNINGS.get(st.name, []) + scanned.get("warnings", [])
                                  + packed.get("warnings", []) + service.get("warnings", [])))
    return {
        "spec": st.name, "new": new, "archive": packed["archive"], "sizeBytes": packed["size"],
        "rawBytes": packed["raw_bytes"], "members": packed["members"],
        "ratio": round(packed["size"] / packed["raw_bytes"], 4) if packed["raw_bytes"] else None,
        "seconds": seconds, "throughput": round(packed["raw_bytes"] / seconds) if seconds else None,
        "pausedSeconds": service.get("paused_seconds"), "verified": bool(verified.get("ok")),
        "estimate": packed.get("estimate"), "warnings": warnings,
    }


def render_summary(s: dict[str, Any]) -> str:
    """The summary as lines for the operator."""
    head = "new archive" if s["new"] else "up to date, latest archive"
    lines = [f"backup {s['spec']}: {head} {s['archive']}",
             f"  {human(s['sizeBytes'])} from {human(s['rawBytes'])} raw "
             f"(ratio {s['ratio']}), {s['members']} members",
             f"  packed in {s['seconds']}s"
             + (f" at {human(s['throughput'])}/s" if s["throughput"] else "")
             + (f"; service paused {s['pausedSeconds']}s" if s["pausedSeconds"] else ""),
             f"  verify: {'ok' if s['verified'] else 'NOT VERIFIED'}"]
    if s.get("estimate"):
        est = s["estimate"]
        lines.append(f"  estimate {human(est['estimatedBytes'])}, error {est['errorPercent']}%")
    lines += [f"  warning: {w}" for w in s["warnings"]]
    return "\n".join(lines)
