"""Plan: the create dialog's data for a spec, checked against an independent walk of the tree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.backup.plan import build_plan, render_plan, share
from allsky_tasks.backup.scan import scan
from allsky_tasks.backup.summary import estimate_record
from allsky_tasks.spec.load import load_spec

from ..conftest import Site, backup

ALL_SECTIONS = ("type: config\nsections: {modules: true, databases: true, cameras: true, "
                "uservariables: true, remote: true, ssl: true, myfiles: true, darks: true}\n")


def _plan(site: Site, name: str, text: str, **kwargs: object) -> dict:
    """Load, scan and plan a spec written into the site."""
    spec = load_spec(site.spec(name, text), site.env)
    rows = site.root / f"{name}.jsonl"
    with rows.open("w", encoding="utf-8") as out:
        summary = scan(spec, out)
    return build_plan(spec, summary, rows, **kwargs)


def _walk(root: Path, skip: tuple[Path, ...] = ()) -> tuple[int, int]:
    """(files, bytes) below root by os.walk, without __pycache__ or the paths in skip."""
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and Path(dirpath, d) not in skip]
        for name in filenames:
            path = Path(dirpath, name)
            if path not in skip:
                files, size = files + 1, size + path.lstat().st_size
    return files, size


def _add(*counts: tuple[int, int]) -> tuple[int, int]:
    """Sum (files, bytes) pairs."""
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _expected_sections(home: Path) -> dict[str, tuple[int, int]]:
    """Every section's files and bytes in the demo tree, counted without the scanner."""
    config, my = home / "config", home / "config" / "myFiles"
    one = lambda p: (1, p.stat().st_size)  # noqa: E731
    dbs = (my / "allsky.db", my / "db_data.json", my / "secrets.json")
    current = (config / "settings.json", config / "cc.json")  # stored under camera names
    cameras = [p for p in sorted(config.glob("settings_*.json")) + sorted(config.glob("cc_*.json"))
               if not any(p.samefile(c) for c in current)]
    overlay = [_walk(config / "overlay" / d)
               for d in ("myTemplates", "images", "imagethumbnails", "fonts", "config")]
    return {
        "core": _add(*map(one, current), *overlay, _walk(config / "modules"),
                     one(home / "env.json")),
        "databases": _add(*map(one, dbs)),
        "modules": _walk(my / "modules"),
        "cameras": _add(*map(one, cameras)),
        "uservariables": one(config / "uservariables.sh"),
        "remote": one(config / "remote_configuration.json"),
        "ssl": _walk(config / "ssl"),
        "myfiles": _walk(my, skip=(my / "modules", *dbs)),
        "darks": _walk(home / "darks"),
    }


def test_config_plan_matches_an_independent_count(site: Site) -> None:
    plan = _plan(site, "all", ALL_SECTIONS)
    expected = _expected_sections(site.home)
    got = {row["key"]: (row["files"], row["rawBytes"]) for row in plan["sections"]}
    assert got == expected
    assert [row["key"] for row in plan["sections"]][0] == "core"
    assert (plan["totals"]["files"], plan["totals"]["rawBytes"]) == _add(*expected.values())
    for row in plan["sections"]:
        assert row["shortdescription"] and row["description"] and row["estimatedBytes"] > 0
    assert plan["other"] == []


def test_images_plan_matches_an_independent_count(site: Site) -> None:
    plan = _plan(site, "img", "type: images\nfolders: all\n")
    images = site.home / "images"
    expected = {d.name: _walk(d) for d in sorted(images.iterdir()) if d.is_dir()}
    assert plan["allFolders"] is True
    assert {r["name"]: (r["files"], r["rawBytes"]) for r in plan["folders"]} == expected
    assert (plan["totals"]["files"], plan["totals"]["rawBytes"]) == _walk(images)


def test_share_of_some_folders_for_per_night_archives(site: Site) -> None:
    plan = _plan(site, "img", "type: images\nfolders: all\n")
    names = [r["name"] for r in plan["folders"]]
    whole = share(plan, names)
    assert whole["estimatedBytes"] == plan["totals"]["estimatedBytes"]
    assert whole["neededBytes"] == plan["space"]["neededBytes"]
    night = share(plan, names[:1])
    folder = plan["folders"][0]
    assert night["estimatedBytes"] == folder["estimatedBytes"] + plan["overhead"]["estimatedBytes"]
    assert night["estimatedBytes"] < night["neededBytes"] < whole["neededBytes"]


def test_selected_folders(site: Site) -> None:
    plan = _plan(site, "last", "type: images\nfolders: {last: 2}\n")
    assert plan["allFolders"] is False
    assert [r["name"] for r in plan["folders"]] == site.tree.nights[-2:]


def test_core_always_shown_with_the_camera_files(site: Site) -> None:
    plan = _plan(site, "quick", "type: config\n")
    assert [row["key"] for row in plan["sections"]] == ["core"]
    assert plan["sections"][0]["includes"] == ["config/settings_RPi_HQ.json",
                                               "config/cc_RPi_HQ.json"]
    assert plan["archivePattern"] == "allsky-config-backup-YYYYMMDD-HHMMSS.tar.zst"
    text = render_plan(plan)
    assert "config/settings_RPi_HQ.json" in text and "Core Files" in text


def test_plan_estimate_close_to_the_real_archive(site: Site) -> None:
    plan = _plan(site, "db", ALL_SECTIONS)
    archive = backup(site, "db2", ALL_SECTIONS)
    record = estimate_record(plan["totals"]["estimatedBytes"], archive.stat().st_size)
    assert abs(record["errorPercent"]) < 3
    assert record["actualBytes"] == archive.stat().st_size


@pytest.mark.parametrize("text, pause", [
    (ALL_SECTIONS, True), ("type: config\n", False),
    (ALL_SECTIONS + "service: {pause: never}\n", False),
    ("type: images\nservice: {pause: always}\n", True),
])
def test_service_decision(site: Site, text: str, pause: bool, real_pause: None) -> None:
    service = _plan(site, "svc", text)["service"]
    assert service["pause"] is pause
    assert service["unit"] == "allsky" and service["reason"]
    if text == ALL_SECTIONS:
        assert "database" in service["reason"]


def test_free_space_verdict_with_injected_figure(site: Site) -> None:
    tight = _plan(site, "tight", "type: images\n", free=1 << 20)
    assert tight["fits"] is False and tight["space"]["freeBytes"] == 1 << 20
    assert tight["space"]["neededBytes"] >= tight["totals"]["estimatedBytes"]
    assert "DOES NOT FIT" in render_plan(tight)
    roomy = _plan(site, "roomy", "type: images\n", free=1 << 40)
    assert roomy["fits"] is True and "fits" in render_plan(roomy)


def test_json_and_text_like_the_dialog(site: Site, real_pause: None) -> None:
    plan = _plan(site, "all", ALL_SECTIONS)
    assert json.loads(json.dumps(plan)) == plan
    text = render_plan(plan)
    for row in plan["sections"]:
        assert row["shortdescription"] in text
    assert re.search(r"\d+\.\d (B|KB|MB) \(est\. \d+\.\d (B|KB|MB)\)", text)
    assert "Total selected" in text and "free space at" in text and "service: pause" in text
    assert "Allsky's estimate (raw x 0.92)" in text


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `allsky-tasks plan` in a child process against the site."""
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "plan", *args],
                          env=site.environ(), cwd=site.root, text=True, capture_output=True,
                          timeout=120)


def test_cli_plans_every_spec(site: Site) -> None:
    site.spec("quick", "type: config\n")
    site.spec("nights", "type: images\nfolders: {last: 1}\n")
    proc = _cli(site, "--json")
    assert proc.returncode == 0, proc.stderr
    plans = json.loads(proc.stdout)
    assert [p["spec"] for p in plans] == ["nights", "quick"]
    text = _cli(site, "quick")
    assert text.returncode == 0 and "Core Files" in text.stdout and "(est. " in text.stdout


def test_cli_bad_spec_exits_with_its_code(site: Site) -> None:
    site.spec("good", "type: config\n")
    site.spec("bad", "type: config\nsections: {nonsense: true}\n")
    proc = _cli(site)
    assert proc.returncode == 10
    assert "bad.yaml::$.sections" in proc.stderr
    assert "Core Files" in proc.stdout  # the good spec is still planned
    missing = _cli(site, "no-such-spec")
    assert missing.returncode == 10 and "no-such-spec" in missing.stderr


def test_plan_says_how_media_are_compressed(site: Site) -> None:
    fast = _plan(site, "zfast", "type: images\nfolders: all\n")
    assert fast["mediaCompression"] == "fast"
    assert "zstd level 3, media fast (no entropy stage)" in render_plan(fast)
    level = _plan(site, "zlevel", "type: images\nfolders: all\nmedia_compression: level\n")
    gzip = _plan(site, "gz", "type: images\nfolders: all\nformat: allsky\n")
    assert gzip["mediaCompression"] is None
    for plan in (level, gzip):
        assert "media fast" not in render_plan(plan)
