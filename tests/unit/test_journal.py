"""The restore journal is trusted only as far as a file of ours can be: hostile ones move nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.errors import RestoreError, UnsafePathError
from allsky_tasks.restore.dirs import JOURNAL_NAME
from allsky_tasks.restore.journal import finish_pending


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _journal(state: Path, home: Path, staging: Path, members: list, **extra: object) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    path = state / JOURNAL_NAME
    path.write_text(json.dumps({"pid": _dead_pid(), "archive": "a.tar.zst", "staging": str(staging),
                                "kind": "config", "home": str(home), "roots": {"home": str(home)},
                                "relink": None, "undo": None, "members": members, **extra}))
    path.chmod(0o600)
    return path


def _staged(home: Path, name: str = ".allsky-restore-12345") -> Path:
    staging = home / name
    (staging / "tree" / "config").mkdir(parents=True)
    (staging / "trash").mkdir()
    (staging / "tree" / "config" / "x.json").write_text("new")
    return staging


def test_a_journal_pointing_outside_a_staging_folder_moves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    loot = _staged(tmp_path, "loot")  # not a staging folder of the home
    _journal(tmp_path / "state", home, loot, [["config/x.json", "file", 0, None, -1, -1]])
    with pytest.raises(RestoreError, match="not a restore's own folder") as caught:
        finish_pending(tmp_path / "state")
    assert not (home / "config" / "x.json").exists()
    # Said once, truthfully (the tree may be half-restored), then set aside: later runs go on.
    assert "may mix old and new files" in str(caught.value) and "set aside" in str(caught.value)
    assert not (tmp_path / "state" / JOURNAL_NAME).exists()
    assert list((tmp_path / "state").glob("restore-journal.failed-*.json"))
    assert finish_pending(tmp_path / "state") is None


def test_an_images_journal_staged_below_the_home_is_finished(tmp_path: Path) -> None:
    # Images on the home's filesystem stage below the home, not below the images folder.
    home = tmp_path / "home"
    images = home / "images"
    (images / "20260101").mkdir(parents=True)
    staging = home / ".allsky-restore-12345"
    (staging / "tree" / "images" / "20260101").mkdir(parents=True)
    (staging / "trash").mkdir()
    (staging / "tree" / "images" / "20260101" / "a.jpg").write_bytes(b"jpeg")
    _journal(tmp_path / "state", home, staging, [["images/20260101/a.jpg", "file", 0, None, -1, -1]],
             kind="images", roots={"images": str(images)})  # as written before stagingRoot
    assert "finished it" in (finish_pending(tmp_path / "state") or "")
    assert (images / "20260101" / "a.jpg").read_bytes() == b"jpeg"
    assert not staging.exists() and not (tmp_path / "state" / JOURNAL_NAME).exists()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "config/../../x"])
def test_a_journal_with_an_unsafe_path_moves_nothing(tmp_path: Path, bad: str) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    staging = _staged(home)
    _journal(tmp_path / "state", home, staging, [[bad, "file", 0, None, -1, -1]])
    with pytest.raises(RestoreError, match="unsafe path"):
        finish_pending(tmp_path / "state")


def test_a_foreign_or_linked_journal_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    staging = _staged(home)
    path = _journal(tmp_path / "state", home, staging, [["config/x.json", "file", 0, None, -1, -1]])
    os.chown(path, 4321, 4321)
    with pytest.raises(UnsafePathError, match="owned by uid 4321"):
        finish_pending(tmp_path / "state")
    os.chown(path, 0, 0)
    path.chmod(0o666)
    with pytest.raises(UnsafePathError, match="writable by group or others"):
        finish_pending(tmp_path / "state")
    assert not (home / "config" / "x.json").exists()


def test_a_good_journal_is_finished_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "x.json").write_text("old")
    staging = _staged(home)
    _journal(tmp_path / "state", home, staging, [["config", "dir", 0, 0o755, -1, -1],
                                                 ["config/x.json", "file", 0, None, -1, -1]])
    message = finish_pending(tmp_path / "state")
    assert message and "interrupted after 0 of 2 paths" in message and "finished it" in message
    assert (home / "config" / "x.json").read_text() == "new" and not staging.exists()
    assert finish_pending(tmp_path / "state") is None


def test_a_journal_whose_staging_is_gone_says_so_and_names_the_undo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    _journal(tmp_path / "state", home, home / ".allsky-restore-999", [["config", "dir", 0, 0o755, -1, -1]],
             undo=str(tmp_path / "allsky-config-backup-20260101-000000.tar.zst"))
    with pytest.raises(RestoreError, match="staging folder .* is gone") as info:
        finish_pending(tmp_path / "state")
    assert "allsky-tasks restore allsky-config-backup-20260101-000000.tar.zst" in str(info.value)
    assert finish_pending(tmp_path / "state") is None  # reported once; the journal is kept aside
    assert list((tmp_path / "state").glob("restore-journal.failed-*.json"))
