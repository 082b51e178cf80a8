"""Verification records: when each archive was last read end to end, and what was found.

They live in our state folder (`<backup folder>/.allsky-tasks/verify.json`), never in a
sidecar, keyed by the archive's name and checked against its identity on disk (size, mtime,
ctime, inode): a record whose identity no longer matches says nothing about the file.
Written atomically without following links (safefs): the folder may be a shared USB stick.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from .. import safefs
from ..errors import UnsafePathError

STATE = ".allsky-tasks"
RECORDS = "verify.json"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_EVERY = "30d"


def parse_duration(text: str | int | float | None) -> float | None:
    """'7d', '10m', '1h30m', '90s' or a number of seconds -> seconds (None stays None)."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip().lower())
    if not parts or re.sub(r"[\d.\s smhdw]", "", text.lower()):
        raise ValueError(f"{text!r} is not a duration like 7d, 12h, 10m or 90s")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def identity(st: os.stat_result) -> dict[str, int]:
    """What must stay the same for an earlier read to still speak for the file.

    ctime is part of it: no user-space tool can set it back after writing into the file.
    """
    return {"size": st.st_size, "mtimeNs": st.st_mtime_ns, "ctimeNs": st.st_ctime_ns,
            "inode": st.st_ino}


def now_iso(now: float | None = None) -> str:
    """Local time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))


def is_backup_folder(folder: Path, default: Path | None = None) -> bool:
    """A folder of ours: the default backup folder, or one already holding our state."""
    if default is not None and folder.absolute() == default.absolute():
        return True
    return os.path.isdir(folder / STATE) and not os.path.islink(folder / STATE)


class RecordStore:
    """The verification records of one state folder."""

    def __init__(self, state: Path, prefix: str = "") -> None:
        self.state = state
        self.path = state / RECORDS
        self.prefix = prefix  # "" for archives in the folder; absolute paths otherwise

    def key(self, archive: Path) -> str:
        """Archives beside the state folder by name, others by absolute path."""
        return archive.name if not self.prefix else str(archive.absolute())

    def load(self) -> dict[str, dict[str, Any]]:
        """Every record ({} when there are none, or the file is not ours to read)."""
        try:
            data = json.loads(safefs.read_bytes(self.path, 64 << 20))
        except (FileNotFoundError, NotADirectoryError, ValueError, UnsafePathError):
            return {}
        records = data.get("archives") if isinstance(data, dict) else None
        return {k: v for k, v in records.items() if isinstance(v, dict)} if isinstance(
            records, dict) else {}

    def get(self, archive: Path, st: os.stat_result | None = None) -> dict[str, Any] | None:
        """The record of this very file (None if none, or the file changed since)."""
        rec = self.load().get(self.key(archive))
        if rec is None:
            return None
        try:
            st = st or os.stat(archive)
        except OSError:
            return None
        return rec if rec.get("identity") == identity(st) else None

    def put(self, archive: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Store one record (read-merge-write: other archives' records are kept)."""
        self.state.mkdir(mode=0o750, parents=True, exist_ok=True)
        safefs.check_dir(self.state)
        records = self.load()
        records[self.key(archive)] = record
        for name in [k for k in records if not self.prefix and "/" not in k
                     and not (self.state.parent / k).exists()]:
            del records[name]  # the archive is gone: its record with it
        blob = json.dumps({"format": 1, "archives": records}, indent=1, sort_keys=True)
        safefs.atomic_write_bytes(self.path, (blob + "\n").encode(), 0o640)
        return record


def store_for(archive: Path, default_state: Path | None = None) -> RecordStore:
    """The store for an archive: its folder's state, or (outside backup folders) the default.

    Nothing is ever written beside a file outside a backup folder.
    """
    folder = archive.absolute().parent
    default_dir = default_state.parent if default_state is not None else None
    if is_backup_folder(folder, default_dir):
        return RecordStore(folder / STATE)
    if default_state is None:
        raise UnsafePathError(f"{archive}: not in a backup folder and no state folder given")
    return RecordStore(default_state, prefix="abs")


def make_record(st: os.stat_result, ok: bool, /, **facts: Any) -> dict[str, Any]:
    """A record of one full read of the file with this identity."""
    facts = {k: v for k, v in facts.items() if k not in ("ok", "identity", "epoch")}
    return {"identity": identity(st), "verifiedAt": now_iso(), "epoch": time.time(), **facts,
            "ok": ok}


def age_seconds(record: dict[str, Any] | None, now: float | None = None) -> float | None:
    """How long ago the record's read was (None: never read)."""
    if not record or not isinstance(record.get("epoch"), (int, float)):
        return None
    return (time.time() if now is None else now) - float(record["epoch"])


def due(archives: list[Path], store: RecordStore, every: float | None,
        now: float | None = None) -> list[Path]:
    """The archives to read again, longest unchecked first (never read, changed, stale).

    The hook copies use too: a copy's own records answer the same questions.
    """
    records = store.load()
    scored: list[tuple[float, str, Path]] = []
    for path in archives:
        rec = records.get(store.key(path))
        try:
            st = os.stat(path)
        except OSError:
            continue
        age = age_seconds(rec, now) if rec and rec.get("identity") == identity(st) else None
        if age is None:
            scored.append((float("inf"), path.name, path))
        elif every is not None and age >= every:
            scored.append((age, path.name, path))
    return [p for _, _, p in sorted(scored, key=lambda t: (-t[0], t[1]))]
