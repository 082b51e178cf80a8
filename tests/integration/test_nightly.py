"""Per-night archives: a new night costs one archive, closed nights are left alone."""

from __future__ import annotations

import json
import shutil

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site, archive_metadata, last_read

SPEC = "type: images\nfolders: all\nper_night: true\nservice: {pause: never}\n"


def _by_night(site: Site) -> dict[str, list]:
    """night -> archives holding it (from each archive's own metadata)."""
    out: dict[str, list] = {}
    for archive in site.archives():
        meta = archive_metadata(archive)
        assert meta["imageBackupAll"] is False and len(meta["imageFolders"]) == 1
        assert meta["allskyTasks"]["perNight"]["set"] == "nights"
        out.setdefault(meta["imageFolders"][0], []).append(archive)
    return out


def test_one_archive_per_night_then_only_the_new_night(site: Site) -> None:
    site.spec("nights", SPEC)
    site.doit("backup:nights", check=True)
    first = _by_night(site)
    assert sorted(first) == sorted(site.tree.nights + ["test_stretches"])
    stamps = {a: (a.stat().st_ino, a.stat().st_mtime_ns) for a in site.archives()}
    new_night = site.tree.images / "29990101"
    shutil.copytree(site.tree.images / site.tree.nights[0], new_night)
    out = site.doit("backup:nights", check=True).stdout
    after = _by_night(site)
    added = set(site.archives()) - set(stamps)
    assert len(added) == 1 and after["29990101"] == list(added)
    for archive, stamp in stamps.items():
        assert (archive.stat().st_ino, archive.stat().st_mtime_ns) == stamp
    assert out.count("verify nights:") == 1
    for archive in added:
        assert last_read(archive)["ok"]


def test_changed_old_night_and_deleted_archive_are_repacked_alone(site: Site) -> None:
    site.spec("nights", SPEC)
    site.doit("backup:nights", check=True)
    night = site.tree.nights[1]
    frame = next((site.tree.images / night).glob("image-*.jpg"))
    frame.write_bytes(frame.read_bytes() + b"\0")
    site.doit("backup:nights", check=True)
    counts = {n: len(a) for n, a in _by_night(site).items()}
    assert counts.pop(night) == 2 and set(counts.values()) == {1}
    victim = _by_night(site)[site.tree.nights[0]][0]
    victim.unlink()
    sidecar_path(victim).unlink()
    site.doit("backup:nights", check=True)
    assert len(_by_night(site)[site.tree.nights[0]]) == 1
    assert sum(len(a) for a in _by_night(site).values()) == len(site.tree.nights) + 1 + 1


def test_nothing_changed_means_nothing_packed(site: Site) -> None:
    site.spec("nights", SPEC)
    site.doit("backup:nights", check=True)
    before = site.archives()
    out = site.doit("backup:nights", check=True).stdout
    assert site.archives() == before and "-- pack:nights" in out


def test_the_set_lists_and_verifies_as_one_backup(site: Site) -> None:
    import subprocess
    import sys

    site.spec("nights", SPEC)
    site.doit("backup:nights", check=True)

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "allsky_tasks", *args], env=site.environ(),
                              text=True, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    nights = len(site.tree.nights) + 1
    listing = cli("list")
    assert listing.count(f"set:nights ({nights} nights)") == 1
    assert f"Images Backups ({nights})" in listing  # the count is of archives
    assert cli("list", "--archives").count("allsky-images-backup-") == nights
    assert cli("verify", "set:nights").count(": ok (ours") == nights
    rows = json.loads(cli("list", "--json"))["backups"]
    assert {r["set"] for r in rows} == {"nights"}


def test_the_set_restores_as_one_backup(site: Site) -> None:
    import subprocess
    import sys

    from ..conftest import tree_state

    site.spec("nights", SPEC)
    site.doit("backup:nights", check=True)
    before = tree_state(site.tree.images)
    first, second = site.tree.nights[0], site.tree.nights[1]
    for night in (first, second):
        victim = next((site.tree.images / night).glob("image-*.jpg"))
        victim.unlink()
    (site.tree.images / first / "keogram" / f"keogram-{first}.jpg").write_bytes(b"broken")

    def restore(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "allsky_tasks", "restore", "set:nights",
                               "--yes", "--no-undo", *args], env=site.environ(), text=True,
                              capture_output=True, timeout=300)

    dry = restore("--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count("Dry run: nothing was changed") == len(site.tree.nights) + 1
    assert tree_state(site.tree.images) != before  # the dry run changed nothing
    only_first = restore("--folders", first)
    assert only_first.returncode == 0, only_first.stdout + only_first.stderr
    after = tree_state(site.tree.images)
    assert {k: v for k, v in after.items() if k.startswith(first)} == \
        {k: v for k, v in before.items() if k.startswith(first)}
    assert after != before  # the second night was not asked for
    everything = restore()
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert tree_state(site.tree.images) == before
