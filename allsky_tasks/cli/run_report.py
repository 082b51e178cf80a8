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


def reported(run: Callable[[], int]) -> int:
    """Run, then record and report each spec's outcome; a lock wait that ran out exits 0."""
    from ..backup import stage_io
    from ..monitor.notify import Channels
    from ..monitor.report import finish_run, start_run
    from ..monitor.runlog import outcomes
    from ..progress import RUN_ERRORS, RUN_STAGES, RUN_WARNINGS
    from ..service.lock import LockWaitExpired

    env, channels = from_environ(), Channels.from_environ()
    for problem in start_run(channels):
        _warn(problem)
    for registry in (RUN_ERRORS, RUN_STAGES, RUN_WARNINGS):
        registry.clear()
    code = 1
    try:
        code = run()
    finally:
        results = outcomes(RUN_STAGES, RUN_ERRORS, RUN_WARNINGS, LockWaitExpired)
        skipped = [r for r in results if r.result == "skipped"]
        if code != 0 and stage_io.FAILURES and all(
                isinstance(e, LockWaitExpired) for e in stage_io.FAILURES):
            code = 0  # only skipped: another run is at work; not an error
        for r in skipped:
            _warn(f"backup {r.spec} {r.message}")  # "skipped: another run ..."
        failed = code != 0 or any(r.result == "failed" for r in results)
        for problem in finish_run(env, results, channels, failed):
            _warn(problem)
        if os.geteuid() == 0:
            _keep_ownership(env, [r.spec for r in results])
    return code
