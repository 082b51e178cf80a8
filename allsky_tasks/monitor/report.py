"""The end of an unattended run: record each spec's outcome and tell someone what went wrong."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..environment import Environment
from .notify import Channels, apprise_notify, ping, webui_message
from .runlog import SpecOutcome, record


def run_lines(results: list[SpecOutcome]) -> list[tuple[str, str]]:
    """(kind, message) per thing to report: a failure or skip per spec, and each warning.

    Messages carry no times or counts, so the WebUI's de-duplication counts repeats.
    """
    out: list[tuple[str, str]] = []
    for r in results:
        if r.result == "failed":
            # The whole message on one line: its reason may follow the first line's colon.
            why = " ".join(line.strip() for line in (r.message or "").splitlines() if line.strip())
            out.append(("error", f"allsky-tasks: backup {r.spec} failed ({r.error}): {why} "
                                 f"- see `allsky-tasks status`"))
        elif r.result == "skipped":
            # No pid or wait time in it: a skip that repeats stays one line with a count.
            out.append(("warning", f"allsky-tasks: backup {r.spec} skipped: another run was "
                                   "still writing to its backup folder"))
        for w in r.warnings:
            out.append(("warning", f"allsky-tasks: backup {r.spec}: {w}"))
    return out


def finish_run(env: Environment, results: list[SpecOutcome], channels: Channels,
               failed: bool, run_error: tuple[str, str] | None = None) -> list[str]:
    """Record, post WebUI messages, notify and ping; problems with telling (never raised).

    `run_error`: the run failed before any spec could (no specs, a broken state folder).
    """
    problems: list[str] = []
    try:
        record(env, results)
    except Exception as e:  # noqa: BLE001 - reporting must not hide the run's own result
        problems.append(f"could not record the run in {env.state_dir}: {e}")
    lines = run_lines(results)
    if run_error:
        first = (run_error[1].splitlines() or [""])[0]
        lines.insert(0, ("error", f"allsky-tasks: the backup run failed ({run_error[0]}): "
                                  f"{first} - see `allsky-tasks status`"))
    for kind, text in lines:
        try:
            webui_message(env.home, kind, text)
        except Exception as e:  # noqa: BLE001
            problems.append(f"could not add a WebUI message in {env.home}: {e}")
    body = "\n".join(text for _, text in lines) or "all specs ok"
    if lines:
        kind = "error" if any(k == "error" for k, _ in lines) else "warning"
        title = f"allsky-tasks on {socket.gethostname()}: " + (
            "backup failed" if kind == "error" else "backup warnings")
        problem = apprise_notify(channels.urls, title, body, kind)
        if problem:
            problems.append(problem)
    problem = ping(channels.ping, "fail" if failed else "success", body)
    if problem:
        problems.append(problem)
    return problems


def start_run(channels: Channels) -> list[str]:
    """The start ping (healthchecks measures the run's duration from it)."""
    problem = ping(channels.ping, "start")
    return [problem] if problem else []


def _give(p: Path, uid: int, gid: int) -> int:
    """chown one path root owns to uid:gid without following a link; 1 if changed."""
    try:
        st = os.lstat(p)
        if st.st_uid == 0 and (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(p, uid, gid, follow_symlinks=False)
            return 1
    except OSError:
        pass
    return 0


def owner_fix(flat: list[Path], deep: list[Path], uid: int, gid: int) -> int:
    """Give what root created back to the Allsky user: the folders in `flat` and their entries,
    everything below the folders in `deep` (our state). Links are never followed."""
    changed = 0
    for top in flat:
        if top.is_dir() and not top.is_symlink():
            changed += _give(top, uid, gid)
            for entry in os.scandir(top):
                changed += _give(Path(entry.path), uid, gid)
    for top in deep:
        if not top.is_dir() or top.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [".", *dirnames, *filenames]:
                changed += _give(Path(dirpath) if name == "." else Path(dirpath) / name, uid, gid)
    return changed
