"""The undo point: a verified config backup of the current state, taken before a restore."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from ..archive.manifest import read_sidecar, record_verify, write_sidecar
from ..archive.verify import verify
from ..backup.pack import pack
from ..backup.scan import read_rows, scan
from ..errors import AllskyTasksError, RestoreError, os_message
from ..spec.model import Spec
from ..spec.sections import SECTIONS
from .prepare import Prepared
from .selection import EXTRA, section_of

__all__ = ["undo_backup"]


def _present_sections(home: Path) -> tuple[str, ...]:
    """Every config section with something on disk (core always)."""
    def exists(rel: str) -> bool:
        return rel.startswith("{") or os.path.lexists(home / rel)

    return tuple(s.key for s in SECTIONS if s.required or any(exists(p) for p in s.paths)
                 or any(next(iter(home.glob(g)), None) for g in s.globs))


def undo_backup(prep: Prepared, state_dir: Path) -> tuple[Path, list[str]]:
    """A verified config backup of the current state ("pre-restore") in the backup folder."""
    assert prep.selection is not None
    extra = [glob.escape(m.path) for m in prep.selection.files
             if section_of(m.path, prep.metadata) == EXTRA
             and os.path.lexists(prep.home / m.path)]
    spec = Spec(name="pre-restore", path=Path("pre-restore"), type="config",
                description=f"Undo point taken before restoring {prep.archive.name}",
                home=prep.home, images=prep.images, destination=prep.backup_dir,
                sections=_present_sections(prep.home), include=tuple(extra), format="zstd",
                level=3, on_file_error="warn",
                digest=hashlib.sha256(f"pre-restore:{prep.archive}:{time.time()}".encode())
                .hexdigest())
    hint = "nothing was changed; fix that, or pass --no-undo to restore without an undo point"
    where: Path = state_dir  # the file being written when an OSError comes without its name
    try:
        with tempfile.TemporaryDirectory(prefix="pre-restore-", dir=state_dir) as work:
            rows = where = Path(work) / "scan.jsonl"
            with rows.open("w", encoding="utf-8") as out:
                summary = scan(spec, out)
            where = prep.backup_dir
            result = pack(spec, summary, read_rows(rows), Path(work))
            metadata = json.loads(Path(result.metadata).read_bytes())
        archive = where = Path(result.archive)
        write_sidecar(archive, metadata, {"sizeBytes": result.size, "sha256": result.sha256})
        record_verify(archive, verify(archive, read_sidecar(archive)))
    except AllskyTasksError as e:
        raise RestoreError(f"cannot take the undo backup of {prep.home}: {e.message}", hint=hint) from e
    except OSError as e:
        raise RestoreError(f"cannot take the undo backup of {prep.home}: "
                           f"{os_message(e, e.filename or where, 'writing the undo backup')}", hint=hint) from e
    return archive, result.warnings
