"""doit actions that write archives: pack (inside the service pause) and the sidecars."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..environment import Environment
from ..errors import DestinationError, ServiceStartError, os_message
from ..progress import human, tracked
from ..safefs import make_dir
from ..service.control import PauseRecord, pause_deadline, paused_service, signals_as_interrupt
from ..spec.load import Spec
from . import nightly
from .recovery import spec_lookup
from .scan import Entry, ScanSummary, read_rows
from .stage_io import PACKED, load_state, lock_wait, read_json, say, service_for, stage, write_json
from .summary import estimate_record

# One archive to write: its summary, its rows (read afresh at each call), extra metadata.
Job = tuple[ScanSummary, Callable[[], Iterator[Entry]], dict[str, Any]]


def _night_rows(rows_path: Path, night: str) -> Iterator[Entry]:
    """The scan's rows of one night folder."""
    return nightly.night_rows(read_rows(rows_path), night)


def _jobs(st: Path, spec: Spec, summary: ScanSummary) -> list[Job]:
    """(summary, rows, extra metadata) per archive to write: one, or one per changed night."""
    rows_path = st / "scan.jsonl"
    if not spec.per_night:
        return [(summary, lambda: read_rows(rows_path), {})]
    jobs: list[Job] = []
    for night in nightly.nights_to_pack(summary, nightly.load_record(st)):
        jobs.append((nightly.night_summary(summary, night), functools.partial(_night_rows, rows_path, night),
                     {"perNight": {"set": spec.name, "folder": night}}))
    return jobs


@stage
def run_pack(state: str, env: Environment) -> None:
    """Stop the service if needed, stream new archives, start the service whatever happens."""
    from ..service.lock import destination_lock
    from .names import clean_stale_parts
    from .pack import pack
    from .space import check_space, spec_margin

    st = Path(state)
    spec, summary = load_state(st)
    assert summary is not None
    cfg, needed, reason = service_for(spec, summary)
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
            raise DestinationError(f"cannot create the destination: {os_message(e, spec.destination)}",
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
                        say(f"  stopped {cfg.unit} ({reason})")
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
        say(f"  started {cfg.unit} again after {record.paused_seconds}s")
    elif needed and jobs and record.was_running is False:
        say(f"  {cfg.unit} was not running: the backup neither stopped nor started it")
    _record_pack(st, spec, results, record)
    for r in results:
        say(f"pack {spec.name}: {r['archive']} ({human(r['size'])} from "
             f"{human(r['raw_bytes'])}, {r['members']} members, {r['seconds']}s)")
    if not results:
        say(f"pack {spec.name}: no night folder changed; nothing to pack")


def _plan(st: Path, fingerprint: str) -> dict[str, Any] | None:
    """The plan made from this very scan, if there is one."""
    path = st / "plan.json"
    plan = read_json(path) if path.exists() else None
    return plan if plan and plan.get("fingerprint") == fingerprint else None


def _needed_bytes(st: Path, spec: Spec, summary: ScanSummary, jobs: list[Job]) -> int:
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
    write_json(st / "pack.json", {"results": results, "service": record.to_dict()})
    if spec.per_night and results:
        nights = nightly.load_record(st)
        for r in results:
            nights[r["perNight"]["folder"]] = {"fingerprint": r["fingerprint"],
                                              "archive": r["archive"]}
        write_json(st / nightly.RECORD, nights)


def _manifest(st: Path) -> list[Path]:
    """Write the sidecar of each archive recorded in pack.json."""
    from ..archive.manifest import write_sidecar_from
    from .plan import share

    packed = read_json(st / "pack.json")
    spec_summary = load_state(st)[1]
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
    write_json(st / "pack.json", packed)  # now with each archive's estimate record
    write_json(st / "manifest.json", {"archives": [r["archive"] for r in packed["results"]],
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
        say(f"manifest {st.name}: {path}")


