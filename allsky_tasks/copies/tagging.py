"""Putting authentication tags at a target (copies/auth.py): with each new copy, and for the
copies a spec recorded before copies were authenticated."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..archive.authkey import AuthKey
from ..safefs import atomic_write_bytes
from . import records
from .auth import make_tag, tag_name
from .target import Target
from .transfer import Payload, transfer


def put_tag(target: Target, work: Path, key: AuthKey, stored: str, size: int, sha256: str) -> str:
    """Store the authentication tag of one stored copy at the target (copies/auth.py)."""
    name = tag_name(stored)
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    local = work / f".{name}.{os.getpid()}"
    data = make_tag(key, stored, size, sha256)
    atomic_write_bytes(local, data, 0o600)  # never through a planted link
    try:
        transfer(target, Payload(local, name, len(data), hashlib.sha256(data).hexdigest()),
                 lambda n: None)
    finally:
        local.unlink(missing_ok=True)
    return name


def tag_recorded(target: Target, backup_dir: Path, spec: str, key: AuthKey) -> list[str]:
    """Tag the copies this spec recorded at the target before copies were authenticated.

    Each gets a tag over the size and SHA-256 recorded when it was verified there, so a copy
    changed since then still fails at restore. Returns the stored names tagged.
    """
    record = records.load(backup_dir, spec, target.name)
    present = {f.name: f.size for f in target.list_files()}
    work = records.records_dir(backup_dir) / "work"
    tagged = []
    for entry in record["copies"].values():
        stored = entry.get("stored")
        if (not stored or (entry.get("authKey") == key.fingerprint and tag_name(stored) in present)
                or present.get(stored) != entry.get("storedSize")
                or not isinstance(entry.get("storedSha256"), str)):
            continue
        entry["auth"] = put_tag(target, work, key, stored, entry["storedSize"],
                                entry["storedSha256"])
        entry["authKey"] = key.fingerprint
        tagged.append(stored)
    if tagged:
        records.save(backup_dir, record)
    return tagged
