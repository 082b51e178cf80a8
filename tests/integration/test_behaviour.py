"""Behaviour a new operator met: the free-space margin, stale validation, info, summaries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Site


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], env=site.environ(),
                          text=True, capture_output=True, timeout=300)


@pytest.fixture
def small_card(tmp_path: Path) -> Iterator[Path]:
    """A real 5 MiB filesystem (tmpfs): a nearly full SD card."""
    mount = tmp_path / "card"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the tests run as root): {proc.stderr}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_free_space_margin_is_a_setting_and_plan_exits_like_run(site: Site,
                                                                small_card: Path) -> None:
    base = f"type: config\nservice: {{pause: never}}\ndestination: {small_card}\n"
    site.spec("cfg", base)
    plan = _cli(site, "plan", "cfg")
    assert plan.returncode == 12, plan.stdout + plan.stderr  # the 64 MiB floor does not fit
    assert "DOES NOT FIT" in plan.stdout and "SpaceError" in plan.stderr
    assert "10 %, at least 64.0 MB" in plan.stdout
    run = _cli(site, "run", "backup:cfg")
    assert run.returncode == 12 and "free_space" in run.stdout + run.stderr
    assert not list(small_card.glob("allsky-*"))  # no archive, no partial file
    site.spec("cfg", base + "free_space: {margin_percent: 10, min_free_mb: 1}\n")
    assert _cli(site, "plan", "cfg").returncode == 0
    done = _cli(site, "run", "backup:cfg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(small_card.glob("allsky-config-backup-*.tar.zst"))) == 1


def test_removed_folder_makes_validate_run_again_and_plan_agrees_with_run(site: Site) -> None:
    night = site.tree.nights[0]
    site.spec("one", f"type: images\nfolders: [{night}]\nservice: {{pause: never}}\n")
    site.doit("backup:one", check=True)
    assert "-- validate:one" in site.doit("validate:one", check=True).stdout
    shutil.rmtree(site.tree.images / night)
    stale = site.doit("validate:one")
    assert stale.returncode != 0 and f"folder {site.tree.images / night} does not exist" in \
        stale.stdout
    assert _cli(site, "plan", "one").returncode == 10
    assert _cli(site, "run", "backup:one").returncode == 10


def test_doit_info_on_a_backup_task_works(site: Site) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    site.doit("backup:cfg", check=True)
    info = site.doit("info", "backup:cfg")
    assert info.returncode == 0, info.stdout + info.stderr
    assert "status     : up-to-date" in info.stdout and "evaluate to false" not in info.stdout


def test_up_to_date_summary_gives_run_time_not_the_old_pack_time(site: Site) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    first = site.doit("backup:cfg", check=True).stdout
    assert "new archive" in first and "packed in" in first and "run time" in first
    second = site.doit("backup:cfg", check=True).stdout
    assert "up to date, latest archive" in second and "run time" in second
    assert "packed in" not in second


def test_info_formats_sizes_and_small_sizes_have_no_decimals(site: Site) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    site.doit("backup:cfg", check=True)
    archive = site.archives()[0]
    out = _cli(site, "info", archive.name).stdout
    assert "Raw bytes" not in out and "Raw size:" in out and " bytes)" in out
    assert ".0 B" not in out
    from allsky_tasks.backup.space import format_bytes

    assert (format_bytes(0), format_bytes(129), format_bytes(1536)) == ("0 B", "129 B", "1.5 KB")


def test_service_permission_error_says_how_to_allow_it(site: Site, real_pause: None) -> None:
    """systemd's answer to a non-root stop, from a real command, gets the sudo hint."""
    refuse = ("echo 'Failed to stop allsky.service: Interactive authentication required.' >&2;"
              " exit 1")
    site.spec("cfg", "type: config\nservice:\n  pause: always\n  timeout: 5\n  commands:\n"
                     f"    stop: [sh, -c, \"{refuse}\"]\n    start: ['true']\n"
                     "    status: ['true']\n")
    proc = _cli(site, "run", "backup:cfg")
    assert proc.returncode == 15, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "Interactive authentication required" in text
    assert "passwordless sudo" in text and "[sudo, -n, systemctl, stop" in text
    assert site.archives() == []
