"""`allsky-tasks run [doit arguments]`: doit on our dodo.py, with our exit codes."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

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


class _Tail:
    """stderr that also keeps its last few KB: doit's own error (exit 3) for the run record."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.kept = stream, ""

    def write(self, text: str) -> int:
        self.kept = (self.kept + text)[-4096:]
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)




_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(:|$)")


def _last_error(text: str) -> str:
    """The exception doit printed last (its line and any lines of its message after it)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(lines) if _EXCEPTION_LINE.match(ln)]
    if starts:
        return " ".join(lines[starts[-1]:])
    usage = [ln for ln in lines if ln.startswith("ERROR: ")]  # doit's own words for bad input
    if usage:
        return usage[-1].removeprefix("ERROR: ")
    return lines[-1] if lines else "doit stopped before running any task"


def _suggest(word: str) -> None:
    """A mistyped task name: the nearest real ones (backup:<spec>, plan:<spec>, ...)."""
    import difflib

    from ..backup.tasks import gen_stages
    from ..environment import from_environ, spec_files

    env = from_environ()
    bases = {str(t["basename"]) for t in gen_stages(env)} | {"recover", "validate"}
    names = sorted(bases | {f"{b}:{p.stem}" for b in bases for p in spec_files(env.specs_dir)})
    close = difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    if close:
        print(f"allsky-tasks: no task {word!r}; did you mean {' or '.join(close)}?",
              file=sys.stderr)


def run_doit(doit_args: list[str]) -> int:
    """Run doit in this process; a failed task's own exit code wins over doit's generic 1."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from ..backup import reporter, stage_io

    stage_io.FAILURES.clear()
    stage_io.DOIT_ERROR.clear()
    reporter.ARGV = list(doit_args)
    tail, real = _Tail(sys.stderr), sys.stderr
    sys.stderr = tail
    try:
        with signals_as_interrupt() as received:
            doit = DoitMain(ModuleTaskLoader(load_dodo()))
            doit.BIN_NAME = "allsky-tasks run"  # its hints (`... list`, `... help`) then work
            code = int(doit.run(doit_args))
    finally:
        sys.stderr = real
        from ..service.lock import release_run_locks

        release_run_locks()
    if stage_io.FAILURES:
        return stage_io.FAILURES[0].exit_code
    if received and code != 0:
        # An interrupt outside a stage's action (doit's up-to-date checks, an import) reaches
        # doit as an error of its own: it is still the operator's Ctrl-C or a stop, not a crash.
        name = signal.Signals(received[0]).name
        print(f"allsky-tasks: interrupted ({name}) between stages; no partial archive was kept "
              "and the service is as it was", file=sys.stderr)
        return 130
    if code == 3:
        stage_io.DOIT_ERROR.append(_last_error(tail.kept))
        unknown = re.search(r'(?:Invalid parameter|invalid parameter): "([^"]+)"', tail.kept)
        if unknown:
            _suggest(unknown.group(1))
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
    from .run_report import intended_specs, reported, require_specs

    specs, runs_tasks = intended_specs(doit_args)

    def go() -> int:
        if runs_tasks:
            require_specs()  # no specs: an error, never a silent run that backs up nothing
        return run_doit(doit_args)

    return reported(go, specs)


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

