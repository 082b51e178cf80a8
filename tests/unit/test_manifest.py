"""Sidecars: a damaged trailer line is a sidecar in another layout, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import read_trailers, sidecar_path, update_sidecar
from allsky_tasks.errors import ManifestError

from ..conftest import Site, backup


def _with_trailer(site: Site, line: str) -> Path:
    """A real archive whose sidecar carries one more trailer line, just before its close."""
    archive = backup(site, "cfg", "type: config\n")
    path = sidecar_path(archive)
    lines = path.read_text().splitlines(keepends=True)
    assert read_trailers(archive) is not None  # our streamed layout, as written
    path.write_text("".join(lines[:-2] + [line] + lines[-2:]))
    return archive


@pytest.mark.parametrize("line", [
    '        , [1]: true\n',  # a key that is not a JSON string (unhashable)
    '        , 7: true\n',  # a key that is JSON but not a string
    '        , "pinned" true\n',  # no colon
    '        , "pinned": tru\n',  # a value that is not JSON
])
def test_a_damaged_trailer_is_not_our_layout(site: Site, line: str) -> None:
    assert read_trailers(_with_trailer(site, line)) is None


@pytest.mark.parametrize("line", ['        , [1]: true\n', '        , 7: true\n'])
def test_updating_a_sidecar_with_a_foreign_key_names_the_file(site: Site, line: str) -> None:
    archive = _with_trailer(site, line)
    # Not streamed then: the whole JSON is read, and the error names the sidecar.
    with pytest.raises(ManifestError, match=f"{sidecar_path(archive)}: unreadable sidecar"):
        update_sidecar(archive, {"pinned": True})


def test_updating_replaces_a_damaged_line_of_the_same_key(site: Site) -> None:
    archive = _with_trailer(site, '        , "pinned": tru\n')
    update_sidecar(archive, {"pinned": True})
    assert (read_trailers(archive) or {}).get("pinned") is True
