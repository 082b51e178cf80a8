"""Scan: rows, fingerprints and exclusions, including the inlined fast path for regular files."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os

import pytest

from allsky_tasks.backup import scan as scan_mod
from allsky_tasks.backup import walk
from allsky_tasks.backup.scan import Entry, ScanSummary, exclusion, scan
from allsky_tasks.spec.load import Spec, load_spec

from ..conftest import Site

IMAGES = "type: images\nfolders: all\non_file_error: warn\n"
CONFIG = ("type: config\nsections: {modules: true, databases: true, myfiles: true}\n"
          "include: ['config/**']\nexclude: ['*.bak', 'config/odd/*.tmp']\non_file_error: warn\n")


def _scan(site: Site, name: str, text: str) -> tuple[str, ScanSummary, Spec]:
    """Scan a spec into memory: (rows text, summary, spec)."""
    spec = load_spec(site.spec(name, text), site.env)
    out = io.StringIO()
    summary = scan(spec, out)
    return out.getvalue(), summary, spec


def _odd_files(site: Site) -> None:
    """Names JSON must escape, an excluded file, a link and a folder larger than one block."""
    odd = site.home / "config" / "odd"
    odd.mkdir()
    for name in ('quote"back\\slash\ttab.json', "emoji-😀.json", "x.bak", "y.tmp", "z.txt"):
        (odd / name).write_text(name)
    with open(os.path.join(os.fsencode(odd), b"bad\xffbyte.json"), "w") as fh:
        fh.write("1")
    (odd / "link").symlink_to("z.txt")
    night = site.tree.images / site.tree.nights[0]
    for i in range(walk._BLOCK_LINES + 50):
        (night / f"extra-{i:05d}.jpg").write_bytes(b"j")


@pytest.mark.parametrize("text", [IMAGES, CONFIG])
def test_rows_and_fingerprints_are_the_hash_of_exactly_the_rows_written(site: Site,
                                                                     text: str) -> None:
    _odd_files(site)
    rows, summary, spec = _scan(site, "s", text)
    lines = rows.splitlines(keepends=True)
    assert len(lines) == summary.entries
    # Every row, fast path or not, is exactly what Entry.to_line makes of it.
    entries = [Entry.from_row(json.loads(line)) for line in lines]
    assert [e.to_line() for e in entries] == lines
    trailer = json.dumps([scan_mod.FORMAT_VERSION, spec.digest, summary.camera]).encode()
    assert summary.fingerprint == hashlib.sha256(rows.encode() + trailer).hexdigest()
    for section, digest in summary.section_fingerprints.items():
        own = "".join(line for e, line in zip(entries, lines) if e.section == section)
        assert digest == hashlib.sha256(own.encode()).hexdigest()
    assert list(summary.section_fingerprints) == list(dict.fromkeys(e.section for e in entries))
    for key, stats in summary.stats.items():
        mine = [e for e in entries if e.section == key]
        assert stats.files == sum(e.kind == "file" for e in mine)
        assert stats.raw_bytes == sum(e.size for e in mine)


def test_config_rows_skip_excluded_and_duplicate_members(site: Site) -> None:
    _odd_files(site)
    rows, summary, _ = _scan(site, "s", CONFIG)
    names = [Entry.from_row(json.loads(line)).arcname for line in rows.splitlines()]
    assert len(names) == len(set(names))  # include: overlaps every section: first one wins
    assert "config/odd/z.txt" in names and "config/odd/link" in names
    assert "config/odd/x.bak" not in names and "config/odd/y.tmp" not in names
    assert "config/odd/emoji-😀.json" in names


def test_a_touched_file_changes_the_fingerprint_of_its_night_only(site: Site) -> None:
    _, before, _ = _scan(site, "s", IMAGES)
    night = site.tree.nights[1]
    frame = next((site.tree.images / night).glob("image-*.jpg"))
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    _, after, _ = _scan(site, "s", IMAGES)
    assert after.fingerprint != before.fingerprint
    changed = {k for k in before.section_fingerprints
               if before.section_fingerprints[k] != after.section_fingerprints[k]}
    assert changed == {night}


@pytest.mark.parametrize("patterns", [
    (), ("__pycache__",), ("*.bak", "images/*/thumbnails"), ("a[1].jpg", "[!x]*", "?b*"),
    ("*", "config/**"), ("x*y*z", "images/2026*/*.mp4", "a.b", "[", "a]b"),
])
def test_exclusion_answers_as_fnmatchcase(patterns: tuple[str, ...]) -> None:
    names = ["__pycache__", "x.bak", "a[1].jpg", "a1.jpg", "xbz", "abc", "bb", "a.b", "axb",
             "[", "a]b", "xqyqz", "thumbnails", "k.mp4", ""]
    arcs = ["images/20260101/thumbnails", "images/20260101/k.mp4", "config/a.b", "config/x/y"]
    check = exclusion(patterns)
    for arc in arcs + [f"config/{n}" for n in names]:
        name = arc.rsplit("/", 1)[-1]
        expected = any(fnmatch.fnmatchcase(arc if "/" in p else name, p) for p in patterns)
        assert check(arc, name) == expected, (patterns, arc)
