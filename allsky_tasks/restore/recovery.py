"""Recovery that every command does first: a restore killed half-way, then a stopped service."""

from __future__ import annotations

import os

from ..backup.recovery import recover
from ..backup.stage_io import stage
from ..environment import Environment
from .dirs import JOURNAL_NAME


def recover_all(env: Environment) -> list[str]:
    """Finish an interrupted placement, then restart a service a killed run left stopped.

    In this order: the service must start on a whole tree, not a half-restored one.
    """
    messages = []
    if os.path.lexists(env.state_dir / JOURNAL_NAME):  # the usual run imports no restore code
        from .journal import finish_pending

        finished = finish_pending(env.state_dir)
        if finished:
            messages.append(finished)
    return messages + recover(env)


@stage
def run_recover(env: Environment) -> None:
    """The `recover` doit task: before any spec's own checks, in every run."""
    from ..backup.stage_io import lock_wait
    from ..service.lock import hold_run_lock

    hold_run_lock(env.state_dir, lock_wait())  # before any state is touched
    for message in recover_all(env):
        print(f"recover: {message}", flush=True)  # even when quiet: the operator must know
