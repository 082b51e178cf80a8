"""Pause the Allsky service around a backup, and always start it again afterwards."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import PackError, ServiceStartError, ServiceStopError, UnsafePathError
from ..safefs import atomic_write_bytes, make_dir, read_bytes
from .commands import PAUSE_POLICIES, ServiceConfig, change_state, ensure_started, run_command
from .privilege import check_sudo

__all__ = ["MARKER_NAME", "PAUSE_POLICIES", "PauseRecord", "ServiceConfig", "default_lookup", "pause_needed",
           "pause_deadline", "paused_service", "read_marker", "recover_stale_marker", "signals_as_interrupt"]

MARKER_NAME = "service-paused.json"
# Signals that must not cut a restart short (a second Ctrl-C, systemd's stop, a closed terminal).
_DEFERRED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def pause_needed(cfg: ServiceConfig, databases_selected: bool) -> tuple[bool, str]:
    """Decide whether to stop the service while packing, with a sentence saying why."""
    if cfg.pause == "always":
        return True, f"the spec says service.pause: always, so {cfg.unit} is stopped while packing"
    if cfg.pause == "never":
        return False, f"the spec says service.pause: never, so {cfg.unit} keeps running while packing"
    if databases_selected:
        return True, f"database content is selected, so {cfg.unit} is stopped while packing"
    return False, f"no database content is selected, so {cfg.unit} keeps running while packing"


@dataclass
class PauseRecord:
    """What the pause did; goes into the archive metadata."""

    needed: bool
    reason: str
    was_running: bool | None = None
    stopped: bool = False
    stopped_at: str | None = None
    started_at: str | None = None
    paused_seconds: float | None = None
    restarted: bool = False
    recovered_marker: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)


def _now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM/SIGHUP instead of acting on them, so a restart is never cut short."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {sig: signal.signal(sig, lambda signum, _f: caught.append(signum)) for sig in _DEFERRED}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _proc_stat(pid: int) -> tuple[str, int] | None:
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
    stat = _proc_stat(pid)
    # A zombie is dead for our purpose; another start time means the pid was reused.
    return stat is None or (stat[0] not in "ZX" and (start is None or stat[1] == start))


def _sync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable (a power cut must not lose the marker)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def permission_hint(problem: str) -> str:
    """For systemd refusing a non-root user: how to let the Allsky user pause the service."""
    if not any(s in problem for s in ("Interactive authentication required", "Access denied",
                                      "authentication is required")):
        return ""
    return ("\n  -> only root may stop/start a systemd unit: the Allsky user (pi) has "
            "passwordless sudo on Raspberry Pi OS, so set in the spec service: {commands: "
            "{stop: [sudo, -n, systemctl, stop, '{unit}'], start: [sudo, -n, systemctl, start, "
            "'{unit}'], status: [systemctl, is-active, --quiet, '{unit}']}}, or use "
            "service: {pause: never} (databases are still captured consistently)")


# What a marker may name as its unit: a systemd unit name, never an option or a path.
UNIT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9@._:-]{0,127}$")
MARKER_LIMIT = 64 << 10
# Given the spec named in a marker (or None) and its unit: the commands to start it with.
Lookup = Callable[[Optional[str], str], ServiceConfig]


def default_lookup(cfg: ServiceConfig | None = None) -> Lookup:
    """Commands for a marker's unit: `cfg`'s when it names that unit, else the fixed default."""
    def lookup(_spec: str | None, unit: str) -> ServiceConfig:
        return cfg if cfg is not None and cfg.unit == unit else ServiceConfig(unit=unit)
    return lookup


def _write_marker(cfg: ServiceConfig, marker: Path, activity: str = "backup",
                  spec: str | None = None) -> None:
    """Atomically record that this process is about to stop the service.

    The marker names the spec, the unit and the run, never a command: whoever recovers it
    looks the commands up in the spec (or uses the default), so a forged marker runs nothing.
    """
    own = _proc_stat(os.getpid())
    data = {"unit": cfg.unit, "spec": spec, "activity": activity, "pid": os.getpid(),
            "pid_start": own[1] if own else None, "time": _now()}
    try:
        make_dir(marker.parent)
        atomic_write_bytes(marker, json.dumps(data, indent=2).encode(), 0o600)
    except OSError as e:
        raise ServiceStopError(f"cannot write the service marker {marker}: {e}",
                               hint="make the state directory writable; nothing was written") from e


def _remove_marker(marker: Path) -> None:
    """Delete the marker durably."""
    marker.unlink(missing_ok=True)
    _sync_dir(marker.parent)


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


def recover_stale_marker(cfg: ServiceConfig | None, state_dir: Path,
                         lookup: Lookup | None = None) -> str | None:
    """Start a service left stopped by a killed run; a message if there was one to recover.

    The commands come from `lookup` (the spec named in the marker), never from the marker.
    """
    marker = state_dir / MARKER_NAME
    data = read_marker(marker)
    if data is None:
        return None
    pid, start = data.get("pid"), data.get("pid_start")
    if isinstance(pid, int) and pid > 0 and pid_alive(pid, start if isinstance(start, int) else None):
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
    with _signals_deferred():
        started, problem = ensure_started(mcfg)
        if problem is None:
            _remove_marker(marker)
    if problem:
        raise ServiceStartError(f"{what} and could not be started again: {problem}",
                                hint=f"start it by hand (`{shlex.join(mcfg.argv('start'))}`), "
                                     f"check `journalctl -u {mcfg.unit}`, then delete {marker}")
    return f"{what}: " + ("started it again" if started else "it was running again; removed the marker")


WATCH_INTERVAL = 1.0  # seconds between status looks while the service is paused


class _RestartWatch:
    """Notices when something else starts the service during the pause (a status look a second)."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg, self.seen_at = cfg, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            if run_command(self.cfg, "status").returncode == 0:
                self.seen_at = time.monotonic()
                return

    def __enter__(self) -> "_RestartWatch":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _restart(cfg: ServiceConfig, marker: Path, record: PauseRecord,
             t0: float | None, activity: str = "backup",
             seen_at: float | None = None) -> tuple[str | None, list[int]]:
    """Ensure the service runs again, shielded from signals: (failure or None, deferred signals)."""
    with _signals_deferred() as caught:
        started, problem = ensure_started(cfg)
        if problem is None:
            try:
                _remove_marker(marker)
            except OSError as e:
                record.warnings.append(f"could not remove the service marker {marker}: {e}")
            if t0 is not None:
                record.restarted, record.started_at = started, _now()
                record.paused_seconds = round(time.monotonic() - t0, 3)
                if not started and seen_at is not None:
                    # Paused only until then: the rest of the pack ran with the service up.
                    record.paused_seconds = round(max(0.0, seen_at - t0), 3)
                    record.warnings.append(
                        f"{cfg.unit} was started again by something else about {record.paused_seconds:g} s "
                        f"into the pause, while the {activity} was still running; it counts as paused "
                        "until then")
                elif not started:
                    record.warnings.append(f"{cfg.unit} was already running again when the {activity} ended")
    return problem, caught


@contextmanager
def paused_service(cfg: ServiceConfig, needed: bool, reason: str, state_dir: Path,
                   activity: str = "backup", spec: str | None = None,
                   lookup: Lookup | None = None) -> Iterator[PauseRecord]:
    """Stop a running service for the body and start it again whatever happens in it."""
    record = PauseRecord(needed=needed, reason=reason)
    if not needed:
        yield record
        return
    marker = state_dir / MARKER_NAME
    recovered = recover_stale_marker(cfg, state_dir, lookup)
    if recovered:
        record.recovered_marker = True
        record.warnings.append(recovered)
    elif os.path.lexists(marker):
        raise ServiceStopError(f"another backup or restore has paused service {cfg.unit} (marker {marker})",
                               hint=f"wait for it to finish; if none is running, delete {marker}")
    status = run_command(cfg, "status")
    if status.returncode is None:
        raise ServiceStopError(f"cannot tell whether service {cfg.unit} is running: {status.describe()}",
                               hint="fix service.commands.status in the spec; nothing was stopped or written")
    record.was_running = status.returncode == 0
    if not record.was_running:
        # Stopped on purpose (or broken): leave it so, never start it behind the user's back.
        record.warnings.append(f"{cfg.unit} was not running, so the {activity} neither stopped nor started it")
        yield record
        return
    check_sudo(cfg)  # not root: sudo must allow stop and start before anything is stopped
    t0: float | None = None
    watch = _RestartWatch(cfg)
    try:
        _write_marker(cfg, marker, activity, spec)  # before stopping, so that even a SIGKILL leaves a trace
        problem = change_state(cfg, "stop", False)
        if problem:
            raise ServiceStopError(f"could not stop service {cfg.unit}: {problem}",
                                   hint=f"nothing was written and {cfg.unit} was started again if needed; "
                                        f"check `journalctl -u {cfg.unit}` and service.commands/timeout"
                                        + permission_hint(problem))
        record.stopped, record.stopped_at, t0 = True, _now(), time.monotonic()
        with watch:
            yield record
    except BaseException as exc:
        # The body's (or the stop's) error is the primary one; a failed restart becomes a note.
        problem, _ = _restart(cfg, marker, record, t0, activity, watch.seen_at)
        if problem:
            exc.add_note(f"service {cfg.unit} could not be started again: {problem}; start it by hand "
                         f"(`{shlex.join(cfg.argv('start'))}`); {marker} is kept so the next run retries")
        raise
    problem, caught = _restart(cfg, marker, record, t0, activity, watch.seen_at)
    if problem:
        raise ServiceStartError(f"service {cfg.unit} could not be started again after the {activity}: {problem}",
                                hint=f"the archive was kept; start it by hand (`{shlex.join(cfg.argv('start'))}`)"
                                     f"; {marker} makes the next run retry" + permission_hint(problem))
    for sig in dict.fromkeys(caught):
        signal.raise_signal(sig)  # now act on a signal that arrived during the restart


@contextmanager
def pause_deadline(seconds: float, unit: str) -> Iterator[None]:
    """Fail the body with PackError once the service has been stopped for `seconds`.

    A real-time alarm interrupts even a blocked read, so a pack that never finishes cannot
    keep the service stopped; the caller's paused_service then starts it again.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(_signum: int, _frame: object) -> None:
        raise PackError(f"service {unit} was stopped for {seconds:g} s, the spec's service.max_pause; "
                        "pack gave up and no archive was kept",
                        hint="raise service.max_pause, or select less while the service is paused")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt in the main thread, so finally-blocks run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt)}
    # Under nohup SIGHUP is ignored on purpose: the user wants the run to outlive the terminal.
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, interrupt)
    # A process launched in the background by a non-interactive shell (cron, `cmd &`) inherits
    # SIGINT as ignored, and Python keeps SIG_IGN: `kill -INT` would then do nothing at all.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
