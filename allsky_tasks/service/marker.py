"""The service marker: the trace a paused service leaves, and starting the service it names again."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ServiceStartError, ServiceStopError, UnsafePathError
from ..safefs import atomic_write_bytes, fsync_dir, make_dir, read_bytes
from .commands import ensure_started
from .config import ServiceConfig
from .signals import signals_deferred

__all__ = ["MARKER_NAME", "Lookup", "default_lookup", "pid_alive", "proc_stat", "read_marker",
           "recover_stale_marker", "remove_marker", "utc_now", "write_marker", "writer_active"]

MARKER_NAME = "service-paused.json"


def utc_now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process from /proc, or None if /proc cannot tell."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether `pid` is a live process, and the same one that wrote the marker."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = proc_stat(pid)
    # A zombie is dead for our purpose; another start time means the pid was reused.
    return stat is None or (stat[0] not in "ZX" and (start is None or stat[1] == start))


# What a marker may name as its unit: a systemd unit name, never an option or a path.
UNIT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9@._:-]{0,127}$")
MARKER_LIMIT = 64 << 10
# Given the spec named in a marker (or None) and its unit: the commands to start it with.
Lookup = Callable[[str | None, str], ServiceConfig]


def default_lookup(cfg: ServiceConfig | None = None) -> Lookup:
    """Commands for a marker's unit: `cfg`'s when it names that unit, else the fixed default."""
    def lookup(_spec: str | None, unit: str) -> ServiceConfig:
        return cfg if cfg is not None and cfg.unit == unit else ServiceConfig(unit=unit)
    return lookup


def write_marker(cfg: ServiceConfig, marker: Path, activity: str = "backup",
                  spec: str | None = None) -> None:
    """Atomically record that this process is about to stop the service.

    The marker names the spec, the unit and the run, never a command: whoever recovers it
    looks the commands up in the spec (or uses the default), so a forged marker runs nothing.
    """
    from .lock import held_locks

    own = proc_stat(os.getpid())
    # The destination locks held now: while the run lives one of them stays held (a flock
    # ends with its process, even on SIGKILL), so they, not the pid, tell whether it runs.
    data = {"unit": cfg.unit, "spec": spec, "activity": activity, "pid": os.getpid(),
            "pid_start": own[1] if own else None, "time": utc_now(), "locks": held_locks()}
    try:
        make_dir(marker.parent)
        atomic_write_bytes(marker, json.dumps(data, indent=2).encode(), 0o600)
    except OSError as e:
        raise ServiceStopError(f"cannot write the service marker {marker}: {e}",
                               hint="make the state directory writable; nothing was written") from e


def remove_marker(marker: Path) -> None:
    """Delete the marker durably."""
    marker.unlink(missing_ok=True)
    with suppress(OSError):  # best effort: the unlink itself already happened
        fsync_dir(marker.parent)


def read_marker(marker: Path) -> dict[str, Any] | None:
    """The marker's fields, None if there is none; UnsafePathError for a link, FIFO or foreign file."""
    try:
        raw = read_bytes(marker, MARKER_LIMIT, owned=True)
    except FileNotFoundError:
        return None
    except UnsafePathError as e:
        raise UnsafePathError(f"service marker refused: {e.message}",
                              hint=f"a marker must be a regular file of the running user, writable "
                                   f"by nobody else; check who wrote it, then delete {marker}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}  # torn or garbled: treat as stale, since starting a running service is harmless
    return data if isinstance(data, dict) else {}


def writer_active(data: dict[str, Any], state_dir: Path) -> bool:
    """Whether the run that wrote a marker still runs: it holds a destination lock it names.

    A pid alone cannot tell: after a reboot (or plain reuse) it may be any live process, and
    a start time that is missing or happens to match proves nothing. A dead pid is dead; a
    live one counts only while one of the marker's locks is held by another process. A
    marker from before locks were recorded is asked through its own folder's lock.
    """
    from .lock import LOCK_NAME, lock_holder

    pid, start = data.get("pid"), data.get("pid_start")
    if not (isinstance(pid, int) and pid > 0 and pid != os.getpid()
            and pid_alive(pid, start if isinstance(start, int) else None)):
        return False
    locks = data.get("locks")
    if not isinstance(locks, list) or not all(isinstance(p, str) for p in locks):
        locks = [str(state_dir.parent / LOCK_NAME)]
    if not locks:
        return True  # its writer held no lock (none of our runs): only the pid can tell
    return any(lock_holder(Path(p)) == "another process" for p in locks)


def recover_stale_marker(cfg: ServiceConfig | None, state_dir: Path,
                         lookup: Lookup | None = None) -> str | None:
    """Start a service left stopped by a killed run; a message if there was one to recover.

    The commands come from `lookup` (the spec named in the marker), never from the marker.
    """
    marker = state_dir / MARKER_NAME
    data = read_marker(marker)
    if data is None:
        return None
    pid = data.get("pid")
    if writer_active(data, state_dir):
        return None  # another run is in progress and will restart it itself
    unit = data.get("unit") if isinstance(data.get("unit"), str) else None
    if unit is None or not UNIT_RE.match(unit):
        if cfg is None:
            raise UnsafePathError(f"service marker {marker} names no valid unit ({unit!r})",
                                  hint=f"check the service by hand, then delete {marker}")
        unit = cfg.unit
    spec = data.get("spec") if isinstance(data.get("spec"), str) else None
    mcfg = (lookup or default_lookup(cfg))(spec, unit)
    what = (f"{mcfg.unit} was left stopped by an interrupted {data.get('activity', 'backup')} "
            f"(pid {pid}, {data.get('time', '?')}"
            + (f", spec {spec})" if spec else ")"))
    notes: list[str] = []
    with signals_deferred():
        started, problem = ensure_started(mcfg, notes)
        if problem is None:
            remove_marker(marker)
    if problem:
        raise ServiceStartError(f"{what} and could not be started again: {problem}",
                                hint=f"start it by hand (`{shlex.join(mcfg.argv('start'))}`), "
                                     f"check `journalctl -u {mcfg.unit}`, then delete {marker}")
    return f"{what}: " + ("started it again" if started else "it was running again; removed the marker") \
        + "".join(f"; {note}" for note in notes)
