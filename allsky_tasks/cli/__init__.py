"""The command layer: `allsky-tasks <command>` (also `python -m allsky_tasks`).

Only this layer prints and exits. Each command module exposes
`register(subparsers) -> None`, adding a parser whose `func(args) -> int` runs the command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import AllskyTasksError

# Command modules, in the order `--help` lists them. A missing module is skipped so a partial
# install still runs the rest.
COMMAND_MODULES = ("run", "plan", "inventory", "restore", "init", "schedule", "status", "keys")


def _register(subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    """Add the commands of one command module, if it is installed."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        return
    module.register(subs)


def _parser(names: tuple[str, ...]
            ) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """A parser with the commands of these modules, and its subcommand action."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="allsky-tasks",
                                     description="Declarative, verified Allsky backups.")
    parser.add_argument("--version", action="version", version=f"allsky-tasks {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in names:
        _register(subs, name)
    return parser, subs


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every available command.

    For a command with a module of its own name (run, plan, restore) only that module is
    loaded: `run` is what cron starts, and the others cost its no-op re-run milliseconds.
    """
    if command in COMMAND_MODULES:
        parser, subs = _parser((command,))
        if command in subs.choices:
            return parser
    return _parser(COMMAND_MODULES)[0]


def _recover() -> None:
    """Before any command: finish a restore killed half-way, restart a stopped service; say so.

    A failure is reported and the command still runs (it may be the restore that repairs it).
    """
    from ..environment import from_environ

    env = from_environ()
    if not any(os.path.lexists(env.state_dir / name)
               for name in ("restore-journal.json", "service-paused.json")):
        return  # the usual case: nothing to recover, nothing heavy imported
    from ..restore.recovery import recover_all

    try:
        for message in recover_all(env):
            print(f"allsky-tasks: recovered: {message}", file=sys.stderr)
    except AllskyTasksError as e:
        print(f"allsky-tasks: recovery failed: {type(e).__name__}: {e}", file=sys.stderr)
    except OSError as e:
        print(f"allsky-tasks: recovery failed: {e}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, map our errors to their exit codes."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if os.geteuid() == 0:  # root for the Allsky user: that user's state is ours too
        from ..environment import from_environ
        from ..safefs import trust_owner_of

        trust_owner_of(from_environ().home)
    if args.command != "run":  # `run` does it in its own `recover` task
        _recover()
    try:
        return int(args.func(args) or 0)
    except AllskyTasksError as e:
        print(f"allsky-tasks: {type(e).__name__}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("allsky-tasks: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if os.geteuid() == 0 and args.command not in ("run", "restore", None):
            _give_back(args)


def _give_back(args: argparse.Namespace) -> None:
    """Run as root: sidecars, imports and state written now go to the Allsky user."""
    from pathlib import Path

    from ..environment import from_environ
    from .run_report import keep_ownership

    env = from_environ()
    dest = getattr(args, "dest", None)
    keep_ownership(env, [Path(dest).absolute() if dest else env.backup_dir])
