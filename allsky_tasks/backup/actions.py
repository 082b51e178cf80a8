"""doit actions of the stages up to the manifest (after_pack.py has verify, copy, prune, summary)."""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from doit.exceptions import TaskFailed

# Only what a no-op re-run uses (scan, pause, pack's up-to-date check, summary) is imported
# here; each stage that writes or reads archives imports its modules itself.
from ..environment import Environment
from ..errors import (AllskyTasksError, DestinationError, ManifestError, PackError, ScanError,
                      ServiceStartError)
from ..safefs import check_dir, make_dir, open_file, read_bytes, read_text
from ..progress import QUIET_ENV, human, tracked
from . import nightly
from .scan import Entry, ScanSummary, read_rows, scan
from ..service.control import (PauseRecord, ServiceConfig, pause_deadline, pause_needed, paused_service,
                      recover_stale_marker, signals_as_interrupt)
from ..service.commands import run_command
from ..spec.load import Spec, load_spec, spec_from_json, spec_to_json
from .recovery import recover, spec_lookup
from .summary import estimate_record

LOCK_WAIT_ENV = "ALLSKY_LOCK_WAIT"
# Errors of this run, newest last: the CLI maps the first to its exit code.
FAILURES: list[AllskyTasksError] = []
# Specs packed by this process (the summary says "new archive" or "up to date").
PACKED: set[str] = set()


def _write_json(path: Path, data: Any) -> None:
    """Atomically write a JSON state file."""
    from ..archive.io import atomic_write_bytes

    make_dir(path.parent)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode(), 0o640)


# State files that steer what runs or where we write (the resolved spec with its service
# commands, the archives to write sidecars beside): only trusted when ours and writable by
# nobody else, like the service marker.
_INSTRUCTIONS = ("spec.json", "pack.json")


def _read_json(path: Path) -> Any:
    """Read a JSON state file (never through a link; an instruction file must be ours)."""
    return json.loads(read_bytes(path, owned=path.name in _INSTRUCTIONS))


def _say(message: str) -> None:
    """Operator-facing line on stdout (doit's verbosity and quiet mode apply)."""
    if os.environ.get(QUIET_ENV, "") in ("", "0"):
        print(message, flush=True)


_STAGE_ERRORS: dict[str, type[AllskyTasksError]] = {
    "run_scan": ScanError, "run_pack": PackError, "run_manifest": ManifestError}


def os_error(stage_fn: str, e: OSError) -> AllskyTasksError:
    """An OSError that escaped a stage as our error: read-only/permission -> DestinationError."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f) or "a file of the backup"
    what = f"{where}: {e.strerror or e}"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and stage_fn != "run_scan":
        return DestinationError(what, hint="the backup folder (or destination) must be writable by "
                                           "the user running the backup; remount it read-write")
    cls = _STAGE_ERRORS.get(stage_fn, DestinationError)
    hint = ("free some space in the backup folder; no partial file was kept"
            if e.errno in (errno.ENOSPC, errno.EDQUOT) else None)
    return cls(what, hint=hint)


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a clean doit failure (no traceback) and remember them."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AllskyTasksError as e:
            FAILURES.append(e)
            return TaskFailed(f"[{type(e).__name__}] {e}")
        except OSError as e:  # a read-only or full backup folder: our error, naming the path
            err = os_error(fn.__name__, e)
            FAILURES.append(err)
            return TaskFailed(f"[{type(err).__name__}] {err}")
        except KeyboardInterrupt as e:
            # Ctrl-C or SIGTERM: stop the whole run without a traceback. SystemExit passes
            # through doit's runner, which still saves its state on the way out.
            why = str(e) or "Ctrl-C"
            print(f"\n{fn.__name__.removeprefix('run_')} interrupted ({why}): no partial "
                  "archive was kept; the service is as it was before", file=sys.stderr)
            raise SystemExit(130) from None
    return wrapper


def _load(st: Path) -> tuple[Spec, ScanSummary | None]:
    """The checked spec and, once scanned, the scan summary."""
    check_dir(st)  # a link here would hand us another spec.json
    spec = spec_from_json(_read_json(st / "spec.json"))
    scan_file = st / "scan.json"
    summary = ScanSummary.from_dict(_read_json(scan_file)) if scan_file.exists() else None
    return spec, summary


@stage
def run_recover(env: Environment) -> None:
    """Before any spec's own checks: restart a service that a killed run left stopped."""
    for message in recover(env):
        print(f"recover: {message}", flush=True)  # even when quiet: the operator must know


@stage
def run_validate(spec_path: str, env: Environment, state: str) -> None:
    """Check one spec completely and hand the resolved spec to later tasks."""
    with tracked(Path(spec_path).stem, "validate") as progress:
        spec = load_spec(Path(spec_path), env)
        _write_json(Path(state) / "spec.json", spec_to_json(spec))
        from .live import record

        record(Path(state), spec)
        progress.finish(type=spec.type)
    from ..spec.messages import folders_text

    what = ", ".join(spec.sections) if spec.type == "config" else folders_text(spec.folders)
    _say(f"{spec_path}: ok ({spec.type}: {what}; {spec.format} -> {spec.destination})")


@stage
def run_scan(state: str) -> None:
    """Stat-walk the selection; rewrite the fingerprint only when something changed."""
    st = Path(state)
    spec, _ = _load(st)
    with tracked(spec.name, "scan") as progress:
        part = st / "scan.jsonl.part"
        try:
            with open_file(part, "w") as out:  # never through a planted link
                summary = scan(spec, out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        fp_path = st / "fingerprint"
        old = read_text(fp_path).strip() if os.path.lexists(fp_path) else None
        changed = old != summary.fingerprint or not (st / "scan.jsonl").exists()
        if changed:
            from ..archive.io import atomic_write_bytes

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
    """pack is only up to date while the archives it made still exist."""
    st = Path(state)
    try:
        spec, _ = _load(st)
        if spec.per_night:
            return nightly.all_present(st)
        results = _read_json(st / "pack.json")["results"]
    except (OSError, ValueError, KeyError, AllskyTasksError):  # a planted link: pack again
        return False
    return all(Path(r["archive"]).exists() for r in results)


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
        recovered = recover_stale_marker(cfg, env.state_dir, spec_lookup(env.specs_dir))
        if recovered:
            progress.warning(recovered)
        progress.finish(pause=needed, reason=reason)
    _say(f"service {spec.name}: if pack runs, {reason}")


@stage
def run_plan(state: str) -> None:
    """Sizes and measured estimates per section or folder, as the create dialog shows them."""
    from .plan import build_plan, render_plan  # zstandard/gzip sampling only when planning

    st = Path(state)
    spec, summary = _load(st)
    assert summary is not None
    with tracked(spec.name, "plan") as progress:
        plan = build_plan(spec, summary, st / "scan.jsonl")
        _write_json(st / "plan.json", plan)
        progress.finish(estimatedBytes=plan["totals"]["estimatedBytes"],
                        fits=plan["space"]["fits"])
    _say(render_plan(plan))


@stage
def run_resume(state: str) -> None:
    """Confirm the service is in the state it was in before pack (pack restarted it)."""
    st = Path(state)
    spec, summary = _load(st)
    with tracked(spec.name, "resume") as progress:
        cfg, _, _ = _service(spec, summary)
        packed = _read_json(st / "pack.json") if (st / "pack.json").exists() else {}
        record = packed.get("service") or {}
        if not record.get("stopped"):
            progress.finish(checked=False)
            return
        status = run_command(cfg, "status")
        if status.returncode != 0:
            raise ServiceStartError(f"service {cfg.unit} is not running after the backup, "
                                    f"although it was before: {status.describe()}",
                                    hint=f"start it: {' '.join(cfg.argv('start'))}")
        progress.finish(checked=True, running=True)
    _say(f"service {spec.name}: {cfg.unit} running again, as before the backup "
         f"(paused {record.get('paused_seconds')}s)")


def _jobs(st: Path, spec: Spec, summary: ScanSummary
          ) -> list[tuple[ScanSummary, Callable[[], Iterator[Entry]], dict[str, Any]]]:
    """(summary, rows, extra metadata) per archive to write: one, or one per changed night."""
    rows_path = st / "scan.jsonl"
    if not spec.per_night:
        return [(summary, lambda: read_rows(rows_path), {})]
    jobs = []
    for night in nightly.nights_to_pack(summary, nightly.load_record(st)):
        jobs.append((nightly.night_summary(summary, night),
                     lambda n=night: nightly.night_rows(read_rows(rows_path), n),
                     {"perNight": {"set": spec.name, "folder": night}}))
    return jobs


@stage
def run_pack(state: str, env: Environment) -> None:
    """Stop the service if needed, stream new archives, start the service whatever happens."""
    from ..service.lock import destination_lock
    from .pack import clean_stale_parts, pack
    from .space import check_space, spec_margin

    st = Path(state)
    spec, summary = _load(st)
    assert summary is not None
    cfg, needed, reason = _service(spec, summary)
    jobs = _jobs(st, spec, summary)
    work = st / "work"
    results: list[dict[str, Any]] = []
    total = sum(job[0].raw_bytes for job in jobs)
    with tracked(spec.name, "pack", total) as progress:
        from ..copies.mounts import require_mounted  # a missing USB disk: refuse before stopping

        require_mounted(spec.destination, spec.home, f"{spec.name}: destination",
                        spec.must_be_mounted)
        try:
            spec.destination.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as e:
            raise DestinationError(f"cannot create destination {spec.destination}: {e.strerror}",
                                   hint="check that it is mounted and writable") from e
        # SIGTERM/SIGHUP become KeyboardInterrupt so the restart below runs (doit's teardown
        # would not); a SIGKILL leaves the marker that the next run's pause task acts on.
        try:
            with signals_as_interrupt(), destination_lock(spec.destination, wait=lock_wait()):
                # Only under the lock: a second run must not wipe the first run's work folder.
                shutil.rmtree(work, ignore_errors=True)
                make_dir(work)
                for name in clean_stale_parts(spec.destination):
                    progress.warning(f"removed {name} left by an interrupted run")
                # Before anything is stopped or written: will the archives fit?
                check_space(spec.destination, _needed_bytes(st, spec, summary, jobs),
                            *spec_margin(spec.free_space))
                with paused_service(cfg, needed and bool(jobs), reason, env.state_dir, spec=spec.name,
                                    lookup=spec_lookup(env.specs_dir)) as record:
                    if record.stopped:
                        _say(f"  stopped {cfg.unit} ({reason})")
                    with pause_deadline(cfg.max_pause if record.stopped else 0, cfg.unit):
                        for i, (job_summary, rows, extra) in enumerate(jobs):
                            job_work = work / str(i)
                            job_work.mkdir()
                            result = pack(spec, job_summary, rows(), job_work,
                                          extra={"servicePause": record.to_dict(), **extra},
                                          on_bytes=progress.update, on_warning=progress.warning)
                            results.append({**result.__dict__, **extra,
                                            "fingerprint": job_summary.fingerprint})
        except ServiceStartError:
            if results:  # the archives are good: keep them complete, with their sidecars
                _record_pack(st, spec, results, record)
                _manifest(st)
            raise
        for warning in record.warnings:
            progress.warning(warning)
        progress.finish(archives=[r["archive"] for r in results])
    PACKED.add(spec.name)
    if record.stopped:
        _say(f"  started {cfg.unit} again after {record.paused_seconds}s")
    _record_pack(st, spec, results, record)
    for r in results:
        _say(f"pack {spec.name}: {r['archive']} ({human(r['size'])} from "
             f"{human(r['raw_bytes'])}, {r['members']} members, {r['seconds']}s)")
    if not results:
        _say(f"pack {spec.name}: no night folder changed; nothing to pack")


def _plan(st: Path, fingerprint: str) -> dict[str, Any] | None:
    """The plan made from this very scan, if there is one."""
    path = st / "plan.json"
    plan = _read_json(path) if path.exists() else None
    return plan if plan and plan.get("fingerprint") == fingerprint else None


def _needed_bytes(st: Path, spec: Spec, summary: ScanSummary, jobs: list) -> int:
    """Bytes the archives to write will need, from the plan's measured estimate."""
    from .plan import share

    plan = _plan(st, summary.fingerprint)
    if plan is None:  # no plan (e.g. `doit pack:x` alone): the raw size is an upper bound
        return sum(job[0].raw_bytes for job in jobs)
    if not spec.per_night:
        return int(plan["space"]["neededBytes"])
    return sum(int(share(plan, job[0].image_folders)["neededBytes"]) for job in jobs)


def _record_pack(st: Path, spec: Spec, results: list[dict[str, Any]],
                 record: PauseRecord) -> None:
    """pack.json for manifest/verify, and the per-night record."""
    _write_json(st / "pack.json", {"results": results, "service": record.to_dict()})
    if spec.per_night and results:
        nights = nightly.load_record(st)
        for r in results:
            nights[r["perNight"]["folder"]] = {"fingerprint": r["fingerprint"],
                                              "archive": r["archive"]}
        _write_json(st / nightly.RECORD, nights)


def _manifest(st: Path) -> list[Path]:
    """Write the sidecar of each archive recorded in pack.json."""
    from ..archive.manifest import write_sidecar_from
    from .plan import share

    packed = _read_json(st / "pack.json")
    spec_summary = _load(st)[1]
    plan = _plan(st, spec_summary.fingerprint if spec_summary else "")
    paths = []
    for r in packed["results"]:
        # The pause ended after metadata.json was sealed: the sidecar has the full record.
        additions: dict[str, Any] = {"service": packed.get("service")}
        if plan is not None:  # the estimate next to the real size, to watch its accuracy
            est = (share(plan, [r["perNight"]["folder"]])["estimatedBytes"] if "perNight" in r
                   else plan["totals"]["estimatedBytes"])
            additions["estimate"] = r["estimate"] = estimate_record(est, r["size"])
        additions["archive"] = {"name": Path(r["archive"]).name, "sizeBytes": r["size"],
                                "sha256": r["sha256"], "metadataSha256": r["metadata_sha256"]}
        # Streamed: the metadata (with its manifest) is never loaded whole.
        paths.append(write_sidecar_from(Path(r["archive"]), Path(r["metadata"]), additions))
    _write_json(st / "pack.json", packed)  # now with each archive's estimate record
    _write_json(st / "manifest.json", {"archives": [r["archive"] for r in packed["results"]],
                                       "sidecars": [str(p) for p in paths]})
    shutil.rmtree(st / "work", ignore_errors=True)
    return paths


@stage
def run_manifest(state: str) -> None:
    """Write the sidecars: each archive's metadata plus its own size and SHA-256."""
    st = Path(state)
    with tracked(st.name, "manifest") as progress:
        paths = _manifest(st)
        progress.finish(sidecars=[str(p) for p in paths])
    for path in paths:
        _say(f"manifest {st.name}: {path}")


def lock_wait() -> float:
    """Seconds to wait for another run's lock (`run --lock-wait`, ALLSKY_LOCK_WAIT)."""
    try:
        return max(0.0, float(os.environ.get(LOCK_WAIT_ENV, "") or 0))
    except ValueError:
        return 0.0
