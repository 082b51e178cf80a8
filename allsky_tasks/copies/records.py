"""Records of verified copies, one file per spec and target: `<backup dir>/.allsky-tasks/copies/<spec>.<target>.json`.

Light on purpose (json, os): the copy task's up-to-date check reads these on every no-op run.
A record says what the tool wrote at a target for one spec and when it last verified it;
prune at the target deletes only files named there. Two specs that both name a target `usb`
keep separate records (names hold no dot, so `<spec>.<target>` is unambiguous). A record is
read only when it is ours (owned by the running user, writable by nobody else); one that is
not counts as absent. Files of the older layout, `<target>.json` with every spec's entries,
are still read: each spec takes its own entries from there, and its next save moves them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..environment import STATE_DIRNAME, expand
from ..errors import UnsafePathError
from ..safefs import atomic_write_bytes, check_dir, read_bytes

FOLDER = "copies"
FORMAT = 2


def records_dir(backup_dir: Path) -> Path:
    """Where the records of copies of the archives in `backup_dir` live."""
    return backup_dir / STATE_DIRNAME / FOLDER


def record_path(backup_dir: Path, spec: str, target: str) -> Path:
    """One spec's record of one target."""
    return records_dir(backup_dir) / f"{spec}.{target}.json"


def legacy_path(backup_dir: Path, target: str) -> Path:
    """The older layout: one file per target name, whatever spec wrote it."""
    return records_dir(backup_dir) / f"{target}.json"


def now() -> str:
    """Local time with offset, as the rest of the tool writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _read(path: Path) -> dict[str, Any] | None:
    """A record file of ours (None: missing, unreadable, or not ours to trust)."""
    try:
        data = json.loads(read_bytes(path, 16 << 20, owned=True))
    except (FileNotFoundError, NotADirectoryError, ValueError, UnsafePathError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("copies"), dict):
        return None
    data["copies"] = {k: v for k, v in data["copies"].items() if isinstance(v, dict)}
    return data


def load(backup_dir: Path, spec: str, target: str) -> dict[str, Any]:
    """One spec's record of a target ({'spec', 'target', 'config', 'copies': {archive: entry}}).

    Before the first save in this layout, the spec's entries of the older `<target>.json`.
    """
    data = _read(record_path(backup_dir, spec, target))
    if data is None and not os.path.lexists(record_path(backup_dir, spec, target)):
        old = _read(legacy_path(backup_dir, target))
        if old is not None:
            mine = {k: v for k, v in old["copies"].items() if v.get("spec") == spec}
            data = {**old, "copies": mine}
    if data is None:
        data = {"copies": {}}
    data.update(spec=spec, target=target, format=FORMAT)
    return data


def save(backup_dir: Path, record: dict[str, Any]) -> None:
    """Write one spec's record of a target atomically (never through a link).

    Its entries leave the older `<target>.json`, which goes once no spec's entry is left.
    """
    folder = records_dir(backup_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    check_dir(folder)  # a planted link there is refused, never written through
    spec, target = record["spec"], record["target"]
    atomic_write_bytes(record_path(backup_dir, spec, target),
                       (json.dumps({**record, "format": FORMAT}, indent=1, sort_keys=True)
                        + "\n").encode(), 0o640)
    old_path = legacy_path(backup_dir, target)
    old = _read(old_path)
    if old is None:
        return
    left = {k: v for k, v in old["copies"].items() if v.get("spec") != spec}
    if not left:
        old_path.unlink(missing_ok=True)
    elif len(left) != len(old["copies"]):
        atomic_write_bytes(old_path, (json.dumps({**old, "copies": left}, indent=1,
                                                 sort_keys=True) + "\n").encode(), 0o640)


def all_records(backup_dir: Path) -> list[dict[str, Any]]:
    """Every record of copies of a backup folder (the older layout's too, until moved)."""
    try:
        paths = sorted(p for p in records_dir(backup_dir).glob("*.json")
                       if not p.name.startswith("."))
    except OSError:
        return []
    out = []
    for path in paths:
        data = _read(path)
        if data is None:
            continue
        if "." not in path.stem:  # the older layout: one file per target
            data.setdefault("target", path.stem)
            data["spec"] = None
        out.append(data)
    return out


def for_target(backup_dir: Path, target: str, item: Mapping[str, Any] | None = None
               ) -> list[dict[str, Any]]:
    """Every spec's record of the target called `target` (with `item`: of that very
    configuration, so a second spec's `usb` elsewhere is not mixed in)."""
    return [r for r in all_records(backup_dir) if r.get("target") == target
            and (item is None or r.get("config") in (None, dict(item)))]


def find_entry(backup_dir: Path, target: str, archive_name: str,
               item: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(record, entry) of the recorded copy of one archive at a target, the record fit to save."""
    for record in for_target(backup_dir, target, item):
        entry = record["copies"].get(archive_name)
        if not isinstance(entry, dict):  # none, or a damaged record: the copied sidecar decides
            continue
        if record.get("spec") is None:  # the older layout: its spec's own record takes it
            spec = str(entry.get("spec") or "cli")
            record = load(backup_dir, spec, target)
            record["copies"].setdefault(archive_name, entry)
            entry = record["copies"][archive_name]
        return record, entry
    return None


def local_facts(archive: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a local archive, or None when it is gone."""
    try:
        st = os.stat(archive)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def copy_is_current(entry: dict[str, Any] | None, archive: Path, sha256: str) -> bool:
    """The record says this very local archive was copied and verified there."""
    if not entry or entry.get("ok") is not True or entry.get("sha256") != sha256:
        return False
    facts = local_facts(archive)
    return facts is not None and [entry.get("size"), entry.get("localMtimeNs")] == list(facts)


def _read_json(path: Path) -> Any:
    """A state file of ours (never through a link; one that is not ours is refused)."""
    return json.loads(read_bytes(path, 64 << 20, owned=True))


def path_copy_present(item: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Cheap fact at a path target: the stored copy is still there with the recorded size."""
    try:
        return bool(os.stat(expand(item["path"]) / entry["stored"]).st_size == entry["storedSize"])
    except (OSError, KeyError, TypeError):
        return False


def pending(state: Path) -> list[tuple[dict[str, Any], str]]:
    """(copies item, archive path) for every copy the newest archives still need.

    Reads only the state's spec.json and verify.json and the targets' records: no network.
    A path target is also stat-ed (its copy still there with its size); an SSH or other remote
    target is trusted on its record, so a no-op run opens no connection (`verify --target`
    re-reads a copy on demand).
    """
    spec = _read_json(state / "spec.json")
    items = spec.get("copies") or []
    if not items:
        return []
    verified = _read_json(state / "verify.json")
    backup_dir = Path(spec["destination"])
    out = []
    for item in items:
        record = load(backup_dir, spec["name"], item["name"])
        same_config = record.get("config") == item
        for result in verified.get("results", []):
            archive = Path(result["archive"])
            entry = record["copies"].get(archive.name) if same_config else None
            current = copy_is_current(entry, archive, result["sha256"])
            if current and entry is not None and "path" in item:
                current = path_copy_present(item, entry)
            if not current:
                out.append((item, str(archive)))
    return out


def copies_current(state: str) -> bool:
    """doit up-to-date check of copy:<spec>."""
    try:
        return not pending(Path(state))
    except (OSError, ValueError, KeyError, TypeError, UnsafePathError):
        return False


def entries_for(records: Iterable[dict[str, Any]], archive_name: str
                ) -> list[tuple[str, dict[str, Any]]]:
    """(target, entry) of every recorded copy of one archive."""
    return [(r["target"], r["copies"][archive_name]) for r in records
            if archive_name in r.get("copies", {})]


def summary_for(state: Path) -> list[dict[str, Any]]:
    """For the backup summary: each target's copy of each newest archive, verified or not."""
    try:
        spec = _read_json(state / "spec.json")
        verified = _read_json(state / "verify.json")
    except (OSError, ValueError, UnsafePathError):
        return []
    out = []
    for item in spec.get("copies") or []:
        copies = load(Path(spec["destination"]), spec["name"], item["name"])["copies"]
        for result in verified.get("results", []):
            entry = copies.get(Path(result["archive"]).name) or {}
            ok = entry.get("ok") is True and entry.get("sha256") == result.get("sha256")
            out.append({"target": item["name"], "archive": Path(result["archive"]).name,
                        "ok": ok, "verifiedAt": entry.get("verifiedAt"),
                        "required": bool(item.get("required"))})
    return out
