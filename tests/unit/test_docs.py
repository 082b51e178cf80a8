"""The README and docs/ stay true: exit codes, class names, links, the first commands."""

from __future__ import annotations

import re

from allsky_tasks.archive.safety import ArchiveRejected
from allsky_tasks.environment import PROJECT_DIR
from allsky_tasks.errors import EXIT_CODES, UnsafeArchiveError

README = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
REFERENCE = (PROJECT_DIR / "docs" / "reference.md").read_text(encoding="utf-8")


def test_exit_code_table_lists_every_error_class_with_its_code() -> None:
    rows = dict(re.findall(r"^\| (\d+) \| (\w*) ?\|", REFERENCE, re.M))
    for name, code in EXIT_CODES.items():
        assert rows.get(str(code)) == name, (name, code)
    assert {"10", "27", "130"} <= set(rows)


def test_doit_codes_are_the_real_ones() -> None:
    # Verified against doit's runner: UnmetDependency is a TaskError, so a broken spec's
    # dependants make `doit backup:x` exit 2 (tests/integration/test_messages.py runs it).
    assert "**2** a task error" in REFERENCE and "**3** a bad command line" in REFERENCE


def test_archive_rejection_is_named_as_the_tool_prints_it() -> None:
    assert issubclass(ArchiveRejected, UnsafeArchiveError)
    assert "ArchiveRejected" in README and "UnsafeArchiveError" not in README
    assert "subclass `ArchiveRejected`" in REFERENCE


def test_links_point_at_files() -> None:
    for doc in (PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text(encoding="utf-8")):
            path = (doc.parent / target).resolve()
            rel = path.relative_to(PROJECT_DIR).as_posix()
            assert path.exists(), (doc.name, rel)


def test_first_screen_has_the_two_commands_and_the_pi_install() -> None:
    head = README.splitlines()[:50]  # about a screen
    assert head[3].startswith("./demo.sh") and head[4].startswith("./test.sh")
    text = "\n".join(head)
    for needed in ("Bookworm", "Bullseye", "Python 3.9", "not as root", "allsky-tasks init",
                   "first backup", "restore NAME", "schedule install", "docs/unattended.md"):
        assert needed in text, needed


def test_readme_says_what_plain_doit_does_and_documents_the_options() -> None:
    assert "Plain `doit`" in README and "config specs only" in README
    for option in ("--no-service", "--service-unit", "list --archives", "--dest"):
        assert option in README and option in REFERENCE, option
    assert "not built yet" not in README + REFERENCE
