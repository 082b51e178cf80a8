"""The command line: a command with a module of its own loads only that module, same behaviour."""

from __future__ import annotations

import argparse

import pytest

from allsky_tasks.cli import build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("argv", [["run", "--quiet", "backup:x", "--verbosity", "2"],
                                  ["run", "--events", "e.jsonl"], ["plan", "a", "--json"],
                                  ["restore", "NAME", "--dry-run", "--folders", "20260303"]])
def test_own_module_parser_parses_as_the_full_one(argv: list[str]) -> None:
    narrow, full = build_parser(argv[0]), build_parser()
    assert list(_commands(narrow)) == [argv[0]]
    assert vars(narrow.parse_args(argv)) == vars(full.parse_args(argv))
    assert (_commands(narrow)[argv[0]].format_help()
            == _commands(full)[argv[0]].format_help())


@pytest.mark.parametrize("command", [None, "inventory", "list", "nonsense", "--help"])
def test_other_commands_get_every_command(command: str | None) -> None:
    commands = _commands(build_parser(command))
    assert {"run", "plan", "restore", "list", "prune"} <= set(commands)
    assert "inventory" not in commands  # a module, not a command
