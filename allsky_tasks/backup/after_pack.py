"""doit actions of the stages after the archive exists: verify, copy, prune and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..environment import Environment
from ..errors import UnsafePathError, VerifyError
from ..progress import RUN_WARNINGS, human, tracked
from .stage_io import PACKED, load_state, lock_wait, read_json, say, stage, write_json
from .summary import backup_summary, render_summary


@stage
def run_verify(state: str) -> None:
    """Check every new archive; re-read the spec's history when due (see reverify)."""
    from . import reverify

    st = Path(state)
    spec, _ = load_state(st)
    packed = read_json(st / "pack.json") if (st / "pack.json").exists() else {"results": []}
    written = {Path(r["archive"]).name: {"sha256": r["sha256"], "sizeBytes": r["size"]}
               for r in packed["results"]}
    done = st / "manifest.json"
    new = [Path(a) for a in read_json(done)["archives"]] if done.exists() else []
    new = [a for a in new if a.exists()]
    with tracked(spec.name, "verify", sum(a.stat().st_size for a in new)) as progress:
        def check(archive: Path, facts: dict[str, Any]) -> dict[str, Any]:
            from ..archive.scrub import fresh, scrub

            on_read = lambda n: progress.update(n, archive.name)  # noqa: E731
            if archive in new and archive.name in written:  # just written: see scrub.fresh
                return fresh(archive, written[archive.name], on_read=on_read)
            return scrub(archive, facts, on_read=on_read)

        def expected(archive: Path) -> dict[str, Any]:
            """What was written: pack's own figures, else the sidecar's."""
            from ..archive.manifest import read_trailers

            facts = (read_trailers(archive) or {}).get("archive")
            return written.get(archive.name) or (facts if isinstance(facts, dict) else {})

        out = reverify.run(spec.destination, spec.name, spec.verify, new, check, expected)
        for r in out.read:
            say(f"verify {spec.name}: {Path(r['archive']).name} ok, {r['members']} members, "
                 f"sha256 {r['sha256'][:16]}...")
        for f in out.foreign:
            progress.warning(f"{Path(f['archive']).name} (not known to be {spec.name}'s) "
                             f"failed its full read: {f['problems'][0]}")
        if out.left:
            say(f"verify {spec.name}: max_duration spent; {len(out.left)} archive(s) wait "
                 f"for the next run: {', '.join(out.left)}")
        progress.finish(ok=not (out.failed or out.still_failed), archives=len(out.read),
                        left=len(out.left))
    write_json(st / "verify.json", {"ok": not (out.failed or out.still_failed),
                                     "results": out.read, "failed": out.failed,
                                     "stillFailed": out.still_failed, "left": out.left})
    failed = [f"{Path(f['archive']).name}: {p}" for f in out.failed for p in f["problems"]]
    failed += [f"{name}: failed its last full read and has not changed since"
               for name in out.still_failed if name not in {Path(f["archive"]).name
                                                            for f in out.failed}]
    if failed:
        names = sorted({p.split(": ", 1)[0] for p in failed})
        raise VerifyError(f"{len(names)} archive(s) of {spec.name} in {spec.destination}",
                          failed)


@stage
def run_copy(state: str) -> None:
    """Copy the newest verified archives to the spec's targets, verified there (copies/run.py)."""
    from ..copies.records import pending
    from ..copies.run import raise_failures, run_copies, total_bytes
    from ..service.lock import destination_lock

    st = Path(state)
    spec, _ = load_state(st)
    # Under the destination's lock: two runs never copy (or prune at a target) at once.
    with tracked(spec.name, "copy", total_bytes(pending(st))) as progress, \
            destination_lock(spec.destination):
        # Items with `encrypt:` are sent as age ciphertext (copies/encrypt.py).
        from ..copies.encrypt import encryptor_for

        report = run_copies(st, spec, progress.update, say, encryptor_for=encryptor_for)
        for warning in report.warnings:
            progress.warning(warning)
        raise_failures(report, spec.name)
        progress.finish(copies=len(report.copied), pruned=report.pruned)


def verify_uptodate(state: str) -> bool:
    """verify:<spec> is up to date while no archive of the spec is due (stat only)."""
    from .reverify import nothing_due

    st = Path(state)
    try:
        spec, _ = load_state(st)
        done = st / "manifest.json"
        new = read_json(done)["archives"] if done.exists() else []
        return nothing_due(spec.destination, spec.name, spec.verify, new)
    except (OSError, ValueError, KeyError, TypeError, UnsafePathError):  # the task says why
        return False


@stage
def run_prune(state: str, env: Environment) -> None:
    """Apply the spec's retention rules now that the new archive is verified."""
    from .prune_step import prune_spec, state_file

    st = Path(state)
    spec, _ = load_state(st)
    with tracked(spec.name, "prune") as progress:
        record = prune_spec(spec, env, lock_wait())
        for note in record.get("notes", []):
            progress.warning(note)
        write_json(state_file(st), record)
        progress.finish(**record)
    if record["rules"] is None:
        say(f"prune {spec.name}: no retention rules; nothing deleted")
    else:
        say(f"prune {spec.name}: kept {len(record['kept'])} ({record['rules']}), deleted "
             f"{len(record['deleted'])} file(s), freed {human(record['bytesFreed'])}")


@stage
def run_summary(state: str) -> None:
    """The backup's final summary, with every warning repeated."""
    st = Path(state)
    with tracked(st.name, "backup") as progress:
        summary = backup_summary(st, st.name in PACKED, RUN_WARNINGS.get(st.name, []))
        progress.finish("done", **summary)
    say(render_summary(summary))
