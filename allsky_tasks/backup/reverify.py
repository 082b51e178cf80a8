"""verify:<spec>: check new archives, and re-read the spec's history when it is due.

An archive is due when it was never read completely, when its identity on disk (size,
mtime, ctime, inode) differs from the last read, or when that read is older than the spec's
`verify.every`. Due archives are read oldest-read first until `verify.max_duration` is spent,
as `borg check --max-duration` does; the rest wait for the next run. An archive whose last
read failed, and which has not changed since, keeps failing the task without being read
again, so every run reports it until it is deleted or replaced.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.records import DEFAULT_EVERY, STATE, RecordStore, identity, make_record, parse_duration

ARCHIVE_SUFFIXES = (".tar.zst", ".tar.gz")


def settings(verify: dict[str, Any]) -> tuple[float | None, float | None]:
    """(every, max_duration) in seconds from a spec's verify section."""
    return (parse_duration(verify.get("every", DEFAULT_EVERY)),
            parse_duration(verify.get("max_duration")))


def _names(dest: Path) -> list[str]:
    """Archive names in a destination (hidden and temp files never)."""
    try:
        with os.scandir(dest) as it:
            return sorted(e.name for e in it if not e.name.startswith(".")
                          and e.name.endswith(ARCHIVE_SUFFIXES))
    except OSError:
        return []


def spec_history(dest: Path, spec: str, records: dict[str, dict[str, Any]]) -> list[Path]:
    """The archives in dest known (from a full read of their content) to be this spec's."""
    return [dest / n for n in _names(dest) if (records.get(n) or {}).get("spec") == spec]


def nothing_due(dest: Path, spec: str, verify: dict[str, Any], new: list[str],
                now: float | None = None) -> bool:
    """True when no archive of the spec needs reading (doit's up-to-date check; stat only)."""
    every, _ = settings(verify)
    records = RecordStore(dest / STATE).load()
    now = time.time() if now is None else now
    names = {p.name for p in spec_history(dest, spec, records)} | {Path(a).name for a in new}
    for name in names:
        try:
            st = os.stat(dest / name)
        except OSError:
            continue  # deleted: nothing to read
        rec = records.get(name)
        if not rec or rec.get("identity") != identity(st) or rec.get("ok") is not True:
            return False
        epoch = rec.get("epoch")
        if every is not None and (not isinstance(epoch, (int, float)) or now - epoch >= every):
            return False
    return not _owned_unread(dest, spec, records, names)


def _owned_unread(dest: Path, spec: str, records: dict[str, dict[str, Any]],
                  known: set[str]) -> bool:
    """An archive our records do not speak for whose sidecar names this spec (e.g. every one
    after an upgrade, whose older records carry no tag): verify must read it."""
    for name in _names(dest):
        if name in records or name in known:
            continue
        from ..archive.manifest import read_trailers  # only then: a no-op run imports no more
        from ..errors import UnsafePathError

        try:
            named = (read_trailers(dest / name) or {}).get("spec")
        except UnsafePathError:
            continue  # a link where the sidecar should be: nothing to learn from it
        if isinstance(named, dict) and named.get("name") == spec:
            return True
    return False


@dataclass
class Outcome:
    """What one verify:<spec> run read and found."""

    read: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    still_failed: list[str] = field(default_factory=list)  # failed before, unchanged since
    left: list[str] = field(default_factory=list)  # due, but max_duration was spent
    foreign: list[dict[str, Any]] = field(default_factory=list)  # failed, not this spec's


def _unknown(dest: Path, records: dict[str, dict[str, Any]], spec: str
             ) -> tuple[list[Path], list[Path]]:
    """Archives never read completely: (those whose sidecar names this spec, those whose
    sidecar names no spec of ours, e.g. Allsky's own after its Upload replaced ours).

    Their content decides (a full read records the spec from the archive's own metadata).
    """
    owned, unnamed = [], []
    for name in _names(dest):
        if name in records:
            continue
        named = sidecar_spec(dest / name)
        if named is None:
            unnamed.append(dest / name)
        elif named == spec:
            owned.append(dest / name)  # another spec's new archive waits for its own verify
    return owned, unnamed


_SPEC_NAME = re.compile(r'"spec": \{\s*"name": ("(?:[^"\\]|\\.)*")')


def sidecar_spec(archive: Path) -> str | None:
    """The spec our sidecar names (read from its head, before the manifest), or None."""
    from ..archive.manifest import sidecar_path
    from ..safefs import open_file

    try:
        with open_file(sidecar_path(archive), "rb") as fh:
            head = fh.read(256 << 10).decode("utf-8", "replace")
    except OSError:
        return None
    found = _SPEC_NAME.search(head.split('"manifest": [', 1)[0])
    try:
        name = json.loads(found.group(1)) if found else None
    except ValueError:
        return None
    return name if isinstance(name, str) else None


def run(dest: Path, spec: str, verify: dict[str, Any], new: list[Path],
        check: Callable[[Path, dict[str, Any]], dict[str, Any]],
        expected: Callable[[Path], dict[str, Any]],
        clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Check the new archives, then the due history within max_duration."""
    from ..errors import VerifyError

    every, budget = settings(verify)
    store = RecordStore(dest / STATE)
    out = Outcome()
    started = clock()

    def read(path: Path) -> None:
        st = os.stat(path)
        try:
            result = check(path, expected(path))
        except VerifyError as e:
            mine = path not in unnamed  # an unreadable stranger is reported, not blamed on us
            store.put(path, make_record(st, False, spec=spec if mine else None,
                                        problems=e.problems[:100]))
            (out.failed if mine else out.foreign).append({"archive": str(path),
                                                          "problems": e.problems})
            return
        store.put(path, make_record(st, True, **{**result, "spec": result.get("spec") or
                                                 (spec if path in new else None)}))
        out.read.append({"archive": str(path), **result})

    unnamed: list[Path] = []
    for path in new:  # a new archive read once already (a re-run after a failure) is not re-read
        if store.get(path) is None:
            read(path)
    records = store.load()
    owned, unnamed = _unknown(dest, records, spec)
    history = spec_history(dest, spec, records) + owned + unnamed
    now = time.time()
    for path in dict.fromkeys(history + new):
        rec = records.get(path.name)
        try:
            same = rec is not None and rec.get("identity") == identity(os.stat(path))
        except OSError:
            continue
        if same and rec is not None and rec.get("ok") is False and str(path) not in {f["archive"] for f in out.failed}:
            out.still_failed.append(path.name)
    from ..archive.records import due

    for path in due([p for p in history if p not in new], store, every, now):
        if budget is not None and clock() - started >= budget:
            out.left.append(path.name)
            continue
        read(path)
    return out
