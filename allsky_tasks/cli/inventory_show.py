"""`allsky-tasks list|info`: show the backups in the folders, and what one of them holds."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..environment import Environment, from_environ, spec_files
from .inventory_common import env_dests, human_size, resolve_archive, table, verified_text, verify_every

if TYPE_CHECKING:
    from ..inventory.record import Record

__all__ = ["cmd_info", "cmd_list"]

_COLUMNS = ("Backup Date/Time", "Type", "Version", "Camera Type", "Camera Model", "Size",
            "Pinned", "Verified", "Spec", "Name")


def _config_backup_cmd(env: Environment) -> str:
    """The command that makes a config backup: a config spec of this install if there is one."""
    for path in spec_files(env.specs_dir):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if any(line.strip() == "type: config" for line in text.splitlines()):
            return f"allsky-tasks run backup:{path.stem}"
    return "allsky-tasks run backup"


def _collapse_sets(group: list[Record], each: bool) -> list[Record]:
    """One row per per-night set (the set is one backup), unless each archive is wanted."""
    from dataclasses import replace

    from ..inventory.record import set_members

    if each:
        return group
    rows, done = [], set()
    for r in group:
        name = r.night_set
        if name is None:
            rows.append(r)
        elif name not in done:
            done.add(name)
            members = set_members(group, name)
            verified = [m.verified for m in members]
            rows.append(replace(
                r, created=max(m.created for m in members), size=sum(m.size for m in members),
                pinned=any(m.pinned for m in members),
                verified=None if None in verified else all(verified),
                stale=any(m.stale for m in members),
                problem=next((m.problem for m in members if m.problem), None),
                path=r.path.with_name(f"set:{name} ({len(members)} nights)")))
    return rows


def _spec_cell(r: Record, each: bool) -> str:
    """The Spec column; with --archives a per-night archive also names its night."""
    from ..inventory.record import namespace

    if each and r.night_set is not None:
        return f"{r.spec} night {namespace(r.metadata)['perNight'].get('folder', '?')}"
    return r.spec


def cmd_list(args: argparse.Namespace) -> int:
    """Print the grouped table and the warnings (or JSON)."""
    from ..inventory.advice import listing_warnings
    from ..inventory.destinations import list_everywhere
    from ..inventory.full_read import mark_stale

    env, folders = env_dests(args)
    dest = folders[0]
    if getattr(args, "target", None):  # what a copy target holds (cli/copies.py)
        from .copies import cmd_list_target

        return cmd_list_target(args, env, dest)
    records = list_everywhere(folders)
    mark_stale(records, *verify_every(env))
    warnings = listing_warnings(records, dest, env.home, args.max_age_days,
                                backup_cmd=_config_backup_cmd(env))
    if args.json:
        print(json.dumps({"destination": str(dest), "destinations": [str(f) for f in folders],
                          "backups": [r.to_json() for r in records],
                          "warnings": [w.__dict__ for w in warnings]}, indent=2))
        return 0
    several = len({r.path.parent for r in records}) > 1
    print(f"Backups in {', '.join(str(f) for f in folders)}")
    print("(sizes as Allsky shows them: 1 KB = 1024 bytes, 1 MB = 1024 KB)")
    for kind, title in (("config", "Config"), ("images", "Images"), ("unknown", "Unreadable")):
        group = [r for r in records if r.type == kind]
        if not group and kind == "unknown":
            continue
        print(f"\n{title} Backups ({len(group)})")
        if group:
            rows = [list(_COLUMNS)] + [
                [r.created, title if kind != "unknown" else "?", r.version, r.cameratype,
                 r.cameramodel, human_size(r.size), "yes" if r.pinned else "no",
                 "DAMAGED" if r.problem else verified_text(r.verified, r.verified_at, r.stale),
                 _spec_cell(r, args.archives),
                 str(r.path) if several and not r.path.name.startswith("set:") else r.name]
                for r in _collapse_sets(group, args.archives)]
            print("\n".join("  " + line for line in table(rows)))
    from .copies import copies_lines, drop_solved_advice

    for line in copies_lines(dest, [r.name for r in records]):
        print(line)
    warnings = drop_solved_advice(warnings, dest, [r.name for r in records])
    for w in warnings:
        print(f"\nWARNING: {w.message}\n  fix: {w.command}")
    return 0


def _print_info(data: dict[str, Any]) -> None:
    """The Info panel as text."""
    def line(label: str, value: Any) -> None:
        if value not in (None, [], ""):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            print(f"  {label + ':':<22} {shown}")

    print(f"Backup {data['name']}")
    line("Type", data["type"].capitalize())
    line("Created", data["created"])
    line("Version", data["version"])
    if data["type"] == "config":
        line("Camera", f"{data['cameratype']} / {data['cameramodel']}")
        line("Settings file", data["settingsfile"])
        line("CC file", data["ccfile"])
        line("Sections", data["sections"])
        line("Required modules", data["requiredModules"])
        line("Modules in backup", data["backupModules"])
    else:
        line("Image folders", "All folders" if data["imageBackupAll"] else data["imageFolders"])
        if data["imageBackupAll"]:
            line("Folders", data["imageFolders"])
    line("Files", data["files"])
    if isinstance(data["rawBytes"], int):
        line("Raw size", f"{human_size(data['rawBytes'])} ({data['rawBytes']:,} bytes)")
    line("Size", f"{human_size(data['size'])} ({data['size']:,} bytes)")
    estimate = data.get("estimate")
    if isinstance(estimate, dict) and isinstance(estimate.get("estimatedBytes"), int):
        line("Estimated size", f"{human_size(estimate['estimatedBytes'])} (real "
                               f"{human_size(data['size'])}, error "
                               f"{estimate.get('errorPercent', '?')}%)")
    elif estimate is not None:
        line("Estimated size", json.dumps(estimate))
    for db in data["databases"] or []:
        if isinstance(db, dict):
            line("Database", f"{db.get('path')}: {db.get('method')}, integrity "
                             f"{db.get('integrity')}")
    line("Spec", data["spec"])
    line("Pinned", "yes" if data["pinned"] else "no")
    check = data.get("verify") or {}
    line("Verified", verified_text(data["verified"], check.get("verifiedAt"), bool(data.get("stale"))
                               ) + (" (older than the spec's verify.every: due again)"
                                    if data.get("stale") and data["verified"] else ""))
    for problem in check.get("problems") or []:
        line("Why not verified", problem)
    if data.get("imported"):
        line("Imported from", f"{data['imported'].get('from')} at {data['imported'].get('at')}")
    line("Warnings", data["warnings"])
    if data.get("problem"):
        line("PROBLEM", data["problem"])


def cmd_info(args: argparse.Namespace) -> int:
    """Show what is inside one backup."""
    from ..inventory.listing import info

    env = from_environ()
    data = info(resolve_archive(args))
    if data.get("verified_epoch") is not None:
        import time

        every, default = verify_every(env)
        limit = every.get(data["spec"], default)
        data["stale"] = limit is not None and time.time() - data["verified_epoch"] >= limit
        if isinstance(data.get("verify"), dict):
            data["verify"]["stale"] = data["stale"]
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_info(data)
    return 0
