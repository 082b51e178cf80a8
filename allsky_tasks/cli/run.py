"""`allsky-tasks run [doit arguments]`: doit on our dodo.py, with our exit codes."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

from ..environment import PROJECT_DIR
from ..progress import EVENTS_ENV, QUIET_ENV, events_file_for
from ..service.signals import signals_as_interrupt


def load_dodo() -> ModuleType:
    """Import the project's dodo.py as a module."""
    spec = importlib.util.spec_from_file_location("dodo", PROJECT_DIR / "dodo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_doit(doit_args: list[str]) -> int:
    """Run doit in this process; a failed task's own exit code wins over doit's generic 1."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from ..backup import reporter, stage_io

    stage_io.FAILURES.clear()
    reporter.ARGV = list(doit_args)
    with signals_as_interrupt() as received:
        code: int = DoitMain(ModuleTaskLoader(load_dodo())).run(doit_args)  # doit has no types
    if stage_io.FAILURES:
        return stage_io.FAILURES[0].exit_code
    if received and code != 0:
        # An interrupt outside a stage's action (doit's up-to-date checks, an import) reaches
        # doit as an error of its own: it is still the operator's Ctrl-C or a stop, not a crash.
        name = signal.Signals(received[0]).name
        print(f"allsky-tasks: interrupted ({name}) between stages; no partial archive was kept "
              "and the service is as it was", file=sys.stderr)
        return 130
    return code


def _cmd(args: argparse.Namespace) -> int:
    """Run doit with the remaining arguments."""
    doit_args = list(args.doit_args)
    if doit_args[:1] == ["--"]:
        doit_args = doit_args[1:]
    if args.events:
        os.environ[EVENTS_ENV] = str(Path(args.events).absolute())
        events_file_for(os.environ[EVENTS_ENV])
    if args.quiet:
        # For cron: only errors, on stderr. doit's verbosity 0 captures task output, and our
        # reporter (DOIT_CONFIG) prints no task lines when ALLSKY_QUIET is set.
        os.environ[QUIET_ENV] = "1"
        doit_args = ["--verbosity", "0", *doit_args]
    if args.lock_wait is not None:
        from ..backup.stage_io import LOCK_WAIT_ENV

        os.environ[LOCK_WAIT_ENV] = str(args.lock_wait)
    from .run_report import reported

    return reported(lambda: run_doit(doit_args))


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` command."""
    p = subs.add_parser("run", help="run doit tasks (default: back up every spec)",
                        description="Run doit on the project's dodo.py. Exit code: 0, or the "
                                    "exit code of the first failed stage (see README).")
    p.add_argument("--quiet", action="store_true",
                   help="errors only (for cron); also ALLSKY_QUIET=1")
    p.add_argument("--events", metavar="FILE",
                   help="append JSON-lines progress events to FILE (also ALLSKY_PROGRESS_FILE)")
    p.add_argument("--lock-wait", type=float, metavar="SECONDS",
                   help="if another run holds the destination, wait this long, then skip "
                        "with a warning and exit 0 (for scheduled runs)")
    p.add_argument("doit_args", nargs=argparse.REMAINDER,
                   help="doit arguments, e.g. `backup:quick-config` or `validate`")
    p.set_defaults(func=_cmd)

