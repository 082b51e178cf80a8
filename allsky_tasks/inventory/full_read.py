"""Full reads of backups (verify): run the checks, record the result in our state folder."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from ..archive.manifest import read_sidecar
from ..archive.records import make_record as make_check
from ..errors import InventoryError, ManifestError, VerifyError
from .listing import read_store
from .record import Record

__all__ = ["mark_stale", "verify_backup", "verify_many"]


def verify_backup(path: Path) -> dict[str, Any]:
    """Read any archive completely: the checks of import and restore, our manifest when its
    metadata.json carries one, the size and SHA-256 recorded at backup time.

    The result goes to our state folder (the backup folder's, or the default one for a file
    elsewhere), keyed by the file's identity; nothing is written beside the archive.
    """
    from ..archive.scrub import recorded_facts, scrub

    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):  # a link or FIFO named like a backup: never followed
            raise InventoryError(f"{path}: not a regular file ({stat.filemode(st.st_mode)}); "
                                 "not read", hint="give the path of the archive itself")
        recorded = recorded_facts(read_sidecar(path))
    except ManifestError:
        recorded = {}
    except OSError as e:
        raise InventoryError(f"{path}: {e.strerror or e}") from e
    store = read_store(path)
    try:
        result = scrub(path, recorded)
    except VerifyError as e:
        store.put(path, make_check(st, False, problems=e.problems[:100]))
        raise
    return store.put(path, make_check(st, True, **result))


def verify_many(paths: list[Path]) -> list[dict[str, Any]]:
    """Scrub each archive; a row per archive with its result or problems (never raises)."""
    rows = []
    for path in paths:
        try:
            rows.append({"archive": str(path), **verify_backup(path)})
        except (VerifyError, InventoryError) as e:
            problems = getattr(e, "problems", None) or [e.message]
            rows.append({"archive": str(path), "ok": False, "problems": problems})
    return rows


def mark_stale(records: list[Record], every: dict[str, float | None], default: float | None,
               now: float | None = None) -> None:
    """Flag records whose last full read is older than their spec's verify.every."""
    now = time.time() if now is None else now
    for r in records:
        limit = every.get(r.spec, default)
        r.stale = (r.verified_epoch is not None and limit is not None
                   and now - r.verified_epoch >= limit)
