"""Per-target records of verified copies, in `<backup dir>/.allsky-tasks/copies/<target>.json`.

Light on purpose (json, os): the copy task's up-to-date check reads these on every no-op run.
A record says what the tool wrote at a target and when it last verified it; prune at the
target deletes only files named here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..environment import STATE_DIRNAME, expand
from ..errors import UnsafePathError
from ..safefs import atomic_write_bytes, check_dir, read_bytes

FOLDER = "copies"


def records_dir(backup_dir: Path) -> Path:
    """Where the records of copies of the archives in `backup_dir` live."""
    return backup_dir / STATE_DIRNAME / FOLDER


def record_path(backup_dir: Path, target: str) -> Path:
    """One target's record file."""
    return records_dir(backup_dir) / f"{target}.json"


def now() -> str:
    """Local time with offset, as the rest of the tool writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def load(backup_dir: Path, target: str) -> dict[str, Any]:
    """A target's record ({'target', 'config', 'copies': {archive name: entry}}), or an empty one."""
    try:
        data = json.loads(read_bytes(record_path(backup_dir, target), 16 << 20))
    except (FileNotFoundError, ValueError, UnsafePathError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("copies"), dict):
        data = {"target": target, "copies": {}}
    return data


def save(backup_dir: Path, record: dict[str, Any]) -> None:
    """Write a target's record atomically (never through a link)."""
    folder = records_dir(backup_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    check_dir(folder)  # a planted link there is refused, never written through
    atomic_write_bytes(record_path(backup_dir, record["target"]),
                       (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), 0o640)


def all_records(backup_dir: Path) -> list[dict[str, Any]]:
    """Every target's record in a backup folder."""
    try:
        names = sorted(p.stem for p in records_dir(backup_dir).glob("*.json"))
    except OSError:
        return []
    return [load(backup_dir, name) for name in names]


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
    return json.loads(path.read_bytes())


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
        record = load(backup_dir, item["name"])
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
    except (OSError, ValueError, KeyError, TypeError):
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
    except (OSError, ValueError):
        return []
    out = []
    for item in spec.get("copies") or []:
        copies = load(Path(spec["destination"]), item["name"])["copies"]
        for result in verified.get("results", []):
            entry = copies.get(Path(result["archive"]).name) or {}
            ok = entry.get("ok") is True and entry.get("sha256") == result.get("sha256")
            out.append({"target": item["name"], "archive": Path(result["archive"]).name,
                        "ok": ok, "verifiedAt": entry.get("verifiedAt"),
                        "required": bool(item.get("required"))})
    return out
