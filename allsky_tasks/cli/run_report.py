"""Around `allsky-tasks run`: pings, each spec's recorded outcome, messages, file ownership."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..environment import Environment, from_environ
from ..errors import UnsafePathError
from ..safefs import read_bytes


def _destinations(env: Environment, specs: list[str]) -> list[Path]:
    """The backup folders of the specs that ran (from validate's resolved spec)."""
    out = {env.backup_dir}
    for name in specs:
        try:
            # Only a spec.json of ours names a folder whose files root hands to the user.
            data = json.loads(read_bytes(env.state_dir / "specs" / name / "spec.json",
                                         owned=True))
            out.add(Path(data["destination"]))
        except (OSError, ValueError, KeyError, TypeError, UnsafePathError):
            continue
    return sorted(out)


def _keep_ownership(env: Environment, specs: list[str]) -> None:
    """Run as root: what we wrote goes to the Allsky user (the owner of the Allsky home)."""
    keep_ownership(env, _destinations(env, specs))


def keep_ownership(env: Environment, folders: list[Path]) -> None:
    """Give root-made files in these backup folders and in our state to the home's owner."""
    from ..monitor.report import owner_fix

    try:
        st = os.stat(env.home)
    except OSError:
        return
    if st.st_uid == 0:
        return
    owner_fix(folders, [env.state_dir], st.st_uid, st.st_gid)


def _warn(message: str) -> None:
    """A warning on stderr (shown even with --quiet: it is for the operator)."""
    print(f"allsky-tasks: warning: {message}", file=sys.stderr)


# doit's own commands that run no tasks: no backup is meant, no spec is needed.
_DOIT_COMMANDS = {"list", "info", "help", "forget", "clean", "ignore", "dumpdb", "strace",
                  "auto", "reset-dep", "tabcompletion"}
# doit options that take a value (the next word is not a task).
_VALUED = {"-f", "--file", "-d", "--dir", "--db-file", "--dep-file", "--backend", "-v",
           "--verbosity", "-r", "--reporter", "-o", "--output-file", "-n", "--process", "-P",
           "--parallel-type", "--failure-verbosity", "--codec-cls", "--check_file_uptodate"}


def intended_specs(doit_args: list[str], env: Environment | None = None) -> tuple[list[str], bool]:
    """The specs a `run` means to back up (for a record when it fails before they ran), and
    whether it runs tasks at all (`run list` does not)."""
    from ..backup.defaults import default_tasks
    from ..environment import spec_files

    env = env or from_environ()
    words, skip = [], False
    for word in doit_args:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in _VALUED
        elif "=" not in word:
            words.append(word)
    if words and words[0] in _DOIT_COMMANDS:
        return [], False
    if words and words[0] == "run":
        words = words[1:]
    every = [p.stem for p in spec_files(env.specs_dir)]
    named: list[str] = []
    for task in words or default_tasks(env.specs_dir):
        base, _, spec = task.partition(":")
        named += [spec] if spec else every if base != "recover" else []
    return list(dict.fromkeys(named)), True


def require_specs() -> None:
    """No spec at all is an error: a scheduled run would back up nothing, every night."""
    from ..environment import spec_files
    from ..errors import SpecError

    env = from_environ()
    if not spec_files(env.specs_dir):
        where = "does not exist" if not env.specs_dir.exists() else "holds no *.yaml spec"
        raise SpecError([f"{env.specs_dir}::$: the specs folder {where}: nothing to back up"],
                        hint="set ALLSKY_SPECS_DIR to your specs folder, or make one with "
                             "`allsky-tasks init`")


def _cause(code: int, raised: BaseException | None) -> tuple[str, str]:
    """Why a run failed: its exception, the first stage error, doit's own error, or the code."""
    from ..backup import stage_io
    from ..service.lock import LockWaitExpired

    if raised is not None and not isinstance(raised, SystemExit):
        return type(raised).__name__, str(raised) or type(raised).__name__
    real = [e for e in stage_io.FAILURES if not isinstance(e, LockWaitExpired)]
    if real:
        return type(real[0]).__name__, real[0].message
    if isinstance(raised, SystemExit) and raised.code == 130:
        return "Interrupted", "the run was interrupted (Ctrl-C or SIGTERM)"
    if stage_io.DOIT_ERROR:
        name = stage_io.DOIT_ERROR[0].partition(":")[0].rsplit(".", 1)[-1]  # sqlite3.DatabaseError: ...
        return (name if name.isidentifier() else "DoitError"), stage_io.DOIT_ERROR[0]
    return "RunFailed", f"the run exited {code}"


def reported(run: Callable[[], int], intended: list[str] | None = None) -> int:
    """Run, then record and report each spec's outcome; a lock wait that ran out exits 0.

    Whatever stops the run (a stage error, a failed recover, doit's own traceback, any
    exception), every spec it meant to back up gets a record, and someone is told.
    """
    from ..backup import stage_io
    from ..monitor.notify import Channels
    from ..monitor.report import finish_run, start_run
    from ..monitor.runlog import SpecOutcome, now_iso, outcomes, record_run
    from ..progress import RUN_ERRORS, RUN_STAGES, RUN_WARNINGS
    from ..service.lock import LockWaitExpired

    env, channels = from_environ(), Channels.from_environ()
    for problem in start_run(channels):
        _warn(problem)
    for registry in (RUN_ERRORS, RUN_STAGES, RUN_WARNINGS):
        registry.clear()
    code, raised = 1, None
    try:
        code = run()
    except BaseException as e:
        raised = e
        code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else (
            getattr(e, "exit_code", 1))
        raise
    finally:
        results = outcomes(RUN_STAGES, RUN_ERRORS, RUN_WARNINGS, LockWaitExpired)
        only_skips = bool(stage_io.FAILURES) and all(
            isinstance(e, LockWaitExpired) for e in stage_io.FAILURES)
        if code != 0 and only_skips and raised is None:
            code = 0  # only skipped: another run is at work; not an error
        cause = None if code == 0 and raised is None else _cause(code, raised)
        seen = {r.spec for r in results}
        for spec in intended or []:
            if spec in seen:
                continue
            if only_skips and cause is None:
                skip = next(e for e in stage_io.FAILURES if isinstance(e, LockWaitExpired))
                results.append(SpecOutcome(spec, "skipped", now_iso(), error=type(skip).__name__,
                                           message=skip.message))
            elif cause is not None:  # it never got to this spec: the run's failure is its own
                results.append(SpecOutcome(spec, "failed", now_iso(), error=cause[0],
                                           message=cause[1]))
        for r in results:
            if r.result == "skipped":
                _warn(f"backup {r.spec} {r.message}")  # "skipped: another run ..."
        failed = cause is not None or any(r.result == "failed" for r in results)
        unreported = cause if cause and not any(r.result == "failed" for r in results) else None
        for problem in finish_run(env, results, channels, failed, unreported):
            _warn(problem)
        try:
            record_run(env, {"result": "failed" if failed else "ok", "time": now_iso(),
                             "exitCode": code, "error": cause[0] if cause else None,
                             "message": cause[1] if cause else None,
                             "specs": sorted(r.spec for r in results)})
        except Exception as e:  # noqa: BLE001 - reporting must not hide the run's own result
            _warn(f"could not record the run in {env.state_dir}: {e}")
        if os.geteuid() == 0:
            _keep_ownership(env, [r.spec for r in results])
    return code
