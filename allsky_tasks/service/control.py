"""Pause the Allsky service around a backup, and always start it again afterwards."""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ServiceStartError, ServiceStopError
from .commands import change_state, ensure_started, run_command, running_state, unit_problem
from .config import PAUSE_POLICIES, ServiceConfig
from .marker import MARKER_NAME, Lookup, recover_stale_marker, remove_marker, utc_now, write_marker
from .privilege import check_sudo

# Re-exported for backup/actions.py, which imports them from here.
from .signals import interrupt_once, pause_deadline, signals_as_interrupt, signals_deferred

__all__ = ["MARKER_NAME", "PAUSE_POLICIES", "PauseRecord", "ServiceConfig", "check_service", "pause_needed",
           "pause_deadline", "paused_service", "permission_hint", "recover_stale_marker", "signals_as_interrupt"]


def pause_needed(cfg: ServiceConfig, databases_selected: bool) -> tuple[bool, str]:
    """Decide whether to stop the service while packing, with a sentence saying why."""
    if cfg.pause == "always":
        return True, f"the spec says service.pause: always, so {cfg.unit} is stopped while packing"
    if cfg.pause == "never":
        said = f"the environment says {cfg.forced_by}" if cfg.forced_by else "the spec says service.pause: never"
        return False, f"{said}, so {cfg.unit} keeps running while packing"
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


def check_service(cfg: ServiceConfig) -> bool:
    """Is the service running? ServiceStopError if that cannot be told for sure.

    Called before anything is stopped or written: a status command that cannot answer, no
    systemd at all, or a unit systemd does not know must not pass for "was not running"
    (that would silently turn the pause off).
    """
    status = run_command(cfg, "status")
    state = running_state(status)
    hint = ("check service.unit and service.commands.status in the spec (status must exit 0 when "
            "the service runs, 1-3 when it does not; systemctl: 3); `systemctl list-units "
            "--type=service` lists the units; or set service: {pause: never} (restore: "
            "--no-service); nothing was stopped or written")
    if state is None:
        raise ServiceStopError(f"cannot tell whether service {cfg.unit} is running: {status.describe()}",
                               hint=hint)
    if not state:
        problem = unit_problem(cfg)
        if problem:
            raise ServiceStopError(f"cannot pause service {cfg.unit}: {problem}", hint=hint)
    return state


WATCH_INTERVAL = 1.0  # seconds between status looks while the service is paused


class _RestartWatch:
    """Notices when something else starts the service during the pause (a status look a second)."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.seen_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            if run_command(self.cfg, "status").returncode == 0:
                self.seen_at = time.monotonic()
                return

    def __enter__(self) -> _RestartWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _restart(cfg: ServiceConfig, marker: Path, record: PauseRecord,
             t0: float | None, activity: str = "backup",
             seen_at: float | None = None) -> tuple[str | None, list[int]]:
    """Ensure the service runs again, shielded from signals: (failure or None, deferred signals)."""
    with signals_deferred() as caught:
        started, problem = ensure_started(cfg, record.warnings)
        if problem is None:
            try:
                remove_marker(marker)
            except OSError as e:
                record.warnings.append(f"could not remove the service marker {marker}: {e}")
            if t0 is not None:
                record.restarted, record.started_at = started, utc_now()
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
    record.was_running = check_service(cfg)
    if not record.was_running:
        # Stopped on purpose (or broken): leave it so, never start it behind the user's back.
        # A fact, not a warning (was_running is recorded): the caller says it once.
        yield record
        return
    check_sudo(cfg)  # not root: sudo must allow stop and start before anything is stopped
    t0: float | None = None
    watch = _RestartWatch(cfg)
    # From here to the restart, only the first signal interrupts: a second one must not land
    # between the interrupt and the restart (the restart itself defers every signal).
    with interrupt_once() as later:
        try:
            write_marker(cfg, marker, activity, spec)  # before stopping: even a SIGKILL leaves a trace
            problem = change_state(cfg, "stop", False, record.warnings)
            if problem:
                raise ServiceStopError(f"could not stop service {cfg.unit}: {problem}",
                                       hint=f"nothing was written and {cfg.unit} was started again if "
                                            f"needed; check `journalctl -u {cfg.unit}` and "
                                            "service.commands/timeout" + permission_hint(problem))
            record.stopped, record.stopped_at, t0 = True, utc_now(), time.monotonic()
            with watch:
                yield record
        except BaseException as exc:
            # The body's (or the stop's) error is the primary one; a failed restart becomes a note.
            problem, _ = _restart(cfg, marker, record, t0, activity, watch.seen_at)
            if problem:
                exc.add_note(f"service {cfg.unit} could not be started again: {problem}; start it by "
                             f"hand (`{shlex.join(cfg.argv('start'))}`); {marker} is kept so the next "
                             "run retries")
            raise
        problem, caught = _restart(cfg, marker, record, t0, activity, watch.seen_at)
    caught = later + caught
    if problem:
        raise ServiceStartError(f"service {cfg.unit} could not be started again after the {activity}: {problem}",
                                hint=f"the archive was kept; start it by hand (`{shlex.join(cfg.argv('start'))}`)"
                                     f"; {marker} makes the next run retry" + permission_hint(problem))
    for sig in dict.fromkeys(caught):
        signal.raise_signal(sig)  # now act on a signal that arrived during the restart
