"""Plumbing shared by the stage actions: state files, operator lines, error wrapping, lock wait."""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from ..errors import AllskyTasksError, DestinationError, ManifestError, PackError, ScanError, SpaceError, os_message
from ..progress import QUIET_ENV
from ..safefs import check_dir, make_dir, read_bytes
from ..service.control import ServiceConfig, pause_needed
from ..spec.load import Spec, spec_from_json
from .scan import ScanSummary

LOCK_WAIT_ENV = "ALLSKY_LOCK_WAIT"
# Errors of this run, newest last: the CLI maps the first to its exit code.
FAILURES: list[AllskyTasksError] = []
# doit's own error when it exits 3 without running tasks (e.g. a traceback opening its
# database): the last line it printed.
DOIT_ERROR: list[str] = []
# Specs packed by this process (the summary says "new archive" or "up to date").
PACKED: set[str] = set()


def write_json(path: Path, data: Any) -> None:
    """Atomically write a JSON state file."""
    from ..archive.io import atomic_write_bytes

    make_dir(path.parent)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode(), 0o640)


def read_json(path: Path) -> Any:
    """Read a JSON state file: never through a link, and only when ours (owned by the running
    user, writable by nobody else), like the service marker: each one steers what runs, where
    we write or what counts as done (the resolved spec with its service commands, the archives
    to write sidecars beside, what verify found)."""
    return json.loads(read_bytes(path, owned=True))


def say(message: str) -> None:
    """Operator-facing line on stdout (doit's verbosity and quiet mode apply)."""
    if os.environ.get(QUIET_ENV, "") in ("", "0"):
        print(message, flush=True)


_STAGE_ERRORS: dict[str, type[AllskyTasksError]] = {
    "run_scan": ScanError, "run_pack": PackError, "run_manifest": ManifestError}


def os_error(stage_fn: str, e: OSError) -> AllskyTasksError:
    """An OSError that escaped a stage as our error: read-only/permission -> DestinationError."""
    what = os_message(e, None if e.filename is not None else "a file of the backup")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk: the stage's error, else SpaceError
        return _STAGE_ERRORS.get(stage_fn, SpaceError)(
            f"{what} (while {stage_fn.removeprefix('run_')} wrote it)",
            hint="free some space there (delete or move old backups); no partial file was kept")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and stage_fn != "run_scan":
        return DestinationError(what, hint="the backup folder (or destination) must be writable by "
                                           "the user running the backup; remount it read-write")
    return _STAGE_ERRORS.get(stage_fn, DestinationError)(what)


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a clean doit failure (no traceback) and remember them."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AllskyTasksError as e:
            FAILURES.append(e)
            return TaskFailed(f"[{type(e).__name__}] {e}")
        except OSError as e:  # a read-only or full backup folder: our error, naming the path
            err = os_error(fn.__name__, e)
            FAILURES.append(err)
            return TaskFailed(f"[{type(err).__name__}] {err}")
        except KeyboardInterrupt as e:
            # Ctrl-C or SIGTERM: stop the whole run without a traceback. SystemExit passes
            # through doit's runner, which still saves its state on the way out.
            why = str(e) or "Ctrl-C"
            print(f"\n{fn.__name__.removeprefix('run_')} interrupted ({why}): no partial "
                  "archive was kept; the service is as it was before", file=sys.stderr)
            raise SystemExit(130) from None
    return wrapper


def load_state(st: Path) -> tuple[Spec, ScanSummary | None]:
    """The checked spec and, once scanned, the scan summary."""
    check_dir(st)  # a link here would hand us another spec.json
    spec = spec_from_json(read_json(st / "spec.json"))
    scan_file = st / "scan.json"
    summary = ScanSummary.from_dict(read_json(scan_file)) if scan_file.exists() else None
    return spec, summary


def service_for(spec: Spec, summary: ScanSummary | None) -> tuple[ServiceConfig, bool, str]:
    """The spec's service settings and whether this backup pauses it, with the reason."""
    cfg = ServiceConfig.from_spec(spec.service)
    selected = "databases" in spec.sections or bool(summary and summary.database_files)
    needed, reason = pause_needed(cfg, selected)
    return cfg, needed, reason



def lock_wait() -> float:
    """Seconds to wait for another run's lock (`run --lock-wait`, ALLSKY_LOCK_WAIT)."""
    try:
        return max(0.0, float(os.environ.get(LOCK_WAIT_ENV, "") or 0))
    except ValueError:
        return 0.0
