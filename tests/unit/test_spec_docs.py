"""The cached doc lines of specs: re-read only when a spec file changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from allsky_tasks.spec import docs as mod
from allsky_tasks.spec.docs import spec_docs


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The spec files actually parsed, in order."""
    seen: list[Path] = []
    real = mod.peek_description

    def counting(path: Path) -> str:
        seen.append(path)
        return real(path)
    monkeypatch.setattr(mod, "peek_description", counting)
    return seen


def _specs(tmp_path: Path) -> list[Path]:
    """Two spec files in a specs folder."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a.yaml").write_text("description: first\ntype: config\n")
    (folder / "b.yaml").write_text("type: images\n")
    return sorted(folder.iterdir())


def test_unchanged_specs_are_not_read_again(tmp_path: Path, reads: list[Path]) -> None:
    paths, cache = _specs(tmp_path), tmp_path / "state" / mod.CACHE_NAME
    cache.parent.mkdir()
    assert spec_docs(paths, cache) == ["first", "images backup"]
    assert spec_docs(paths, cache) == ["first", "images backup"]
    assert reads == paths


def test_an_edited_spec_is_read_again_even_with_its_old_mtime(tmp_path: Path,
                                                              reads: list[Path]) -> None:
    paths, cache = _specs(tmp_path), tmp_path / mod.CACHE_NAME
    spec_docs(paths, cache)
    time.sleep(0.05)  # past the kernel's coarse clock tick, so the ctime can move
    st = paths[0].stat()
    paths[0].write_text("description: other\ntype: config\n")  # same size
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p would leave it
    assert spec_docs(paths, cache) == ["other", "images backup"]
    assert reads == paths + [paths[0]]


def test_broken_specs_are_never_cached(tmp_path: Path, reads: list[Path]) -> None:
    paths, cache = _specs(tmp_path), tmp_path / mod.CACHE_NAME
    paths[1].write_text("type: [unclosed\n")
    for _ in range(2):
        docs = spec_docs(paths, cache)
        assert docs[0] == "first" and docs[1].startswith("BROKEN SPEC: ")
    assert reads == paths + [paths[1]]


def test_a_cache_that_cannot_be_read_or_written_changes_nothing(tmp_path: Path) -> None:
    paths = _specs(tmp_path)
    (tmp_path / "garbage.json").write_text("{not json")
    assert spec_docs(paths, tmp_path / "garbage.json") == ["first", "images backup"]
    assert spec_docs(paths, tmp_path / "missing" / "c.json") == ["first", "images backup"]
    assert not (tmp_path / "missing").exists()


def test_other_spec_folders_keep_their_entries(tmp_path: Path, reads: list[Path]) -> None:
    cache = tmp_path / mod.CACHE_NAME
    first = _specs(tmp_path)
    other = tmp_path / "more"
    other.mkdir()
    (other / "c.yaml").write_text("description: third\ntype: config\n")
    spec_docs(first, cache)
    spec_docs([other / "c.yaml"], cache)
    spec_docs(first, cache)
    first[1].unlink()  # a removed spec leaves the cache
    spec_docs(first[:1], cache)
    assert reads == first + [other / "c.yaml"]
    assert set(mod._read(cache)) == {str(first[0]), str(other / "c.yaml")}
