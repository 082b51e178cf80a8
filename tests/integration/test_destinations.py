"""Inventory across destinations: a spec's own `destination:` is seen by every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..conftest import Site

USB = "usb/allskybackups"


def _cli(site: Site, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "allsky_tasks", *args], env=site.environ(),
                          text=True, capture_output=True, timeout=300)
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _usb_site(site: Site) -> Path:
    """A per-night images spec and a config spec that both write to a 'USB' folder."""
    usb = site.root / USB
    site.spec("nights", "type: images\nfolders: all\nper_night: true\nservice: {pause: never}\n"
                        f"destination: {usb}\n")
    site.spec("cfg", f"type: config\nservice: {{pause: never}}\ndestination: {usb}\n")
    site.doit("backup:nights", "backup:cfg", check=True)
    return usb


def test_per_night_archive_names_hold_their_night(site: Site) -> None:
    usb = _usb_site(site)
    names = sorted(p.name for p in usb.glob("allsky-images-backup-*.tar.zst"))
    nights = sorted(site.tree.nights + ["test_stretches"])
    assert sorted(n.split("-night-")[1].removesuffix(".tar.zst") for n in names) == nights


def test_every_inventory_command_sees_the_spec_destination(site: Site) -> None:
    usb = _usb_site(site)
    assert not list(site.env.backup_dir.glob("allsky-*.tar.*"))  # nothing in ALLSKY_BACKUP_DIR
    night = site.tree.nights[0]
    listing = _cli(site, "list").stdout
    assert str(usb) in listing and "set:nights" in listing
    assert "No config backup" not in listing  # the config spec's backup in the USB folder counts
    archives = _cli(site, "list", "--archives").stdout
    assert f"nights night {night}" in archives  # each archive of the set names its night
    cfg = next(usb.glob("allsky-config-backup-*.tar.zst"))
    assert "Backup " + cfg.name in _cli(site, "info", cfg.name).stdout
    assert ": ok (ours" in _cli(site, "verify", cfg.name).stdout
    assert _cli(site, "verify", "set:nights").stdout.count(": ok (ours") == len(nights_of(usb))
    dry = _cli(site, "restore", "set:nights", "--folders", night, "--dry-run", "--no-service")
    assert "Dry run: nothing was changed" in dry.stdout
    _cli(site, "pin", cfg.name)
    pins = json.loads((usb / ".allsky-tasks" / "pins.json").read_text())["pins"]
    assert pins[cfg.name]["pinned"] is True  # in that folder's own state, not the sidecar
    assert "keep" in _cli(site, "prune", "--dry-run").stdout
    rows = json.loads(_cli(site, "list", "--json").stdout)
    assert str(usb) in rows["destinations"] and len(rows["backups"]) == len(nights_of(usb)) + 1


def nights_of(usb: Path) -> list[Path]:
    """The per-night archives in a folder."""
    return sorted(usb.glob("allsky-images-backup-*-night-*.tar.zst"))


def test_dest_narrows_every_command_to_one_folder(site: Site) -> None:
    usb = _usb_site(site)
    cfg = next(usb.glob("allsky-config-backup-*.tar.zst"))
    home_only = _cli(site, "list", "--dest", str(site.env.backup_dir)).stdout
    assert cfg.name not in home_only and "No config backup" in home_only
    failed = _cli(site, "info", cfg.name, "--dest", str(site.env.backup_dir), code=20)
    assert "InventoryError" in failed.stderr and str(site.env.backup_dir) in failed.stderr
    _cli(site, "restore", cfg.name, "--dest", str(site.env.backup_dir), "--dry-run",
         "--no-service", code=20)
    assert "Dry run" in _cli(site, "restore", cfg.name, "--dest", str(usb), "--dry-run",
                             "--no-service").stdout
    missing = _cli(site, "restore", "set:nights", "--folders", "19990101", "--dry-run", code=21)
    assert str(usb) in missing.stderr  # names every folder it looked in


def test_import_finds_the_same_file_in_a_spec_destination(site: Site, tmp_path: Path) -> None:
    import shutil

    usb = _usb_site(site)
    cfg = next(usb.glob("allsky-config-backup-*.tar.zst"))
    outside = tmp_path / "download" / cfg.name
    outside.parent.mkdir()
    shutil.copyfile(cfg, outside)
    proc = _cli(site, "import", str(outside))
    assert f"is already stored as {cfg.name} in {usb}" in proc.stdout
    assert not list(site.env.backup_dir.glob("allsky-*.tar.*"))
