"""Capture a consistent copy of a live SQLite database with SQLite's online backup API."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackError

SQLITE_MAGIC = b"SQLite format 3\x00"
METHOD = "sqlite-backup-api"
# Long enough to outlast a writer's commit on a slow SD card, short enough not to hang a run.
BUSY_TIMEOUT = 10.0


def is_sqlite(path: Path) -> bool:
    """Whether the file starts with the SQLite 3 header."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class Capture:
    """A captured copy: pack `copy` under the name of `source`, then delete it."""

    source: Path
    copy: Path
    method: str
    journal_mode: str  # of the copy: always "delete", one self-contained file
    pages: int
    integrity: str
    source_journal_mode: str = ""


def _open_source(source: Path) -> sqlite3.Connection:
    """Open the source read-only if SQLite allows it, else normally (we never write through it)."""
    base = source.resolve().as_uri()  # percent-encodes '?', '#' and spaces in the path
    errors: list[str] = []
    # mode=ro fails on a WAL database whose -shm is missing in a directory we cannot write,
    # or on a hot journal that needs rolling back; mode=rw (never rwc) still will not create
    # an empty database where the file vanished.
    for mode in ("ro", "rw"):
        conn = sqlite3.connect(f"{base}?mode={mode}", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as e:
            conn.close()
            errors.append(f"mode={mode}: {e}")
    raise sqlite3.OperationalError("; ".join(errors))


def _copy_into(source: Path, copy: Path) -> Capture:
    """Back up `source` into the empty file `copy` and check the result."""
    with closing(_open_source(source)) as src, closing(sqlite3.connect(copy, isolation_level=None)) as dst:
        source_mode = str(src.execute("PRAGMA journal_mode").fetchone()[0])
        # One read transaction around the copy: the lock is taken under the busy timeout, and the
        # backup reuses it, so the copy is one snapshot (it is never restarted by a writer).
        src.execute("BEGIN")
        try:
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            src.backup(dst)
        finally:
            with suppress(sqlite3.Error):  # never mask the backup's own error
                src.execute("ROLLBACK")
        # The backup copies page 1, WAL flag included; the archive must hold one standalone file.
        mode = str(dst.execute("PRAGMA journal_mode=DELETE").fetchone()[0])
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        integrity = "; ".join(str(row[0]) for row in dst.execute("PRAGMA integrity_check"))
    if integrity != "ok":
        raise PackError(f"the copy of SQLite database {source} fails its integrity check: {integrity[:500]}",
                        hint=f"the database itself may be damaged: run `sqlite3 {source} 'PRAGMA integrity_check'`")
    if mode != "delete":
        raise PackError(f"the copy of SQLite database {source} stayed in journal mode {mode!r}")
    return Capture(source=source, copy=copy, method=METHOD, journal_mode=mode, pages=pages,
                   integrity=integrity, source_journal_mode=source_mode)


def capture_sqlite(source: Path, workdir: Path) -> Capture:
    """Copy a possibly live database consistently into a new temp file in `workdir`."""
    fd, name = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".capture", dir=workdir)
    os.close(fd)
    copy = Path(name)
    try:
        return _copy_into(source, copy)
    except BaseException as exc:
        for leftover in (copy, Path(f"{copy}-journal"), Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            with suppress(OSError):
                leftover.unlink()
        if isinstance(exc, sqlite3.Error):
            raise PackError(f"cannot capture SQLite database {source}: {exc}",
                            hint="check the file is readable and not locked for long by another process") from exc
        raise
