"""Pausing a real (stand-in) service: stop, restart whatever happens, markers, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from allsky_tasks.errors import ServiceStartError, ServiceStopError, SpecError, UnsafePathError
from allsky_tasks.service.control import ServiceConfig, pause_needed, paused_service
from allsky_tasks.service.marker import MARKER_NAME, recover_stale_marker
from allsky_tasks.service.signals import signals_as_interrupt
from tests.helpers.service_fixture import (
    service_spec,
    standin_pid,
    standin_running,
    start_standin,
    started_pids,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, time
from pathlib import Path
from allsky_tasks.service.control import ServiceConfig, paused_service
from allsky_tasks.service.lock import destination_lock
from allsky_tasks.service.signals import signals_as_interrupt
cfg = ServiceConfig.from_spec(json.loads(sys.argv[1]))
state = Path(sys.argv[2])
with signals_as_interrupt(), destination_lock(state.parent):  # as pack and restore hold it
    with paused_service(cfg, True, "test", state):
        Path(sys.argv[3]).write_text("paused")
        time.sleep(120)
"""

HOLD_LOCK = """
import sys, time
from pathlib import Path
from allsky_tasks.service.lock import destination_lock
with destination_lock(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("locked")
    time.sleep(120)
"""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """The state directory that holds the marker."""
    return tmp_path / "state"


def _cfg(svc: Path, **kw: object) -> ServiceConfig:
    """A config driving the stand-in."""
    return ServiceConfig.from_spec(service_spec(svc, **kw))  # type: ignore[arg-type]


def _write_marker(state: Path, cfg: ServiceConfig, pid: int) -> Path:
    """A marker as a run with `pid` would have left it."""
    state.mkdir(parents=True, exist_ok=True)
    marker = state / MARKER_NAME
    marker.write_text(json.dumps({"unit": cfg.unit, "pid": pid, "time": "2026-01-02T03:04:05+00:00"}))
    return marker


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_from_spec_defaults_and_overrides(real_pause: None) -> None:
    cfg = ServiceConfig.from_spec(None)
    assert (cfg.unit, cfg.pause, cfg.timeout) == ("allsky", "auto", 60.0)
    assert cfg.argv("stop") == ["systemctl", "stop", "allsky"]
    assert cfg.argv("status") == ["systemctl", "is-active", "--quiet", "allsky"]
    cfg = ServiceConfig.from_spec({"unit": "cam", "timeout": 5, "commands": {"start": ["svc", "{unit}", "up"]}})
    assert cfg.argv("start") == ["svc", "cam", "up"] and cfg.argv("stop") == ["systemctl", "stop", "cam"]
    with pytest.raises(SpecError, match="service.pause"):
        ServiceConfig.from_spec({"pause": "sometimes"})
    with pytest.raises(SpecError, match="service.commands.stop"):
        ServiceConfig.from_spec({"commands": {"stop": []}})


def test_pause_needed() -> None:
    assert pause_needed(ServiceConfig(pause="always"), False)[0] is True
    assert pause_needed(ServiceConfig(pause="never"), True)[0] is False
    assert pause_needed(ServiceConfig(pause="auto"), True)[0] is True
    needed, reason = pause_needed(ServiceConfig(pause="auto"), False)
    assert needed is False and "allsky" in reason


def test_not_needed_leaves_service_alone(svc: Path, state: Path) -> None:
    start_standin(svc)
    pid = standin_pid(svc)
    with paused_service(_cfg(svc), False, "no databases", state) as rec:
        assert standin_running(svc)
    assert rec.stopped is False and rec.was_running is None
    assert standin_pid(svc) == pid and standin_running(svc)


def test_running_service_is_stopped_and_started(svc: Path, state: Path) -> None:
    start_standin(svc)
    with paused_service(_cfg(svc), True, "always", state) as rec:
        assert not standin_running(svc)
        assert (state / MARKER_NAME).exists()
        assert rec.stopped and rec.was_running and rec.stopped_at
    assert standin_running(svc)
    assert not (state / MARKER_NAME).exists()
    assert rec.restarted and rec.started_at and rec.paused_seconds is not None
    assert json.loads(json.dumps(rec.to_dict()))["restarted"] is True
    assert len(started_pids(svc)) == 2


@pytest.mark.parametrize("error", [ValueError("pack failed"), KeyboardInterrupt()], ids=["exception", "ctrl-c"])
def test_restarted_when_body_raises(svc: Path, state: Path, error: BaseException) -> None:
    start_standin(svc)
    with pytest.raises(type(error)), paused_service(_cfg(svc), True, "always", state):
        assert not standin_running(svc)
        raise error
    assert standin_running(svc)
    assert not (state / MARKER_NAME).exists()


def test_stopped_service_stays_stopped(svc: Path, state: Path) -> None:
    with paused_service(_cfg(svc), True, "always", state) as rec:
        pass
    assert rec.was_running is False and not rec.stopped and not rec.restarted
    # A fact recorded (was_running), not a warning: the caller says it once (pack's line).
    assert rec.warnings == []
    assert not standin_running(svc) and started_pids(svc) == []
    assert not (state / MARKER_NAME).exists()


def test_stop_refused(svc: Path, state: Path) -> None:
    start_standin(svc)
    pid = standin_pid(svc)
    body_ran = False
    with pytest.raises(ServiceStopError) as info, \
            paused_service(_cfg(svc, refuse_stop=True), True, "always", state):
        body_ran = True
    text = str(info.value)
    assert "standin" in text and "--refuse-stop" in text and "code 1" in text and "refusing to stop" in text
    assert info.value.hint and info.value.exit_code == 15
    assert not body_ran
    assert standin_running(svc) and standin_pid(svc) == pid
    assert not (state / MARKER_NAME).exists()


def test_stop_times_out(svc: Path, state: Path) -> None:
    start_standin(svc)
    with pytest.raises(ServiceStopError, match="did not finish within 1 s"), \
            paused_service(_cfg(svc, slow_stop=60, timeout=1), True, "always", state):
        pytest.fail("the body must not run")
    assert standin_running(svc)
    assert not (state / MARKER_NAME).exists()


def test_start_refused(svc: Path, state: Path) -> None:
    start_standin(svc)
    with pytest.raises(ServiceStartError) as info, \
            paused_service(_cfg(svc, refuse_start=True), True, "always", state):
        pass
    assert info.value.exit_code == 16 and "refusing to start" in str(info.value)
    assert not standin_running(svc)
    assert (state / MARKER_NAME).exists()


def test_start_refused_after_body_error_keeps_body_error(svc: Path, state: Path) -> None:
    start_standin(svc)
    with pytest.raises(ValueError, match="pack failed") as info, \
            paused_service(_cfg(svc, refuse_start=True), True, "always", state):
        raise ValueError("pack failed")
    assert any("could not be started again" in n for n in info.value.__notes__)
    assert (state / MARKER_NAME).exists() and not standin_running(svc)


def test_recover_marker_of_dead_run(svc: Path, state: Path) -> None:
    cfg = _cfg(svc)
    pid = _dead_pid()
    marker = _write_marker(state, cfg, pid)
    message = recover_stale_marker(cfg, state)
    assert message and f"pid {pid}" in message and "started it again" in message
    assert standin_running(svc) and not marker.exists()
    assert recover_stale_marker(cfg, state) is None  # nothing left to do


def _env() -> dict[str, str]:
    """A child's environment that imports this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                   os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("form", ["legacy", "locks"])
def test_recover_leaves_marker_of_live_run(svc: Path, state: Path, tmp_path: Path, form: str) -> None:
    # A run in progress holds its destination's lock: its marker is honoured, whatever form.
    cfg = _cfg(svc)
    ready = tmp_path / "locked"
    other = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(state.parent), str(ready)],
                             env=_env())
    try:
        wait_until(lambda: ready.exists() or other.poll() is not None, "the other run's lock")
        marker = _write_marker(state, cfg, other.pid)
        if form == "locks":
            data = json.loads(marker.read_text())
            marker.write_text(json.dumps({**data, "locks": [str(state.parent / ".allsky-tasks.lock")]}))
        assert recover_stale_marker(cfg, state) is None
        assert marker.exists() and not standin_running(svc)
        with pytest.raises(ServiceStopError, match="another backup or restore"), \
                paused_service(cfg, True, "always", state):
            pytest.fail("the body must not run")
        assert marker.exists() and not standin_running(svc)
    finally:
        other.kill()
        other.wait()


def _proc_start(pid: int) -> int:
    """A process's start time in clock ticks, as the marker records it."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[19])


@pytest.mark.parametrize("start", ["null", "matching"])
def test_a_killed_runs_marker_naming_a_live_unrelated_pid_is_recovered(
        svc: Path, state: Path, tmp_path: Path, start: str) -> None:
    # After a reboot (or plain pid reuse) the dead run's pid is some live process, and a
    # start time that is null or happens to match proves nothing: no run holds the lock.
    start_standin(svc)
    child, _ = _pause_in_child(svc, state, tmp_path)
    child.kill()
    child.wait()
    marker = state / MARKER_NAME
    data = json.loads(marker.read_text())
    assert data["locks"] == [str((state.parent / ".allsky-tasks.lock").absolute())]
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        marker.write_text(json.dumps({**data, "pid": unrelated.pid, "pid_start":
                                      _proc_start(unrelated.pid) if start == "matching" else None}))
        message = recover_stale_marker(_cfg(svc), state)
        assert message and f"pid {unrelated.pid}" in message and "started it again" in message
        assert standin_running(svc) and not marker.exists()
        with paused_service(_cfg(svc), True, "always", state) as rec:  # and the next pause works
            assert rec.stopped
        assert standin_running(svc)
    finally:
        unrelated.kill()
        unrelated.wait()


def test_an_older_marker_naming_a_live_unrelated_pid_is_recovered(svc: Path, state: Path) -> None:
    # Written before markers named their locks: the lock of its own folder is asked.
    cfg = _cfg(svc)
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        marker = _write_marker(state, cfg, unrelated.pid)
        message = recover_stale_marker(cfg, state)
        assert message and "started it again" in message
        assert standin_running(svc) and not marker.exists()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_pause_recovers_stale_marker_first(svc: Path, state: Path) -> None:
    cfg = _cfg(svc)
    _write_marker(state, cfg, _dead_pid())
    with paused_service(cfg, True, "always", state) as rec:
        assert rec.recovered_marker and rec.was_running and not standin_running(svc)
    assert standin_running(svc) and not (state / MARKER_NAME).exists()


def test_signals_as_interrupt_in_process() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), signals_as_interrupt() as received:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: False, "SIGTERM to interrupt", timeout=30)
    assert signal.getsignal(signal.SIGTERM) is before
    assert received == [signal.SIGTERM]  # run tells an interrupt from a crash it caused
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(signals_as_interrupt().__enter__()))
    thread.start()
    thread.join()
    assert seen == [[]] and signal.getsignal(signal.SIGTERM) is before


def _pause_in_child(svc: Path, state: Path, tmp_path: Path,
                    spec: dict[str, Any] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """A separate Python process inside paused_service, once the service is down."""
    ready = tmp_path / "ready"
    spec = spec or service_spec(svc)
    with open(tmp_path / "child.log", "wb") as log:  # the child keeps its own copy
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec), str(state), str(ready)],
                                 env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: ready.exists() or child.poll() is not None, "the child to pause the service")
        assert ready.exists(), (tmp_path / "child.log").read_text()
    except BaseException:
        child.kill()
        child.wait()
        raise
    return child, tmp_path / "child.log"


def test_sigterm_restarts_service(svc: Path, state: Path, tmp_path: Path) -> None:
    start_standin(svc)
    child, log = _pause_in_child(svc, state, tmp_path)
    try:
        assert not standin_running(svc) and (state / MARKER_NAME).exists()
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) != 0
    finally:
        child.kill()
        child.wait()
    assert "KeyboardInterrupt" in log.read_text()
    assert standin_running(svc)
    assert not (state / MARKER_NAME).exists()


def test_second_sigterm_does_not_abort_restart(svc: Path, state: Path, tmp_path: Path) -> None:
    spec = service_spec(svc)
    # A start that takes a while, so the second signal lands while the restart is under way.
    spec["commands"]["start"] = ["sh", "-c", 'sleep 1; exec "$0" "$@"', *spec["commands"]["start"]]
    start_standin(svc)
    child, log = _pause_in_child(svc, state, tmp_path, spec)
    try:
        child.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # not a timing assertion: either way the service must end up running
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) != 0
    finally:
        child.kill()
        child.wait()
    assert standin_running(svc), log.read_text()
    assert not (state / MARKER_NAME).exists()


def test_sigkill_leaves_marker_then_recovery(svc: Path, state: Path, tmp_path: Path) -> None:
    start_standin(svc)
    child, _ = _pause_in_child(svc, state, tmp_path)
    child.kill()
    child.wait()
    marker = state / MARKER_NAME
    assert marker.exists() and json.loads(marker.read_text())["pid"] == child.pid
    assert not standin_running(svc)
    message = recover_stale_marker(_cfg(svc), state)
    assert message and f"pid {child.pid}" in message
    assert standin_running(svc) and not marker.exists()


# --- hostile markers: a marker never carries commands, and must be ours ---

def _forged(state: Path, unit: str, pwned: Path, **extra: Any) -> Path:
    """A marker naming a dead run and carrying an attacker's start command."""
    state.mkdir(parents=True, exist_ok=True)
    marker = state / MARKER_NAME
    evil = ["sh", "-c", f"touch {pwned}"]
    marker.write_text(json.dumps({"unit": unit, "pid": _dead_pid(), "time": "2026-01-02T03:04:05+00:00",
                                  "commands": {"start": evil, "status": evil, "stop": evil}, **extra}))
    return marker


def test_forged_marker_commands_never_run(svc: Path, state: Path, tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    cfg = _cfg(svc)
    marker = _forged(state, cfg.unit, pwned)
    message = recover_stale_marker(cfg, state)
    assert message and "started it again" in message
    assert not pwned.exists() and standin_running(svc) and not marker.exists()


def test_forged_marker_other_unit_uses_default_commands(svc: Path, state: Path, tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    _forged(state, "other-unit", pwned)
    seen: list[tuple[Any, str]] = []

    def lookup(spec: Any, unit: str) -> ServiceConfig:
        seen.append((spec, unit))
        return _cfg(svc)
    recover_stale_marker(None, state, lookup)
    assert seen == [(None, "other-unit")] and not pwned.exists() and standin_running(svc)


@pytest.mark.parametrize("unit", ["--now", "../../bin/sh", "a b", "", None, 7])
def test_marker_with_a_hostile_unit_is_refused(svc: Path, state: Path, tmp_path: Path, unit: Any) -> None:
    pwned = tmp_path / "PWNED"
    _forged(state, unit, pwned)
    with pytest.raises(UnsafePathError, match="no valid unit"):
        recover_stale_marker(None, state, lambda s, u: _cfg(svc))
    assert not pwned.exists() and not standin_running(svc)


@pytest.mark.parametrize("how", ["other-owner", "group-writable", "world-writable", "symlink", "fifo"])
def test_untrusted_marker_is_refused_and_says_why(svc: Path, state: Path, tmp_path: Path, how: str) -> None:
    pwned = tmp_path / "PWNED"
    cfg = _cfg(svc)
    marker = _forged(state, cfg.unit, pwned)
    why = {"other-owner": "owned by uid 4321", "group-writable": "writable by group or others",
           "world-writable": "writable by group or others", "symlink": "symbolic link",
           "fifo": "not a regular file"}[how]
    if how == "other-owner":
        os.chown(marker, 4321, 4321)
    elif how == "group-writable":
        marker.chmod(0o660)
    elif how == "world-writable":
        marker.chmod(0o646)
    elif how == "symlink":
        real = tmp_path / "elsewhere.json"
        marker.rename(real)
        marker.symlink_to(real)
    else:
        marker.unlink()
        os.mkfifo(marker)
    with pytest.raises(UnsafePathError, match=why) as info:
        recover_stale_marker(cfg, state)
    assert "service marker refused" in str(info.value) and str(marker) in str(info.value)
    # paused_service refuses too, before stopping anything
    start_standin(svc)
    with pytest.raises(UnsafePathError), paused_service(cfg, True, "always", state):
        pytest.fail("the body must not run")
    assert standin_running(svc) and not pwned.exists()


def test_written_marker_has_no_commands_and_is_private(svc: Path, state: Path) -> None:
    start_standin(svc)
    with paused_service(_cfg(svc), True, "always", state, spec="nightly"):
        marker = state / MARKER_NAME
        data = json.loads(marker.read_text())
        assert "commands" not in data and data["spec"] == "nightly" and data["unit"] == "standin"
        assert marker.stat().st_mode & 0o077 == 0
    assert standin_running(svc)


def test_marker_planted_as_symlink_is_not_written_through(svc: Path, state: Path, tmp_path: Path) -> None:
    """The run's own marker write replaces a planted link instead of writing through it."""
    start_standin(svc)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    state.mkdir()
    (state / f".{MARKER_NAME}.part-{os.getpid()}").symlink_to(victim)  # the temp name, planted
    with paused_service(_cfg(svc), True, "always", state):
        pass
    assert victim.read_text() == "keep" and standin_running(svc)


def test_a_killed_stop_command_leaves_no_child_behind(tmp_path: Path) -> None:
    from allsky_tasks.service.commands import run_command

    pidfile = tmp_path / "child.pid"
    cfg = ServiceConfig(timeout=1, stop=("sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"))
    result = run_command(cfg, "stop")
    assert result.returncode is None and "was killed" in result.output
    child = int(pidfile.read_text())
    wait_until(lambda: not _alive(child), "the stop command's child to be gone", 10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_restart_by_something_else_during_the_pause_ends_the_paused_time(svc: Path, state: Path) -> None:
    start_standin(svc)
    t0 = time.monotonic()
    with paused_service(_cfg(svc), True, "always", state) as rec:
        assert not standin_running(svc)
        start_standin(svc)  # an operator, or a cron job, starts it again
        restarted_after = time.monotonic() - t0
        time.sleep(4)  # the pack goes on; the watch looks once a second
    assert rec.restarted is False and rec.paused_seconds is not None
    # Not a timing test: paused ends near the outside start, seconds before the body ended.
    assert 0 < rec.paused_seconds < time.monotonic() - t0 - 1.5 and restarted_after > 0
    assert any("started again by something else" in w for w in rec.warnings)


# --- a status that cannot tell, no systemd, or a unit that does not exist: an error, not "stopped" ---

def _nothing_happened(state: Path, body: list[str]) -> None:
    assert body == [] and not (state / MARKER_NAME).exists()


def test_no_systemd_or_no_such_unit_is_an_error_before_anything_stops(state: Path) -> None:
    # The real systemctl of this machine: without systemd as PID 1 it cannot answer; with
    # systemd, the unit does not exist. Either way the pause must not be skipped silently.
    cfg = ServiceConfig(unit="allsky-tasks-no-such-unit")
    body: list[str] = []
    with pytest.raises(ServiceStopError) as info, paused_service(cfg, True, "always", state):
        body.append("ran")
    text = str(info.value)
    assert "allsky-tasks-no-such-unit" in text
    assert any(s in text for s in ("System has not been booted with systemd", "not-found",
                                   "could not be run", "Failed to connect"))
    assert "nothing was stopped or written" in (info.value.hint or "")
    assert info.value.exit_code == 15
    _nothing_happened(state, body)


@pytest.mark.parametrize("status", [["sh", "-c", "/no/such/status-script"], ["sh", "-c", "exit 4"]],
                         ids=["typo-127", "lsb-unknown-4"])
def test_a_status_command_that_cannot_tell_is_an_error(svc: Path, state: Path, status: list[str]) -> None:
    start_standin(svc)
    data = service_spec(svc)
    data["commands"]["status"] = status
    body: list[str] = []
    with pytest.raises(ServiceStopError, match="cannot tell whether service standin is running"), \
            paused_service(ServiceConfig.from_spec(data), True, "always", state):
        body.append("ran")
    _nothing_happened(state, body)
    assert standin_running(svc)


def _systemctl_cfg(tmp_path: Path, unit: str) -> ServiceConfig:
    """Default-shaped systemctl commands, run by the stand-in systemctl serving tmp_path/units."""
    from tests.helpers.standin_systemctl import install_systemctl

    exe = str(install_systemctl(tmp_path / "bin", tmp_path / "units"))
    return ServiceConfig.from_spec({"unit": unit, "sudo": "never", "timeout": 20, "commands": {
        "stop": [exe, "stop", "{unit}"], "start": [exe, "start", "{unit}"],
        "status": [exe, "is-active", "--quiet", "{unit}"]}})


def test_a_typo_in_service_unit_is_an_error_naming_the_unit(tmp_path: Path, state: Path) -> None:
    (tmp_path / "units" / "allsky").mkdir(parents=True)
    start_standin(tmp_path / "units" / "allsky")
    body: list[str] = []
    with pytest.raises(ServiceStopError, match=r"systemd has no unit alsky \(LoadState=not-found\)"), \
            paused_service(_systemctl_cfg(tmp_path, "alsky"), True, "always", state):
        body.append("ran")
    _nothing_happened(state, body)
    assert standin_running(tmp_path / "units" / "allsky")
    # The real unit, running: stopped and started; stopped by hand: left alone, as before.
    with paused_service(_systemctl_cfg(tmp_path, "allsky"), True, "always", state) as rec:
        assert not standin_running(tmp_path / "units" / "allsky")
    assert rec.stopped and rec.restarted and standin_running(tmp_path / "units" / "allsky")
    subprocess.run([str(tmp_path / "bin" / "systemctl"), "stop", "allsky"], check=True)
    with paused_service(_systemctl_cfg(tmp_path, "allsky"), True, "always", state) as rec:
        pass
    assert rec.was_running is False and not rec.stopped


def test_a_stop_that_exits_1_but_stopped_is_accepted_with_a_warning(svc: Path, state: Path) -> None:
    start_standin(svc)
    with paused_service(_cfg(svc, stop_exit=1), True, "always", state) as rec:
        assert not standin_running(svc)
    assert rec.stopped and standin_running(svc)
    warning = next(w for w in rec.warnings if "did stop" in w)
    assert "exited with code 1" in warning and "service.commands.stop" in warning


def test_restore_checks_the_service_before_the_undo_backup(site: Any, tmp_path: Path) -> None:
    from allsky_tasks.restore.prepare import RestoreOptions
    from allsky_tasks.restore.run import restore
    from tests.conftest import backup

    archive = backup(site, "cfg", "type: config\n")
    undo_dir = tmp_path / "undo-dest"
    options = RestoreOptions(backup_dir=undo_dir, legacy_modules=tmp_path / "no-opt",
                             service=_systemctl_cfg(tmp_path, "alsky"))
    before = (site.home / "env.json").read_bytes()
    with pytest.raises(ServiceStopError, match="alsky"):
        restore(archive, site.home, options)
    assert not list(undo_dir.rglob("*.tar.*"))  # no undo backup was written
    assert (site.home / "env.json").read_bytes() == before


def test_a_machine_without_an_allsky_service_says_so_once(monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    monkeypatch.setenv("ALLSKY_SERVICE_PAUSE", "never")
    cfg = ServiceConfig.from_spec({"pause": "always", "unit": "allsky-tasks-no-such-unit"})
    needed, reason = pause_needed(cfg, True)
    assert not needed and "ALLSKY_SERVICE_PAUSE=never" in reason
    with paused_service(cfg, needed, reason, state) as rec:
        pass
    assert not rec.stopped and not (state / MARKER_NAME).exists()
    monkeypatch.setenv("ALLSKY_SERVICE_PAUSE", "sometimes")
    with pytest.raises(SpecError, match="ALLSKY_SERVICE_PAUSE='sometimes'"):
        ServiceConfig.from_spec({})


def test_an_interrupt_swallowed_by_a_finalizer_is_delivered_again() -> None:
    # A signal handler raises in whatever frame runs; inside __del__ Python only prints it.
    class Finalized:
        def __del__(self) -> None:
            raise KeyboardInterrupt("received SIGTERM")

    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), signals_as_interrupt() as received:
        Finalized()  # dropped at once: its __del__ raises where nobody can catch it
        wait_until(lambda: False, "the interrupt to arrive again", timeout=30)
    assert received == [signal.SIGTERM]  # sent again, then taken by our handler
