"""doit's console reporter, shortened for operators: one line per failed spec, quiet for cron.

A spec whose validate fails would otherwise print one UnmetDependency block for each of its
later tasks. Those blocks are kept for `--verbosity 2` given on the command line (or doit's
`--failure-verbosity 1`). With ALLSKY_QUIET=1 (or `run --quiet`) no task lines are printed and
failures go to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from doit.exceptions import BaseFail, UnmetDependency
from doit.reporter import ConsoleReporter

from ..progress import QUIET_ENV

# The doit arguments of this run when doit runs inside our CLI (sys.argv is ours then).
ARGV: list[str] | None = None
# time.monotonic() when doit started running tasks (None: no run, e.g. `doit info`).
RUN_STARTED: float | None = None


def asked_for_detail(argv: list[str]) -> bool:
    """True when the command line says --verbosity 2 (or -v 2, -v2, --verbosity=2)."""
    for i, arg in enumerate(argv):
        if arg in ("-v", "--verbosity") and argv[i + 1:i + 2] == ["2"]:
            return True
        if arg in ("-v2", "--verbosity=2"):
            return True
    return False


def _error_class(fail: BaseFail) -> str:
    """Our error class from a stage failure's message ('[SpecError] ...'), else doit's name."""
    text = fail.get_msg() if hasattr(fail, "get_msg") else str(fail)
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    return str(fail.get_name())


class OperatorReporter(ConsoleReporter):  # type: ignore[misc]  # doit has no types: its class is Any
    """ConsoleReporter with per-spec failure lines and a quiet mode."""

    desc = "console output, one line per failed spec; quiet with ALLSKY_QUIET=1"

    def __init__(self, outstream: Any, options: dict[str, Any]) -> None:
        super().__init__(outstream, options)
        self.quiet = os.environ.get(QUIET_ENV, "") not in ("", "0")
        argv = ARGV if ARGV is not None else sys.argv[1:]
        self.detail = options.get("failure_verbosity", 0) > 0 or asked_for_detail(argv)
        self.failed: dict[str, tuple[str, str]] = {}  # spec -> (task, error class)
        self.skipped: dict[str, list[str]] = {}  # spec -> tasks not run because of it

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        """A run starts: backup:<spec> summaries are due, and the run's clock starts."""
        global RUN_STARTED
        RUN_STARTED = time.monotonic()
        super().initialize(tasks, selected_tasks)

    def write(self, text: str) -> None:
        """Quiet: everything this reporter still prints is an error, so it goes to stderr."""
        (sys.stderr if self.quiet else self.outstream).write(text)

    def execute_task(self, task: Any) -> None:
        """`.  task` lines, unless quiet."""
        if not self.quiet:
            super().execute_task(task)

    def skip_uptodate(self, task: Any) -> None:
        """`-- task` lines, unless quiet."""
        if not self.quiet:
            super().skip_uptodate(task)

    def skip_ignore(self, task: Any) -> None:
        """`!! task` lines, unless quiet."""
        if not self.quiet:
            super().skip_ignore(task)

    def add_failure(self, task: Any, fail: BaseFail) -> None:
        """Print a real failure; count tasks skipped because of one (detail: doit's blocks)."""
        spec = task.name.partition(":")[2]
        if isinstance(fail, UnmetDependency) and not self.detail:
            if spec:  # group tasks (`backup`) say nothing new
                self.skipped.setdefault(spec, []).append(task.name)
            return
        if spec and spec not in self.failed:
            self.failed[spec] = (task.name, _error_class(fail))
        super().add_failure(task, fail)

    def complete_run(self) -> None:
        """doit's closing output (captured output of failed tasks), then one line per spec."""
        if not self.quiet:
            super().complete_run()
        elif self.runtime_errors:
            self.write("\n".join(self.runtime_errors) + "\n")
        for spec in sorted(set(self.failed) | set(self.skipped)):
            task, error = self.failed.get(spec, ("an earlier task", "failed"))
            later = self.skipped.get(spec, [])
            tail = (f"; {len(later)} later task(s) not run ({later[0]} .. {later[-1]})"
                    if later else "")
            self.write(f"FAILED {spec}: {task} [{error}]{tail}\n")
        if self.skipped and not self.detail:
            self.write("(doit's detail on the tasks not run: add --verbosity 2)\n")
