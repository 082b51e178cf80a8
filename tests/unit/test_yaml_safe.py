"""Spec input limits: alias bombs, huge specs, FIFOs and duplicate keys fail the spec, fast."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from allsky_tasks.errors import SpecError
from allsky_tasks.spec.docs import spec_docs
from allsky_tasks.spec.load import peek_description, read_yaml
from allsky_tasks.spec.yaml_safe import MAX_SPEC_BYTES

BOMB = """description: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
type: config
"""


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_alias_bomb_is_refused_before_anything_walks_it(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(BOMB)
    before = _peak_kb()
    with pytest.raises(SpecError, match="aliases expand to more than") as info:
        read_yaml(spec)
    assert "bomb.yaml" in str(info.value)
    assert peek_description(spec).startswith("BROKEN SPEC:")
    assert _peak_kb() - before < 50_000  # not gigabytes: nothing was expanded


def test_alias_bomb_of_long_strings_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "strings.yaml"
    spec.write_text("a: &a " + "x" * 500_000 + "\nb: [" + ", ".join(["*a"] * 20) + "]\n")
    with pytest.raises(SpecError, match="characters"):
        read_yaml(spec)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "loop.yaml"
    spec.write_text("type: config\ninclude: &a [*a]\n")
    with pytest.raises(SpecError, match="recursive alias"):
        read_yaml(spec)


def test_few_aliases_still_work(tmp_path: Path) -> None:
    spec = tmp_path / "ok.yaml"
    spec.write_text("type: config\nx: &globs ['*.bak', '*.tmp']\nexclude: *globs\n")
    assert read_yaml(spec)["exclude"] == ["*.bak", "*.tmp"]


def test_huge_spec_is_refused_without_reading_it(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    with spec.open("wb") as fh:
        fh.truncate(52 << 20)  # sparse: 52 MB that cost nothing to make
    with pytest.raises(SpecError, match=f"more than the {MAX_SPEC_BYTES} bytes allowed"):
        read_yaml(spec)
    assert peek_description(spec).startswith("BROKEN SPEC:")


def test_spec_that_is_a_fifo_does_not_block_task_loading(tmp_path: Path) -> None:
    spec = tmp_path / "fifo.yaml"
    os.mkfifo(spec)
    assert "not a regular file" in peek_description(spec)


@pytest.mark.parametrize("text, lines", [
    ("type: config\nformat: allsky\nformat: zstd\n", (2, 3)),
    ("type: config\nservice:\n  pause: never\n  unit: a\n  pause: always\n", (3, 5)),
    ("type: config\nservice: {pause: never, pause: always}\n", (2, 2)),
])
def test_duplicate_keys_are_errors_with_both_lines(tmp_path: Path, text: str, lines: tuple[int, int]) -> None:
    spec = tmp_path / "dup.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError, match=rf"duplicate key '\w+' \(lines {lines[0]} and {lines[1]}\)"):
        read_yaml(spec)


def test_docs_cache_stays_small_with_a_bomb_and_other_specs_keep_their_doc(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "good.yaml").write_text("description: Nightly config\ntype: config\n")
    (tmp_path / "long.yaml").write_text("description: " + "x" * 5000 + "\ntype: config\n")
    cache = tmp_path / "state" / "spec-docs.json"
    cache.parent.mkdir()
    docs = spec_docs(sorted(tmp_path.glob("*.yaml")), cache)
    assert docs[0].startswith("BROKEN SPEC") and docs[1] == "Nightly config" and len(docs[2]) <= 200
    assert cache.stat().st_size < 4096


def test_oversized_docs_cache_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("description: Nightly config\ntype: config\n")
    cache = tmp_path / "spec-docs.json"
    with cache.open("wb") as fh:
        fh.truncate(64 << 20)
    assert spec_docs([tmp_path / "good.yaml"], cache) == ["Nightly config"]
    assert cache.stat().st_size < 4096
