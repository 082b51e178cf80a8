"""copy:<spec>: every pending copy of the newest verified archives, target by target.

A required target that fails raises CopyError after the other targets had their turn; an
optional one becomes a warning. The local archive is never touched either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.manifest import sidecar_path
from ..environment import STATE_DIRNAME
from ..errors import AllskyTasksError, CopyError
from . import records
from .prune import prune_target
from .stage import copy_archive, make_target
from .tagging import tag_recorded


@dataclass
class CopyReport:
    """What the copy stage did: copies made, copies pruned, problems per target."""

    copied: list[dict[str, Any]] = field(default_factory=list)
    pruned: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def total_bytes(pending: list[tuple[dict[str, Any], str]]) -> int:
    """Bytes the pending copies will move."""
    return sum((records.local_facts(Path(a)) or (0, 0))[0] for _, a in pending)


def _named_progress(on_bytes: Callable[[int, str], None], what: str) -> Callable[[int], None]:
    """Progress of one copy, named for the operator."""
    return lambda n: on_bytes(n, what)


def _stored_names(pending: list[tuple[dict[str, Any], str]], target: str, suffix: str) -> set[str]:
    """Names this run stores at a target: its pending archives and their sidecars."""
    out = set()
    for item, archive_str in pending:
        if item["name"] == target:
            archive = Path(archive_str)
            out |= {archive.name + suffix, sidecar_path(archive).name + suffix}
    return out


def run_copies(state: Path, spec: Any, on_bytes: Callable[[int, str], None],
               say: Callable[[str], None], encryptor_for: Callable[[dict[str, Any]], Any] | None = None
               ) -> CopyReport:
    """Copy what `records.pending` lists, then prune each target that got a copy."""
    from ..archive.authkey import ensure

    report = CopyReport()
    key, made = ensure()  # before anything is sent: a key that is not ours stops the copies
    if made:
        report.warnings.append(
            f"made this device's authentication key {key.path}: copies are tagged with it, and "
            "a restore on a new card checks them with it. Keep a copy of it OFF this Pi, beside "
            "the age identity (see docs/security.md)")
    verified = {r["archive"]: r for r in records._read_json(state / "verify.json")["results"]}
    pending = records.pending(state)
    state_dir = spec.destination / STATE_DIRNAME
    done_targets: dict[str, dict[str, Any]] = {}
    cleaned_targets: set[str] = set()
    for item, archive_str in pending:
        archive = Path(archive_str)
        label = f"{item['name']}"
        try:
            target = make_target(item, spec.home, spec.name, state_dir)
            # An Encryptor for items with `encrypt:` (None: sent as they are).
            encryptor = encryptor_for(item) if encryptor_for is not None else None
            side = sidecar_path(archive)
            # The first copy to a target this run removes killed copies' leftovers there.
            keep = None if item["name"] in cleaned_targets else _stored_names(
                pending, item["name"], encryptor.suffix if encryptor is not None else "")
            cleaned: list[str] = []
            cleaned_targets.add(item["name"])
            entry = copy_archive(target, item, archive, side if side.exists() else None,
                                 verified[archive_str]["sha256"], spec.name,
                                 _named_progress(on_bytes, f"{label}: {archive.name}"),
                                 encryptor, key, keep=keep, cleaned=cleaned)
            for name in cleaned:
                say(f"copy {spec.name}: removed {name} at {item['name']}, left by an interrupted copy")
            report.copied.append({"target": item["name"], **entry})
            done_targets[item["name"]] = item
            say(f"copy {spec.name}: {archive.name} -> {target.describe()} verified "
                f"({entry['method']})")
        except AllskyTasksError as e:
            text = f"copy to {label} failed: {e.message}" + (f" ({e.hint})" if e.hint else "")
            (report.failures if item.get("required") else report.warnings).append(text)
        except Exception as e:  # noqa: BLE001 - a target's library error must name the target
            text = f"copy to {label} failed: {type(e).__name__}: {e}"
            (report.failures if item.get("required") else report.warnings).append(text)
    for name, item in done_targets.items():
        keep = item.get("keep_last") or spec.retention.get("keep_last")
        try:
            target = make_target(item, spec.home, spec.name, state_dir)
            try:
                tagged = tag_recorded(target, spec.destination, spec.name, key)
                if tagged:
                    say(f"copy {spec.name}: tagged {len(tagged)} earlier copies at {name}")
                deleted = prune_target(target, spec.destination, spec.name, keep)
            finally:
                close = getattr(target, "close", None)
                if close is not None:
                    close()
        except AllskyTasksError as e:
            report.warnings.append(f"prune at {name} failed: {e.message}")
            continue
        if deleted:
            report.pruned[name] = deleted
            say(f"copy {spec.name}: pruned at {name}: {', '.join(deleted)}")
    return report


def raise_failures(report: CopyReport, spec_name: str) -> None:
    """Required copies that failed fail the run; the local archive stays, verified."""
    if report.failures:
        # The first line says why: messages shown as one line (the WebUI's) keep the reason.
        more = f" (and {len(report.failures) - 1} more)" if report.failures[1:] else ""
        raise CopyError(f"{spec_name}: required {report.failures[0]}{more}"
                        + "".join(f"\n  {f}" for f in report.failures[1:]),
                        hint="the local archive is kept and verified; fix the target and run "
                             "again (only the missing copies move)")
