"""Scan: rows, fingerprints and exclusions, including the inlined fast path for regular files."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from allsky_tasks.backup import scan as scan_mod
from allsky_tasks.backup import walk
from allsky_tasks.backup.scan import Entry, ScanSummary, exclusion, scan
from allsky_tasks.errors import ScanError
from allsky_tasks.spec.load import load_spec
from allsky_tasks.spec.model import Spec

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
        own = "".join(line for e, line in zip(entries, lines, strict=True) if e.section == section)
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


# --- night-folder symlinks: one rule for every selection ---

def _linked_site(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.conftest import make_site

    site = make_site(tmp_path)
    images = site.home / "images"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_text("not Allsky's")
    (images / "20990102").symlink_to(outside)  # newest "night", outside the tree
    (images / "20000101").symlink_to("20000101")  # an old night that loops
    return site


def _scan_text(site, text: str):  # type: ignore[no-untyped-def]
    import io

    from allsky_tasks.backup.scan import scan
    from allsky_tasks.spec.load import load_spec

    out = io.StringIO()
    summary = scan(load_spec(site.spec("x", text), site.env), out)
    return summary, out.getvalue()


@pytest.mark.parametrize("folders", ["all", "{last: 2}", "{from: FIRST, to: 20991231}", "[FIRST, 20990102]"])
def test_night_folder_link_outside_is_left_out_by_every_selection(tmp_path: Path, folders: str) -> None:
    site = _linked_site(tmp_path)
    folders = folders.replace("FIRST", site.tree.nights[0])  # the tree's nights end yesterday
    if folders == "all":
        (site.home / "images" / "20000101").unlink()  # `all` includes the loop: tested below
    summary, rows = _scan_text(site, f"type: images\nfolders: {folders}\n")
    assert "secret.jpg" not in rows and "20990102" not in summary.image_folders
    assert any("20990102: night folder is a symlink to" in w and "left out" in w for w in summary.warnings)


def test_night_folder_link_outside_selected_alone_names_why(tmp_path: Path) -> None:
    site = _linked_site(tmp_path)
    with pytest.raises(ScanError, match="20990102: night folder is a symlink to .*outside"):
        _scan_text(site, "type: images\nfolders: [20990102]\n")


def test_night_folder_link_inside_the_tree_is_followed_by_name(tmp_path: Path) -> None:
    from tests.conftest import make_site

    site = make_site(tmp_path)
    images = site.home / "images"
    night = sorted(p.name for p in images.iterdir() if p.name.startswith("2"))[-1]
    (images / "20991231").symlink_to(night)
    summary, rows = _scan_text(site, "type: images\nfolders: [20991231]\n")
    assert summary.image_folders == ["20991231"] and '"images/20991231/' in rows


def test_looping_night_folder_affects_only_selections_including_it(tmp_path: Path) -> None:
    site = _linked_site(tmp_path)
    summary, _ = _scan_text(site, "type: images\nfolders: {last: 2}\n")  # the loop is old
    assert "20000101" not in summary.image_folders
    for folders in ("all", "{from: 20000101, to: 20001231}"):
        with pytest.raises(ScanError, match="images/20000101: night folder symlink .* cannot be followed"):
            _scan_text(site, f"type: images\nfolders: {folders}\n")
    summary, _ = _scan_text(site, "type: images\nfolders: all\non_file_error: warn\n")
    assert any("20000101" in w and "left out" in w for w in summary.warnings)
    from allsky_tasks.errors import SpecError
    with pytest.raises(SpecError, match="20000101 is a symbolic link that loops"):
        _scan_text(site, "type: images\nfolders: [20000101]\n")


# --- links in include: and section globs are stored as links, never walked ---

def _outside_etc(tmp_path: Path) -> Path:
    """A folder outside the install that looks like /etc."""
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    for name in ("hosts", "hostname", "host.conf"):
        (outside / "etc" / name).write_text(f"{name} of the host\n")
    (outside / "etc" / "sub").mkdir()
    (outside / "etc" / "sub" / "hosts.deep").write_text("deep\n")
    return outside


@pytest.mark.parametrize("pattern", ["config/rootlink/etc/host*", "config/*/etc/host*",
                                     "config/rootlink/**", "config/**/hosts*", "config/r*/*/*"])
def test_include_globs_never_walk_through_a_link(site: Site, tmp_path: Path, pattern: str) -> None:
    (site.home / "config" / "rootlink").symlink_to(_outside_etc(tmp_path))
    rows, summary, _ = _scan(site, "s", f"type: config\ninclude: ['{pattern}']\non_file_error: warn\n")
    names = [Entry.from_row(json.loads(line)).arcname for line in rows.splitlines()]
    assert not [n for n in names if n.startswith("config/rootlink/")]
    sources = [Entry.from_row(json.loads(line)).source for line in rows.splitlines()]
    assert not [s for s in sources if "outside" in s]
    if "**" not in pattern:  # `**` never descends into links at all (as pathlib's): nothing to say
        assert any("rootlink: a symlink" in w and "never walked" in w for w in summary.warnings)


def test_include_through_a_link_to_the_root_packs_nothing_of_etc(site: Site) -> None:
    (site.home / "config" / "rootlink").symlink_to("/")
    rows, summary, _ = _scan(site, "s", "type: config\ninclude: ['config/rootlink/etc/host*']\n"
                             "on_file_error: warn\n")
    assert "/etc/" not in rows
    assert any("config/rootlink: a symlink" in w for w in summary.warnings)


def test_a_link_matched_by_the_glob_itself_is_stored_as_a_link(site: Site, tmp_path: Path) -> None:
    (site.home / "config" / "overlay" / "fonts" / "alias.ttf").symlink_to("missing.ttf")
    rows, _, _ = _scan(site, "s", "type: config\ninclude: ['config/overlay/fonts/*.ttf']\n")
    entries = {e.arcname: e for e in (Entry.from_row(json.loads(line)) for line in rows.splitlines())}
    assert entries["config/overlay/fonts/alias.ttf"].kind == "symlink"
    assert entries["config/overlay/fonts/alias.ttf"].linkname == "missing.ttf"


def test_a_section_path_below_a_linked_folder_is_left_out(site: Site, tmp_path: Path) -> None:
    overlay = site.home / "config" / "overlay"
    moved = tmp_path / "elsewhere-overlay"
    overlay.rename(moved)
    overlay.symlink_to(moved)  # config/overlay -> outside: its roots (fonts, images...) are below a link
    rows, summary, _ = _scan(site, "s", "type: config\non_file_error: warn\n")
    names = [Entry.from_row(json.loads(line)).arcname for line in rows.splitlines()]
    assert not [n for n in names if n.startswith("config/overlay/")]
    assert any("config/overlay: a symlink" in w for w in summary.warnings)


def test_a_glob_through_a_looping_link_makes_an_archive_that_verifies(site: Site) -> None:
    from allsky_tasks.archive.safety import validate_archive

    from ..conftest import backup

    (site.home / "config" / "self").symlink_to(".")  # config/self/self/self/... never ends
    archive = backup(site, "loop", "type: config\ninclude: ['config/**', 'config/self/*.json', "
                                   "'config/self/self/*']\non_file_error: warn\n")
    report = validate_archive(archive)  # what verify, import and restore check
    names = {m.path for m in report.entries}
    assert "config/self" in names and not [n for n in names if n.startswith("config/self/")]
