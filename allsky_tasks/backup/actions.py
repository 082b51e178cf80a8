"""doit actions of the stages before the archive: recover, validate, scan, pause, plan, resume.

pack_stage.py writes the archives and their sidecars; after_pack.py verifies, copies and prunes.
"""

from __future__ import annotations

import os
from pathlib import Path

# Only what a no-op re-run uses (scan, pause, pack's up-to-date check, summary) is imported
# here; each stage that writes or reads archives imports its modules itself.
from ..environment import Environment
from ..errors import AllskyTasksError, ServiceStartError
from ..progress import human, tracked
from ..safefs import open_file, read_text
from ..service.commands import run_command
from ..service.control import recover_stale_marker
from ..spec.load import load_spec, spec_to_json
from . import nightly
from .recovery import recover, spec_lookup
from .scan import scan
from .stage_io import PACKED, load_state, lock_wait, read_json, say, service_for, stage, write_json


@stage
def run_recover(env: Environment) -> None:
    """Before any spec's own checks: restart a service that a killed run left stopped."""
    from ..service.lock import hold_run_lock

    hold_run_lock(env.state_dir, lock_wait())  # before any state is touched
    for message in recover(env):
        print(f"recover: {message}", flush=True)  # even when quiet: the operator must know


@stage
def run_validate(spec_path: str, env: Environment, state: str) -> None:
    """Check one spec completely and hand the resolved spec to later tasks."""
    with tracked(Path(spec_path).stem, "validate") as progress:
        spec = load_spec(Path(spec_path), env)
        if any(isinstance(c.get("encrypt"), dict) for c in spec.copies):
            from ..copies.encrypt import check_spec_recipients  # pyrage only for such specs

            check_spec_recipients(spec.copies, spec_path)  # a bad key fails here (23), not after pack
        write_json(Path(state) / "spec.json", spec_to_json(spec))
        from .live import record

        record(Path(state), spec)
        progress.finish(type=spec.type)
    from ..spec.messages import folders_text

    what = ", ".join(spec.sections) if spec.type == "config" else folders_text(spec.folders)
    say(f"{spec_path}: ok ({spec.type}: {what}; {spec.format} -> {spec.destination})")


@stage
def run_scan(state: str) -> None:
    """Stat-walk the selection; rewrite the fingerprint only when something changed."""
    st = Path(state)
    spec, _ = load_state(st)
    with tracked(spec.name, "scan") as progress:
        part = st / "scan.jsonl.part"
        try:
            with open_file(part, "w") as out:  # never through a planted link
                summary = scan(spec, out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        fp_path = st / "fingerprint"
        old = read_text(fp_path, owned=True).strip() if os.path.lexists(fp_path) else None
        changed = old != summary.fingerprint or not (st / "scan.jsonl").exists()
        if changed:
            from ..archive.io import atomic_write_bytes

            os.replace(part, st / "scan.jsonl")
            write_json(st / "scan.json", summary.to_dict())
            atomic_write_bytes(fp_path, (summary.fingerprint + "\n").encode(), 0o640)
        else:
            part.unlink()
        for warning in summary.warnings:
            progress.warning(warning)
        progress.finish(members=summary.entries, rawBytes=summary.raw_bytes, changed=changed)
    files = sum(s.files for s in summary.stats.values())
    say(f"scan {spec.name}: {summary.entries} members ({files} files, the rest folders and "
         f"links), {human(summary.raw_bytes)} ({'changed' if changed else 'unchanged'})")


def archive_present(state: str) -> bool:
    """pack is only up to date while the archives it made still exist."""
    st = Path(state)
    try:
        spec, _ = load_state(st)
        if spec.per_night:
            return nightly.all_present(st)
        results = read_json(st / "pack.json")["results"]
    except (OSError, ValueError, KeyError, AllskyTasksError):  # a planted link: pack again
        return False
    return all(Path(r["archive"]).exists() for r in results)


@stage
def run_pause(state: str, env: Environment) -> None:
    """Say whether pack will pause the service; restart one a killed run left stopped."""
    spec, summary = load_state(Path(state))
    with tracked(spec.name, "pause") as progress:
        cfg, needed, reason = service_for(spec, summary)
        recovered = recover_stale_marker(cfg, env.state_dir, spec_lookup(env.specs_dir))
        if recovered:
            progress.warning(recovered)
        progress.finish(pause=needed, reason=reason)
    say(f"service {spec.name}: if pack runs, {reason}")


@stage
def run_plan(state: str) -> None:
    """Sizes and measured estimates per section or folder, as the create dialog shows them."""
    from .plan import build_plan, render_plan  # zstandard/gzip sampling only when planning

    st = Path(state)
    spec, summary = load_state(st)
    assert summary is not None
    with tracked(spec.name, "plan") as progress:
        plan = build_plan(spec, summary, st / "scan.jsonl")
        write_json(st / "plan.json", plan)
        progress.finish(estimatedBytes=plan["totals"]["estimatedBytes"],
                        fits=plan["space"]["fits"])
    say(render_plan(plan))


@stage
def run_resume(state: str) -> None:
    """Confirm the service is in the state it was in before pack (pack restarted it)."""
    st = Path(state)
    spec, summary = load_state(st)
    with tracked(spec.name, "resume") as progress:
        cfg, _, _ = service_for(spec, summary)
        packed = read_json(st / "pack.json") if (st / "pack.json").exists() else {}
        record = packed.get("service") or {}
        # Only this run's own pause counts: a pack.json from an earlier run says nothing about
        # a service the operator stopped since.
        if spec.name not in PACKED or not record.get("stopped"):
            progress.finish(checked=False)
            return
        status = run_command(cfg, "status")
        if status.returncode != 0:
            raise ServiceStartError(f"service {cfg.unit} is not running after the backup, "
                                    f"although it was before: {status.describe()}",
                                    hint=f"start it: {' '.join(cfg.argv('start'))}")
        progress.finish(checked=True, running=True)
    say(f"service {spec.name}: {cfg.unit} running again, as before the backup "
         f"(paused {record.get('paused_seconds')}s)")


