"""A stale hot journal (or WAL) beside a restored SQLite database is moved aside, not replayed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.restore.run import restore

from ..conftest import Site, backup
from .test_restore import opts

DB = "config/myFiles/allsky.db"

# A writer that dies mid-transaction: with a one-page cache, SQLite spills changed pages into
# the database file after saving the originals in the rollback journal, which stays behind hot.
HOT = """
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA journal_mode=DELETE")
con.execute("PRAGMA cache_size=1")
con.execute("BEGIN")
con.execute("UPDATE t SET v = randomblob(3000)")
con.execute("INSERT INTO t SELECT id + 100000, randomblob(3000) FROM t")
os._exit(0)
"""


def _db(path: Path, rows: int, fill: str) -> None:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, fill * 1000) for i in range(rows)])
    con.commit()
    con.close()


@pytest.mark.parametrize("side", ["-journal", "-wal"])
def test_stale_hot_journal_is_not_replayed_over_the_restored_database(site: Site, side: str) -> None:
    db = site.home / DB
    _db(db, 300, "b")  # what the backup holds
    archive = backup(site, "db", "type: config\nsections: {databases: true}\n")
    _db(db, 500, "c")  # the live database changed since
    if side == "-journal":
        subprocess.run([sys.executable, "-c", HOT, str(db)], check=True, timeout=60)
        assert (db.parent / "allsky.db-journal").stat().st_size > 0  # a real hot journal
    else:
        con = sqlite3.connect(db)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA wal_autocheckpoint=0")
        con.execute("DELETE FROM t")
        con.commit()
        subprocess.run(["cp", str(db) + "-wal", str(db) + "-wal.keep"], check=True)
        con.close()  # checkpoints and removes the WAL; put the copy back as a stale one
        Path(str(db) + "-wal.keep").rename(str(db) + "-wal")
    summary = restore(archive, site.home, opts(site, undo=False))
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 300
    assert {r[0] for r in con.execute("SELECT v FROM t")} == {"b" * 1000}
    assert any("stale SQLite files" in s and f"{DB}{side}" in s for s in summary.steps)
    assert not (db.parent / f"allsky.db{side}").exists()
