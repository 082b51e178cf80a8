"""The restore journal: a placement killed half-way is finished by the next command, whatever it is.

Before the first member is moved into place (all of them extracted, checked and synced into
the staging folder), restore writes `<state>/restore-journal.json`: the staging folder, the
roots and every member to place. Each move is one rename out of the staging tree, so after a
SIGKILL what is still staged is exactly what is left to do. The next command (any `doit` run,
any `allsky-tasks` command) finishes the placement from the staging folder, re-creates the
settings links, writes the restore log and removes the journal; the service marker that the
restore left is recovered after that, so the service starts on a whole tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..archive.members import Member
from ..errors import RestoreError
from ..safefs import atomic_write_bytes, check_dir, make_dir, read_bytes
from ..service.marker import pid_alive
from .dirs import JOURNAL_NAME, STAGING_PREFIX
from .place import Placer

JOURNAL_LIMIT = 256 << 20
# Tests only: SIGKILL this process right after placing that many members (a counted kill point).
KILL_AFTER_ENV = "ALLSKY_TASKS_TEST_KILL_AFTER"
_STAGING_RE = re.compile(re.escape(STAGING_PREFIX) + r"\d+$")


def kill_point() -> Callable[[int], None]:
    """A hook called with the number placed so far; kills at the test's count, else nothing."""
    raw = os.environ.get(KILL_AFTER_ENV, "")
    if not raw.isdigit():
        return lambda _n: None
    limit = int(raw)

    def hook(n: int) -> None:
        if n == limit:
            os.kill(os.getpid(), signal.SIGKILL)
    return hook


def begin(state_dir: Path, *, archive: Path, staging: Path, roots: dict[str, Path], kind: str,
          home: Path, relink: tuple[str, str] | None, undo: str | None,
          members: list[Member], attrs: Callable[[Member], tuple[int | None, int, int]]) -> Path:
    """Record the placement about to start (atomically, durably, never through a link).

    `roots` are where members go; the staging folder sits below one of them or below the
    home (an images restore stages below the home when the images share its filesystem).
    """
    from ..service.marker import proc_stat  # the same identity check as the service marker

    own = proc_stat(os.getpid())
    rows = [[m.path, m.type, m.mtime, *(attrs(m) if m.type == "dir" else (None, -1, -1))]
            for m in members]
    data = {"pid": os.getpid(), "pid_start": own[1] if own else None,
            "time": datetime.now().astimezone().isoformat(timespec="seconds"),
            "archive": str(archive), "staging": str(staging), "kind": kind, "home": str(home),
            "roots": {k: str(v) for k, v in roots.items()}, "stagingRoot": str(staging.parent),
            "relink": list(relink) if relink else None,
            "undo": undo, "members": rows}
    path = make_dir(state_dir) / JOURNAL_NAME
    atomic_write_bytes(path, json.dumps(data).encode(), 0o600)
    return path


def end(state_dir: Path) -> None:
    """The placement is complete: drop the journal."""
    (state_dir / JOURNAL_NAME).unlink(missing_ok=True)


def pending(state_dir: Path) -> dict[str, Any] | None:
    """The journal of an interrupted restore (not of one still running), or None."""
    path = state_dir / JOURNAL_NAME
    try:
        data = json.loads(read_bytes(path, JOURNAL_LIMIT, owned=True))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise _unusable(state_dir, {}, f"{path} is unreadable ({e})") from None
    if not isinstance(data, dict):
        return None
    pid, start = data.get("pid"), data.get("pid_start")
    if isinstance(pid, int) and pid > 0 and pid_alive(pid, start if isinstance(start, int) else None):
        return None  # that restore is still running
    return data


class _JournalAttrs:
    """Ownership from the journal: (mode, uid, gid) of each folder, as the restore computed it."""

    def __init__(self, rows: list[list[Any]]) -> None:
        self.by_path = {r[0]: (r[3], r[4], r[5]) for r in rows}
        self.warnings: list[str] = []

    def __call__(self, member: Member) -> tuple[int | None, int, int]:
        mode, uid, gid = self.by_path.get(member.path, (None, -1, -1))
        return mode, uid, gid


def _unusable(state_dir: Path, data: dict[str, Any], why: str) -> RestoreError:
    """The journal cannot finish its placement: set it aside (so later runs work) and say so."""
    path = state_dir / JOURNAL_NAME
    failed = path.with_name(f"restore-journal.failed-{int(time.time())}.json")
    os.replace(path, failed)
    archive, undo = data.get("archive"), data.get("undo")
    what = f"a restore of {archive}" if isinstance(archive, str) else "a restore"
    redo = (f"restore the undo backup: allsky-tasks restore {Path(undo).name} --yes"
            if isinstance(undo, str) and undo else "restore the backup again")
    return RestoreError(f"{what} was interrupted while moving files into place, and its journal "
                        f"cannot finish it: {why}; the tree may mix old and new files",
                        hint=f"{redo}; the journal was set aside as {failed}, so later runs go on")


def _checked(state_dir: Path, data: dict[str, Any]) -> tuple[Path, dict[str, Path], list[Member]]:
    """The journal's staging folder, roots and members, refusing anything but what restore writes."""
    try:
        staging = Path(data["staging"])
        roots = {str(k): Path(v) for k, v in data["roots"].items() if k in ("home", "images")}
        home = Path(data["home"])
        # Journals written before stagingRoot was recorded: the folder it names.
        staging_root = Path(data.get("stagingRoot") or staging.parent)
        members = [Member(path=str(r[0]), type=str(r[1]), size=0, mode="", mtime=int(r[2]),
                          uid=-1, gid=-1) for r in data["members"]]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise _unusable(state_dir, data, f"it is not one this tool wrote ({type(e).__name__}: {e})") from None
    # Staging is private to a restore: below the home (on its filesystem) or below a target root.
    places = {home, *roots.values()}
    if not roots or not _STAGING_RE.match(staging.name) or staging.parent != staging_root \
            or staging_root not in places:
        raise _unusable(state_dir, data, f"it names {staging} as its staging folder, not a restore's "
                                         f"own folder in {' or '.join(sorted(map(str, places)))}")
    for m in members:
        parts = m.path.split("/")
        if m.path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise _unusable(state_dir, data, f"it holds an unsafe path {m.path!r}")
    return staging, roots, members


def finish_pending(state_dir: Path) -> str | None:
    """Finish a placement killed half-way; a sentence saying what happened, or None."""
    from .summary import write_log  # the same log a restore writes

    data = pending(state_dir)
    if data is None:
        return None
    staging, roots, members = _checked(state_dir, data)
    archive, undo = data.get("archive"), data.get("undo")
    try:
        check_dir(staging)
        check_dir(staging / "tree")
    except (OSError, Exception) as e:  # noqa: BLE001 - gone, a link: cannot finish from it
        raise _unusable(state_dir, data, f"its staging folder {staging} is gone ({e})") from None
    started = time.monotonic()
    placer = Placer(staging, roots, _JournalAttrs(data["members"]), resume=True)
    try:
        placer.place(members)
        relink = data.get("relink")
        if data.get("kind") == "config" and isinstance(relink, list) and len(relink) == 2:
            placer.relink(str(relink[0]), str(relink[1]))
        warnings = placer.finish_dirs(members)
    finally:
        placer.close()
    done_before = placer.already
    lines = [f"Timestamp: {datetime.now().astimezone().isoformat(timespec='seconds')}",
             "Status: SUCCESS (finished by the next command after the restore was interrupted)",
             f"Backup File: {archive}", f"Interrupted: pid {data.get('pid')} at {data.get('time')}",
             f"Paths placed before the interruption: {done_before} of {len(members)}",
             f"Paths placed now: {len(members) - done_before}", f"Undo Backup: {undo or 'none'}",
             f"Duration: {time.monotonic() - started:.1f} s"]
    lines += ["Warnings:"] + [f"  {w}" for w in warnings] if warnings else []
    try:
        log = str(write_log(Path(data.get("home") or next(iter(roots.values()))), lines))
    except OSError as e:
        log = f"not written ({e.strerror or e})"
    shutil.rmtree(staging, ignore_errors=True)
    end(state_dir)
    return (f"a restore of {Path(str(archive)).name} (pid {data.get('pid')}, {data.get('time')}) was "
            f"interrupted after {done_before} of {len(members)} paths; finished it from {staging.name}: "
            f"every path now holds the backup's version (log {log})")
