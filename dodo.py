"""doit entry point: every spec in backup_specs/ becomes validate/scan/pack/manifest/verify tasks.

Run `doit list` to see them, `doit` to back up everything, `doit validate` to check specs.
"""

import gc
from collections.abc import Iterator
from typing import Any

from allsky_tasks.backup.tasks import doit_config, gen_recover, gen_stages, gen_validate
from allsky_tasks.environment import Environment, from_environ

ENV = from_environ()
DOIT_CONFIG = doit_config(ENV)
# doit's modules and ours live until exit: kept out of the cyclic GC, they are not walked by
# every full collection and once more at exit (~10 ms of a ~0.2 s no-op re-run).
gc.freeze()


def _recover(env: Environment) -> Any:  # the restore layer loads only when the task runs
    from allsky_tasks.restore.recovery import run_recover

    return run_recover(env)


def task_recover() -> dict[str, Any]:
    """Finish an interrupted restore and restart a stopped service, before any spec's checks."""
    return gen_recover(ENV, _recover)


def task_validate() -> Iterator[dict[str, Any]]:  # doit task creator
    """Check every backup spec (schema and semantics)."""
    yield from gen_validate(ENV)


def task_backup_chain() -> Iterator[dict[str, Any]]:
    """scan, pack, manifest, verify and backup tasks per spec."""
    yield from gen_stages(ENV)
