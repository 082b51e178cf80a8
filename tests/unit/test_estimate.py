"""Estimates: within 3 % of real archives, bounded and deterministic sampling, exact tar sizes."""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from pathlib import Path

import pytest

from allsky_tasks.backup.estimate import OVERHEAD_KEY, Estimate, estimate_compressed, estimate_total, read_range
from allsky_tasks.backup.scan import Entry, read_rows

from ..conftest import Site, backup, make_site, read_members

ALL_SECTIONS = ("type: config\nsections: {modules: true, databases: true, cameras: true, "
                "uservariables: true, remote: true, ssl: true, myfiles: true, darks: true}\n")
FORMATS = {"zstd": "format: zstd\nlevel: 3\n", "allsky": "format: allsky\nlevel: 6\n"}
KINDS = {"config": ALL_SECTIONS + "service: {pause: never}\n", "images": "type: images\n"}


@pytest.fixture(scope="module")
def bigger(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """Nights of 640x480 frames (about 1.5 MB each): big enough to be sampled at 256 KiB."""
    return make_site(tmp_path_factory.mktemp("bigger"), nights=2, frames_per_night=6,
                     frame_size=(640, 480))


def _rows(site: Site, name: str) -> list[Entry]:
    """The scan rows conftest's backup() wrote for a spec."""
    return list(read_rows(site.root / "work" / name / "scan.jsonl"))


def _error(estimated: int, actual: int) -> float:
    """Signed error in percent."""
    return 100 * (estimated - actual) / actual


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_whole_estimate_within_3_percent(site: Site, kind: str, fmt: str) -> None:
    name = f"{kind}-{fmt}"
    archive = backup(site, name, KINDS[kind] + FORMATS[fmt])
    level = 3 if fmt == "zstd" else 6
    ests = estimate_compressed(_rows(site, name), fmt, level)
    total = estimate_total(ests)
    assert total.exact  # the demo tree fits the default budget: compressed whole
    assert abs(_error(total.estimated_bytes, archive.stat().st_size)) < 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_sampled_estimate_within_3_percent(bigger: Site, fmt: str) -> None:
    name = f"sampled-{fmt}"
    archive = backup(bigger, name, KINDS["images"] + FORMATS[fmt])
    budget = 256 << 10
    ests = estimate_compressed(_rows(bigger, name), fmt, 3 if fmt == "zstd" else 6,
                               budget=budget)
    for night in bigger.tree.nights:
        assert not ests[night].exact
        assert 0 < ests[night].sampled_bytes <= budget < ests[night].raw_bytes
    total = estimate_total(ests)
    assert abs(_error(total.estimated_bytes, archive.stat().st_size)) < 3


@pytest.mark.parametrize("budget", [8 << 10, 100 << 10, 1 << 20])
def test_sampling_reads_at_most_the_budget_per_group(bigger: Site, budget: int) -> None:
    backup(bigger, "reads", KINDS["images"])
    rows = _rows(bigger, "reads")
    group_of = {e.source: e.section for e in rows}
    read_per_group: dict[str, int] = defaultdict(int)
    calls: list[tuple[str, int, int]] = []

    def counting(path: str, offset: int, length: int) -> bytes:
        data = read_range(path, offset, length)
        read_per_group[group_of[path]] += len(data)
        calls.append((path, offset, len(data)))
        return data

    ests = estimate_compressed(rows, "zstd", 3, budget=budget, read=counting)
    for key, est in ests.items():
        assert read_per_group.get(key, 0) == est.sampled_bytes <= budget
    # Never the same bytes twice (they would compress as repeats and flatter the ratio).
    spans = defaultdict(list)
    for path, offset, n in calls:
        spans[path].append((offset, offset + n))
    for ranges in spans.values():
        ranges.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))


def test_sample_spans_every_kind_of_file(bigger: Site) -> None:
    backup(bigger, "kinds", KINDS["images"])
    rows = _rows(bigger, "kinds")
    night = bigger.tree.nights[0]
    seen: set[str] = set()

    def noting(path: str, offset: int, length: int) -> bytes:
        seen.add(path)
        return read_range(path, offset, length)

    estimate_compressed(rows, "zstd", 3, budget=64 << 10, read=noting)
    mine = [p for p in seen if f"/{night}/" in p]
    frames = [p for p in mine if Path(p).parent.name == night and p.endswith(".jpg")]
    assert len(frames) >= 3  # several frames, not one file read for the whole stratum
    assert any("/thumbnails/" in p for p in mine)
    assert any(p.endswith(".mp4") for p in mine)
    assert any("/keogram/" in p or "/startrails/" in p for p in mine)


def test_deterministic(bigger: Site) -> None:
    backup(bigger, "again", KINDS["images"])
    rows = _rows(bigger, "again")
    first = estimate_compressed(rows, "zstd", 3, budget=128 << 10)
    assert first == estimate_compressed(rows, "zstd", 3, budget=128 << 10)


def test_tar_bytes_exact_with_long_and_odd_names(site: Site) -> None:
    night = site.home / "images" / site.tree.nights[0]
    deep = night / ("long-folder-name-" * 5)
    deep.mkdir()
    (deep / ("a-file-with-a-long-name-" * 4 + ".jpg")).write_bytes(b"x" * 700)
    (night / "naïve.txt").write_text("non-ASCII name\n")
    os.symlink("x" * 120, night / "long-link")
    archive = backup(site, "odd", KINDS["images"])
    ests = estimate_compressed(_rows(site, "odd"), "zstd", 3)
    groups = estimate_total({k: e for k, e in ests.items() if k != OVERHEAD_KEY})
    # Everything before metadata.json: every header (PAX records included) and padded data.
    assert groups.tar_bytes == read_members(archive)["metadata.json"].offset


def test_unreadable_files_count_as_stored(site: Site) -> None:
    backup(site, "blind", KINDS["images"])
    rows = _rows(site, "blind")
    blind = estimate_total(estimate_compressed(rows, "zstd", 3, budget=16 << 10,
                                               read=lambda *_: b""))
    assert blind.estimated_bytes >= blind.raw_bytes  # no data read: no compression assumed


def test_groups_and_totals(site: Site) -> None:
    backup(site, "groups", ALL_SECTIONS)
    rows = _rows(site, "groups")
    ests = estimate_compressed(rows, "allsky", 6)
    files = [e for e in rows if e.kind == "file"]
    assert set(ests) == {e.section for e in rows} | {OVERHEAD_KEY}
    total = estimate_total(ests)
    assert total.files == len(files) and total.raw_bytes == sum(e.size for e in files)
    assert total.members == len(rows) + 1  # + metadata.json
    assert total.estimated_bytes == sum(e.estimated_bytes for e in ests.values())
    assert 0 < ests["databases"].ratio < 0.8  # SQLite pages compress well
    assert ests["darks"].ratio > 0.9  # noisy PNGs do not
    assert ests[OVERHEAD_KEY].estimated_bytes > 0 and ests[OVERHEAD_KEY].files == 0
    assert Estimate("x", raw_bytes=0).ratio == 0.0
