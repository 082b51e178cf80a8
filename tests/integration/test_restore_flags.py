"""Repeated list options add up: `--folders A --folders B` restores A and B, as documented."""

from __future__ import annotations

import argparse
import shutil

import pytest

from allsky_tasks.cli import build_parser, main

from ..conftest import Site, backup, tree_state


def test_repeated_folders_restore_every_one_of_them(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    archive = backup(site, "imgs", "type: images\nfolders: all\n")
    nights = site.tree.nights
    before = {n: tree_state(site.tree.images / n) for n in nights}
    for night in nights:
        shutil.rmtree(site.tree.images / night)
    code = main(["restore", str(archive), "--folders", nights[0], "--folders", f"{nights[1]},{nights[2]}",
                 "--yes", "--no-service", "--home", str(site.home)])
    assert code == 0, capsys.readouterr()
    for night in nights:
        assert tree_state(site.tree.images / night) == before[night], night


def test_repeated_sections_and_files_add_up_too() -> None:
    args = build_parser("restore").parse_args(
        ["restore", "x", "--sections", "core", "--sections", "modules,databases", "--files", "a", "b",
         "--files", "c", "--folders", "20260101,20260102", "--folders", "20260101"])
    assert args.sections == ["core", "modules", "databases"]
    assert args.files == ["a", "b", "c"]
    assert args.folders == ["20260101", "20260102", "20260101"]  # the command drops repeats


def test_no_list_option_keeps_only_its_last_occurrence() -> None:
    """Every option of every command that collects a list accumulates its occurrences."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    found = []
    for name, sub in commands.items():
        for action in sub._actions:
            if not action.option_strings:
                continue
            lists = isinstance(action.default, list) or action.nargs in ("+", "*")
            if lists:
                found.append(f"{name} {action.option_strings[0]}")
                assert isinstance(action, (argparse._ExtendAction, argparse._AppendAction)), \
                    f"{name} {action.option_strings[0]} keeps only its last occurrence"
    assert {"restore --sections", "restore --folders", "restore --files"} <= set(found)
