"""The listing's cache of archives' own metadata.json, in our state folder, keyed by identity.

When an archive's sidecar is not one of ours (Allsky's own, or the one its WebUI upload wrote
over ours), `list` reads the archive's metadata.json, its last member, which means the whole
file. The result (the metadata without the manifest, permissions and file list, plus the
file's size and SHA-256 as read) is kept in `<backup folder>/.allsky-tasks/archive-metadata.json`
under the archive's name, with its identity (size, mtime, ctime, inode): the next `list` reads
nothing while the file is unchanged. Entries carry this device's tag (authkey), and the file is
read only when ours, so a planted entry is read again rather than believed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import safefs
from ..archive import authkey
from ..archive.metadata import NAMESPACE
from ..archive.records import identity
from ..errors import UnsafePathError

CACHE = "archive-metadata.json"
PURPOSE = "metadata-cache/1"
_BULKY = ("permissions", "files")  # every member's path: not needed for a listing row


def reduced(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata a listing row needs: without the bulky per-member lists.

    Our manifest becomes an empty list, so the row still knows the content is ours.
    """
    out = {k: v for k, v in meta.items() if k not in _BULKY}
    ours = meta.get(NAMESPACE)
    if isinstance(ours, dict):
        out[NAMESPACE] = {k: ([] if k == "manifest" else v) for k, v in ours.items()}
    return out


class MetadataCache:
    """One backup folder's cache; read once, written once per listing (flush)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = state / CACHE
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty = False
        self._key: authkey.AuthKey | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = {}
            try:
                self._key = authkey.load()
                data = json.loads(safefs.read_bytes(self.path, 64 << 20, owned=True))
            except (FileNotFoundError, NotADirectoryError, ValueError, UnsafePathError):
                return self._entries
            found = data.get("archives") if isinstance(data, dict) else None
            if isinstance(found, dict) and self._key is not None:
                self._entries = {k: v for k, v in found.items() if isinstance(v, dict)
                                 and self._key.check(v.get("tag"), PURPOSE, k, _body(v))}
        return self._entries

    def get(self, name: str, st: os.stat_result) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        """(metadata, facts) read earlier from this very file, or None."""
        entry = self._load().get(name)
        if entry is None or entry.get("identity") != identity(st):
            return None
        meta = entry.get("metadata")
        facts = entry.get("facts")
        return (meta if isinstance(meta, dict) else None), (facts if isinstance(facts, dict) else {})

    def put(self, name: str, st: os.stat_result, meta: dict[str, Any] | None,
            facts: dict[str, Any]) -> None:
        """Remember what was read from this file (written by flush)."""
        entries = self._load()
        body = {"identity": identity(st), "metadata": reduced(meta) if meta else None,
                "facts": {k: v for k, v in facts.items() if k in ("sizeBytes", "sha256", "problem")}}
        entries[name] = {**body, "tag": ""}
        self._dirty = True

    def flush(self) -> None:
        """Write the cache if anything was added (a folder we cannot write is simply uncached)."""
        if not self._dirty or self._entries is None:
            return
        self._dirty = False
        try:
            key, _ = authkey.ensure()
            entries = {k: {**_body(v), "tag": key.tag(PURPOSE, k, _body(v))}
                       for k, v in self._entries.items()
                       if safefs.exists(self.state.parent / k)}  # archives that are gone: dropped
            blob = json.dumps({"format": 1, "archives": entries}, sort_keys=True)
            safefs.make_dir(self.state)
            safefs.atomic_write_bytes(self.path, (blob + "\n").encode(), 0o640)
        except (OSError, UnsafePathError):
            pass  # a read-only folder (or a planted link) still lists, reading again next time


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "tag"}
