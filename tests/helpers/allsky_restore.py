"""Allsky's own restore (restoreBackupArchive in configbackuputil.php), step by step, for tests.

It runs what Allsky's PHP runs, with the same arguments: GNU tar extracts the targets without
owners or modes (`--no-same-owner --no-same-permissions`, so the umask decides), the settings
and cc hard links are re-made, then `chown` and `chmod` are run, in batches of 120 and without
`-h`, on every path of metadata.json's `permissions` map below the targets (so through links).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from allsky_tasks.spec.sections import BY_KEY

__all__ = ["allsky_restore", "allsky_targets"]

_BATCH = 120


def _listing(archive: Path) -> list[str]:
    """`tar -tzf`, as listArchiveEntries reads it."""
    out = subprocess.run(["tar", "-tzf", str(archive)], check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _metadata(archive: Path) -> dict[str, Any]:
    """metadata.json by `tar -xOf`, as getArchiveMetadata reads it when there is no sidecar."""
    out = subprocess.run(["tar", "-xOf", str(archive), "metadata.json"], check=True,
                         capture_output=True)
    meta = json.loads(out.stdout)
    assert isinstance(meta, dict)
    return meta


def allsky_targets(archive: Path, meta: dict[str, Any], folders: list[str] | None = None) -> list[str]:
    """What Allsky extracts for a normal restore of every included section."""
    if meta.get("backupType") == "images":
        targets = sorted(meta.get("imageTargets") or ["images"])
        if folders:  # selected folders, kept where they meet the metadata's targets
            chosen = [f"images/{f}" for f in folders]
            targets = [w for w in chosen if any(w == t or w.startswith(t + "/") or t.startswith(w + "/")
                                                for t in targets)]
        return targets
    wanted: list[str] = []
    for key in ["core", *meta.get("includedOptionalTargets", [])]:
        for path in BY_KEY[key].paths:
            wanted.append({"{settingsfile}": meta["settingsfile"], "{ccfile}": meta["ccfile"]}
                          .get(path, path))
    entries = _listing(archive)
    return sorted({t for t in wanted if any(e == t or e.startswith(t + "/") for e in entries)})


def _owner(home: Path) -> str:
    """ALLSKY_OWNER as Allsky resolves the token (variables.json)."""
    data = json.loads((home / "variables.json").read_text(encoding="utf-8"))
    owner = data.get("ALLSKY_OWNER", "")
    assert isinstance(owner, str) and owner, "variables.json names no ALLSKY_OWNER"
    return owner


def _batches(tool: str, groups: dict[str, list[str]]) -> None:
    """Run `tool ARG paths...` per group, 120 paths at a time; any failure fails the restore."""
    for arg, paths in groups.items():
        for start in range(0, len(paths), _BATCH):
            proc = subprocess.run([tool, arg, *paths[start:start + _BATCH]], capture_output=True,
                                  text=True)
            assert proc.returncode == 0, f"Allsky's restore fails at {tool} {arg}: {proc.stdout}{proc.stderr}"


def allsky_restore(archive: Path, home: Path, folders: list[str] | None = None) -> list[str]:
    """Restore an archive into `home` as Allsky's WebUI does; return the targets it extracted."""
    meta = _metadata(archive)
    targets = allsky_targets(archive, meta, folders)
    assert targets, "Selected restore sections do not contain any files in this backup."
    proc = subprocess.run(
        ["sh", "-c", 'umask 022 && exec tar "$@"', "tar", "-xzf", str(archive), "-C", str(home),
         "--no-same-owner", "--no-same-permissions", "--overwrite", "-m",
         "--exclude=metadata.json", *targets], capture_output=True, text=True)
    assert proc.returncode == 0, f"Restore failed. {proc.stdout}{proc.stderr}"
    if meta.get("backupType") != "images":
        for link, named in (("config/settings.json", meta["settingsfile"]),
                            ("config/cc.json", meta["ccfile"])):
            assert (home / named).is_file(), f"Restored settings file '{named}' is missing"
            (home / link).unlink(missing_ok=True)
            os.link(home / named, home / link)
    perms = meta.get("permissions") or {}
    owner = _owner(home)
    chown: dict[str, list[str]] = {}
    chmod: dict[str, list[str]] = {}
    for rel, info in sorted(perms.items()):
        if not any(rel == t or rel.startswith(t + "/") for t in targets):
            continue
        full = home / rel
        if not (full.exists() or full.is_symlink()):  # file_exists() || is_link()
            continue
        user = owner if info.get("owner") == "ALLSKY_OWNER" else str(info.get("owner", ""))
        chown.setdefault(f"{user}:{info.get('group', '')}", []).append(str(full))
        mode = str(info.get("mode", ""))
        if len(mode) in (3, 4) and set(mode) <= set("01234567"):
            chmod.setdefault(mode, []).append(str(full))
    _batches("chown", chown)
    _batches("chmod", chmod)
    return targets
