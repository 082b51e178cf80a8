"""Verification records: when each archive was last read end to end, and what was found.

They live in our state folder (`<backup folder>/.allsky-tasks/verify.json`), never in a
sidecar, keyed by the archive's name and checked against its identity on disk (size, mtime,
ctime, inode): a record whose identity no longer matches says nothing about the file. Each
record is tagged with this device's key (authkey) over its key, identity, verdict and the
SHA-256 our read computed, so a record nobody here wrote, or one copied onto another file,
says nothing either. Written atomically without following links (safefs): the folder may be
a shared USB stick or network share.
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
from . import authkey

STATE = ".allsky-tasks"
RECORDS = "verify.json"
PURPOSE = "verify-record/1"  # what a record's tag vouches for (authkey)
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


# The last parsed version of each records file: (its stat version, the records).
_PARSED: dict[str, tuple[tuple[int, ...], dict[str, dict[str, Any]]]] = {}


class RecordStore:
    """The verification records of one state folder.

    A record counts only when the file is ours (owned by the running user, writable by nobody
    else) and the record carries this device's tag over its archive key, identity, verdict
    and SHA-256 (authkey): a record planted by anyone else, or replayed onto another file,
    says nothing. `refused` names the file (or key) when it was not ours to trust.
    """

    def __init__(self, state: Path, prefix: str = "") -> None:
        self.state = state
        self.path = state / RECORDS
        self.prefix = prefix  # "" for archives in the folder; absolute paths otherwise
        self.refused: str | None = None
        self._auth: authkey.AuthKey | None | bool = False  # False: not loaded yet

    def key(self, archive: Path) -> str:
        """Archives beside the state folder by name, others by absolute path."""
        return archive.name if not self.prefix else str(archive.absolute())

    def _raw(self) -> dict[str, dict[str, Any]]:
        """Every record in the file, tagged or not ({} when none, or not ours to read).

        Parsed once per version of the file (its inode, size, times, owner and mode), so a
        listing of many archives reads it once.
        """
        try:
            st = os.lstat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        version = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_uid, st.st_mode)
        seen = _PARSED.get(str(self.path))
        if seen is None or seen[0] != version:
            try:
                data = json.loads(safefs.read_bytes(self.path, 64 << 20, owned=True))
            except (FileNotFoundError, NotADirectoryError, ValueError):
                return {}
            except UnsafePathError as e:
                self.refused = e.message
                return {}
            found = data.get("archives") if isinstance(data, dict) else None
            records = {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(
                found, dict) else {}
            seen = _PARSED[str(self.path)] = (version, records)
        return {k: dict(v) for k, v in seen[1].items()}

    def _device_key(self) -> authkey.AuthKey | None:
        """This device's key for checking tags (None: none, or not ours: nothing counts)."""
        if self._auth is False:
            try:
                self._auth = authkey.load()
            except UnsafePathError as e:
                self.refused, self._auth = e.message, None
        return self._auth if isinstance(self._auth, authkey.AuthKey) else None

    def _tagged(self, name: str, record: dict[str, Any]) -> bool:
        """Made by our verify: this device's tag, and a good verdict names the SHA-256 read."""
        key = self._device_key()
        if key is None:
            return False
        if record.get("ok") is True and not isinstance(record.get("sha256"), str):
            return False
        body = {k: v for k, v in record.items() if k != "tag"}
        return key.check(record.get("tag"), PURPOSE, name, body)

    def load(self) -> dict[str, dict[str, Any]]:
        """Every record made by our verify ({} when there are none, or none is ours)."""
        return {k: v for k, v in self._raw().items() if self._tagged(k, v)}

    def get(self, archive: Path, st: os.stat_result | None = None,
            sha256: str | None = None) -> dict[str, Any] | None:
        """The record of this very file (None if none, not ours, or the file changed since).

        `sha256`: the file was just read whole by us and has these bytes; a record of the same
        name for the same SHA-256 speaks for it even though its identity is new.
        """
        name = self.key(archive)
        rec = self._raw().get(name)
        if rec is None or not self._tagged(name, rec):
            return None
        try:
            st = st or os.stat(archive)
        except OSError:
            return None
        if rec.get("identity") == identity(st):
            return rec
        return rec if sha256 is not None and rec.get("sha256") == sha256 else None

    def put(self, archive: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Store one record, tagged (read-merge-write: other archives' good records are kept).

        Records that are not ours (planted, or from before records were tagged) are dropped.
        """
        if record.get("ok") is True and not isinstance(record.get("sha256"), str):
            raise ValueError(f"{archive}: a good verdict needs the SHA-256 that was read")
        self.state.mkdir(mode=0o750, parents=True, exist_ok=True)
        safefs.check_dir(self.state)
        key, _ = authkey.ensure()  # a key that is not ours raises, naming it
        self._auth = key
        records = self.load()
        name = self.key(archive)
        body = {k: v for k, v in record.items() if k != "tag"}
        records[name] = {**body, "tag": key.tag(PURPOSE, name, body)}
        for gone in [k for k in records if not self.prefix and "/" not in k
                     and not (self.state.parent / k).exists()]:
            del records[gone]  # the archive is gone: its record with it
        blob = json.dumps({"format": 2, "archives": records}, indent=1, sort_keys=True)
        safefs.atomic_write_bytes(self.path, (blob + "\n").encode(), 0o640)
        return body


def state_for(archive: Path, default_state: Path | None = None) -> tuple[Path, str]:
    """(state folder, key prefix) for an archive: its folder's state, or (outside backup
    folders) the default, keyed by absolute path. Nothing is ever written beside a file
    outside a backup folder."""
    folder = archive.absolute().parent
    default_dir = default_state.parent if default_state is not None else None
    if is_backup_folder(folder, default_dir):
        return folder / STATE, ""
    if default_state is None:
        raise UnsafePathError(f"{archive}: not in a backup folder and no state folder given")
    return default_state, "abs"


def store_for(archive: Path, default_state: Path | None = None) -> RecordStore:
    """The verification records for an archive (see state_for)."""
    return RecordStore(*state_for(archive, default_state))


def make_record(st: os.stat_result, ok: bool, /, **facts: Any) -> dict[str, Any]:
    """A record of one full read of the file with this identity."""
    facts = {k: v for k, v in facts.items() if k not in ("ok", "identity", "epoch", "tag")}
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
