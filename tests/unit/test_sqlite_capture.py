"""Capturing a live SQLite database while the stand-in service writes to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from allsky_tasks.backup.sqlite_capture import METHOD, capture_sqlite, is_sqlite
from allsky_tasks.errors import PackError
from tests.helpers.service_fixture import row_count, start_standin, wait_until


def _make_db(path: Path, rows: int = 500) -> None:
    """A small rollback-mode database."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 300,)] * rows)
    conn.close()


def test_is_sqlite(tmp_path: Path) -> None:
    db, text, empty = tmp_path / "a.db", tmp_path / "b.txt", tmp_path / "c"
    _make_db(db, 1)
    text.write_text("hello, this is not a database at all")
    empty.write_bytes(b"")
    assert is_sqlite(db)
    assert not is_sqlite(text)
    assert not is_sqlite(empty)
    assert not is_sqlite(tmp_path / "missing.db")
    assert not is_sqlite(tmp_path)  # a directory: OSError -> False


@pytest.mark.parametrize("wal", [False, True], ids=["rollback", "wal"])
def test_capture_while_service_writes(tmp_path: Path, svc: Path, wal: bool) -> None:
    db = tmp_path / "allsky.db"
    work = tmp_path / "work"
    work.mkdir()
    start_standin(svc, db=db, wal=wal)
    wait_until(lambda: row_count(db) >= 200, "the stand-in to write 200 rows")

    before = row_count(db)
    cap = capture_sqlite(db, work)
    after = row_count(db)

    assert cap.source == db and cap.copy.parent == work and cap.copy.exists()
    assert cap.method == METHOD == "sqlite-backup-api"
    assert cap.integrity == "ok" and cap.journal_mode == "delete" and cap.pages > 0
    assert cap.source_journal_mode == ("wal" if wal else "delete")
    # One self-contained file: rollback mode in the header, nothing beside it.
    header = cap.copy.read_bytes()[:100]
    assert header[:16] == b"SQLite format 3\x00" and header[18:20] == b"\x01\x01"
    assert sorted(p.name for p in work.iterdir()) == [cap.copy.name]
    conn = sqlite3.connect(f"{cap.copy.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        count, top = conn.execute("SELECT count(*), max(counter) FROM frames").fetchone()
    finally:
        conn.close()
    assert before <= count <= after
    assert top == count  # one snapshot: committed rows 1..N, no gaps, no half transaction
    # The writer was not stopped by the capture (under load it may need a moment).
    wait_until(lambda: row_count(db) > max(before, after), "the stand-in to keep writing")


def test_capture_idle_database(tmp_path: Path) -> None:
    db = tmp_path / "idle.db"
    _make_db(db)
    cap = capture_sqlite(db, tmp_path)
    assert cap.copy != db and cap.copy.read_bytes()[:16] == b"SQLite format 3\x00"
    with sqlite3.connect(cap.copy) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 500
    conn.close()


def test_capture_includes_uncheckpointed_wal(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # keep every row in the -wal file
        writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for _ in range(300):
            writer.execute("INSERT INTO t (v) VALUES ('y')")
        assert Path(f"{db}-wal").stat().st_size > 0
        cap = capture_sqlite(db, tmp_path)
    finally:
        writer.close()
    assert cap.source_journal_mode == "wal" and cap.journal_mode == "delete"
    with sqlite3.connect(cap.copy) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 300
    conn.close()
    assert not Path(f"{cap.copy}-wal").exists()


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(PackError, match="cannot capture SQLite database .*missing.db"):
        capture_sqlite(tmp_path / "missing.db", work)
    assert not (tmp_path / "missing.db").exists()
    assert list(work.iterdir()) == []


def test_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"definitely not sqlite" * 100)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(PackError, match="bogus.db"):
        capture_sqlite(bogus, work)
    assert list(work.iterdir()) == []


def test_corrupt_database(tmp_path: Path) -> None:
    db = tmp_path / "corrupt.db"
    _make_db(db, 2000)
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    data[page_size * 3: page_size * 5] = b"\xa5" * (page_size * 2)  # wreck two b-tree pages
    db.write_bytes(bytes(data))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(PackError, match="corrupt.db") as info:
        capture_sqlite(db, work)
    assert info.value.exit_code == 14
    assert list(work.iterdir()) == []
