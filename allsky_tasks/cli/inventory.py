"""`allsky-tasks list|info|verify|import|delete|pin|unpin|prune`: the backups in a folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from ..environment import Environment, from_environ, spec_files
from ..errors import InventoryError

DEST_HELP = ("only this backup folder (default: ALLSKY_BACKUP_DIR, else allskybackups beside "
             "the Allsky home, e.g. ~/allskybackups, plus every spec's destination:)")
_COLUMNS = ("Backup Date/Time", "Type", "Version", "Camera Type", "Camera Model", "Size",
            "Pinned", "Verified", "Spec", "Name")


def human_size(size: int) -> str:
    """Allsky's convention: 1024-based, labelled B/KB/MB/GB (1 KB = 1024 bytes)."""
    from ..backup.space import format_bytes

    return format_bytes(size)


def _verified(ok: bool | None, when: str | None = None, stale: bool = False) -> str:
    """Verified column text: the result and the day of the last full read."""
    if ok is None:
        return "never"
    day = f" {when[:10]}" if when else ""
    return ("FAILED" if not ok else "STALE" if stale else "yes") + day


def _verify_every(env: Environment) -> tuple[dict[str, float | None], float | None]:
    """verify.every of each spec (by name) and the default, in seconds."""
    from ..archive.records import DEFAULT_EVERY, parse_duration
    from ..spec.load import read_yaml

    every: dict[str, float | None] = {}
    for path in spec_files(env.specs_dir):
        try:
            data = read_yaml(path)
            value = (data.get("verify") or {}).get("every", DEFAULT_EVERY)
            every[path.stem] = parse_duration(value)
        except Exception:  # a broken spec is validate's to report; list still works
            continue
    return every, parse_duration(DEFAULT_EVERY)


def _table(rows: list[list[str]]) -> list[str]:
    """Rows as aligned text columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _env_dest(args: argparse.Namespace) -> tuple[Environment, Path]:
    """The environment and the one folder written to (import): --dest, else ALLSKY_BACKUP_DIR."""
    env = from_environ()
    return env, Path(args.dest).absolute() if getattr(args, "dest", None) else env.backup_dir


def _env_dests(args: argparse.Namespace) -> tuple[Environment, list[Path]]:
    """The environment and every folder looked in: --dest, else ALLSKY_BACKUP_DIR + the specs'."""
    from ..inventory.destinations import destinations

    env = from_environ()
    return env, destinations(env, getattr(args, "dest", None))


def _resolve(args: argparse.Namespace) -> Path:
    """The ARCHIVE argument found in any of the folders."""
    from ..inventory.destinations import resolve_everywhere

    return resolve_everywhere(args.archive, _env_dests(args)[1])


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


def _collapse_sets(group: list, each: bool) -> list:
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


def _spec_cell(r: Any, each: bool) -> str:
    """The Spec column; with --archives a per-night archive also names its night."""
    from ..inventory.record import namespace

    if each and r.night_set is not None:
        return f"{r.spec} night {namespace(r.metadata)['perNight'].get('folder', '?')}"
    return r.spec


def cmd_list(args: argparse.Namespace) -> int:
    """Print the grouped table and the warnings (or JSON)."""
    from ..inventory.destinations import list_everywhere
    from ..inventory.advice import listing_warnings

    from ..inventory.full_read import mark_stale

    env, folders = _env_dests(args)
    dest = folders[0]
    if getattr(args, "target", None):  # what a copy target holds (cli/copies.py)
        from .copies import cmd_list_target

        return cmd_list_target(args, env, dest)
    records = list_everywhere(folders)
    mark_stale(records, *_verify_every(env))
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
                 "DAMAGED" if r.problem else _verified(r.verified, r.verified_at, r.stale),
                 _spec_cell(r, args.archives),
                 str(r.path) if several and not r.path.name.startswith("set:") else r.name]
                for r in _collapse_sets(group, args.archives)]
            print("\n".join("  " + line for line in _table(rows)))
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
    line("Verified", _verified(data["verified"], check.get("verifiedAt"), data.get("stale")
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
    data = info(_resolve(args))
    if data.get("verified_epoch") is not None:
        import time

        every, default = _verify_every(env)
        limit = every.get(data["spec"], default)
        data["stale"] = limit is not None and time.time() - data["verified_epoch"] >= limit
        if isinstance(data.get("verify"), dict):
            data["verify"]["stale"] = data["stale"]
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_info(data)
    return 0


def cmd_verify_all(args: argparse.Namespace) -> int:
    """Scrub every backup in the destinations; a table; exit 18 naming each failure."""
    from ..errors import VerifyError
    from ..inventory.full_read import verify_many
    from ..inventory.listing import archive_paths

    rows = []
    for dest in _env_dests(args)[1]:
        rows += verify_many(archive_paths(dest))
    table = [["Result", "Members", "Seconds", "Archive", "Problem"]] + [
        ["ok" if r["ok"] else "FAILED", str(r.get("members", "")), str(r.get("seconds", "")),
         r["archive"], "" if r["ok"] else (r["problems"] or ["?"])[0][:160]] for r in rows]
    print("\n".join(_table(table)) if rows else "no backups found")
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise VerifyError(f"{len(failed)} of {len(rows)} backups",
                          [f"{Path(r['archive']).name}: {p}" for r in failed
                           for p in r["problems"][:5]])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify one backup end to end and record the result."""
    from ..inventory.full_read import verify_backup

    if args.all:
        return cmd_verify_all(args)
    if not args.archive:
        raise InventoryError("verify needs an ARCHIVE, or --all",
                             hint="allsky-tasks list shows the backups")
    env, folders = _env_dests(args)
    if getattr(args, "target", None):  # re-read a copy at a target (cli/copies.py)
        from .copies import cmd_verify_target

        return cmd_verify_target(args, env, folders[0])
    if args.archive.startswith("set:"):  # every archive of a per-night set
        from ..inventory.destinations import list_everywhere
        from ..inventory.record import set_members

        paths = [r.path for r in set_members(list_everywhere(folders), args.archive[4:])]
        if not paths:
            raise InventoryError(f"no per-night set {args.archive[4:]!r} in "
                                 f"{', '.join(str(f) for f in folders)}",
                                 hint="allsky-tasks list shows the sets")
    else:
        paths = [_resolve(args)]
    for path in paths:
        result = verify_backup(path)
        print(f"verify {path.name}: ok ({result['kind']}, {result['members']} members, "
              f"sha256 {result['sha256'][:16]}..., {result['seconds']}s): "
              f"{result['method']}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Check an outside archive and store it."""
    from ..inventory.importer import import_archive
    from ..progress import tracked

    from ..inventory.duplicates import already_stored

    _, dest = _env_dest(args)
    src = Path(args.file)
    for folder in _env_dests(args)[1]:  # the same bytes stored in any backup folder
        same = already_stored(src, folder) if src.is_file() else None
        if same is not None:
            print(f"{args.file} is already stored as {same.name} in {folder} (same SHA-256); "
                  "nothing imported")
            return 0
    total = src.stat().st_size if src.is_file() else 0
    with tracked(src.name, "import", total) as progress:
        result = import_archive(src, dest, on_bytes=lambda n: progress.update(n, src.name))
        progress.finish(archive=str(result.path), duplicate=result.duplicate,
                        members=result.report.members if result.report else None)
    if result.duplicate or result.report is None:
        print(f"{args.file} is already stored as {result.path.name} in {dest} (same "
              "SHA-256); nothing imported")
        return 0
    r = result.report
    print(f"imported {args.file} as {result.path} ({r.kind} {r.metadata.get('backupType')} "
          f"backup, {r.members} members, {human_size(r.size)}, checked in {r.seconds}s)")
    return 0


def _confirm(question: str, yes: bool) -> bool:
    """Ask on the terminal unless --yes; no answer (EOF) is no."""
    if yes:
        return True
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete one backup and its sidecar."""
    from ..inventory.listing import delete_backup, load_record

    path = _resolve(args)
    if load_record(path).pinned and not args.force:
        raise InventoryError(f"{path.name} is pinned as known-good; not deleted",
                             hint=f"`allsky-tasks unpin {path.name}` first, or delete it with "
                                  "--force")
    if not _confirm(f'Delete backup "{path.name}"?', args.yes):
        print("not deleted")
        return 1
    print(f"deleted {', '.join(delete_backup(path))}")
    return 0


def _pin(pinned: bool) -> Callable[[argparse.Namespace], int]:
    """pin/unpin command."""
    def run(args: argparse.Namespace) -> int:
        from ..inventory.retention import set_pinned

        record = set_pinned(_resolve(args), pinned)
        print(f"{record.name}: {'pinned' if pinned else 'unpinned'}")
        if pinned and not record.verified:
            print(f"  not verified yet: run `allsky-tasks verify {record.name}`")
        return 0
    return run


def cmd_prune(args: argparse.Namespace) -> int:
    """Show the retention plan for every folder; delete what it says unless --dry-run."""
    env, folders = _env_dests(args)
    code = 0
    for dest in folders:
        if len(folders) > 1:
            print(f"{dest}:")
        code = max(code, _prune_folder(dest, env, args))
    return code


def _prune_folder(dest: Path, env: Environment, args: argparse.Namespace) -> int:
    """Prune one folder."""
    from ..inventory.retention import prune

    plan = prune(dest, env, args.keep_last, dry_run=True)
    for note in plan.notes:
        print(f"note: {note}")
    for d in plan.decisions:
        print(f"  {'DELETE' if d.delete else 'keep  '}  {d.name}  ({d.reason})")
    if not plan.to_delete:
        print("nothing to prune")
        return 0
    if args.dry_run:
        print(f"dry run: {len(plan.to_delete)} backup(s) would be deleted, freeing "
              f"{human_size(plan.bytes_to_free)} ({plan.bytes_to_free} bytes)")
        return 0
    if not _confirm(f"Delete {len(plan.to_delete)} backup(s), freeing "
                    f"{human_size(plan.bytes_to_free)}?", args.yes):
        print("nothing deleted")
        return 1
    done = prune(dest, env, args.keep_last, dry_run=False)
    for note in done.notes[len(plan.notes):]:
        print(f"note: {note}")
    print(f"deleted {len(done.deleted)} file(s): {', '.join(done.deleted)}")
    return 0


def register(subs: argparse._SubParsersAction) -> None:
    """Add the inventory commands."""
    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str,
            archive: bool = True) -> argparse.ArgumentParser:
        p = subs.add_parser(name, help=help_, description=help_)
        if archive:
            p.add_argument("archive", metavar="ARCHIVE",
                           help="a backup name in the destination, or a path")
        p.add_argument("--dest", metavar="DIR", help=DEST_HELP if name != "import" else
                       "folder to store the archive in (default: ALLSKY_BACKUP_DIR, else "
                       "allskybackups beside the Allsky home, e.g. ~/allskybackups)")
        p.set_defaults(func=func)
        return p

    p = add("list", cmd_list, "list the backups, grouped by type, newest first", False)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--max-age-days", type=float, default=30, metavar="N",
                   help="warn when the newest config backup is older (default 30)")
    p.add_argument("--archives", action="store_true",
                   help="one row per archive (a per-night set is otherwise one row)")
    p.add_argument("--target", metavar="NAME",
                   help="list what a copy target holds (a spec's copies name, "
                        "ssh://user@host/folder or a folder)")
    add("info", cmd_info, "show what is inside a backup").add_argument(
        "--json", action="store_true", help="machine-readable output")
    p = add("verify", cmd_verify, "re-read a backup end to end and record the result", False)
    p.add_argument("archive", metavar="ARCHIVE", nargs="?",
                   help="a backup name in the destination, or a path")
    p.add_argument("--all", action="store_true",
                   help="every backup in --dest (default: the backup folder and every "
                        "spec's destination); a table; exit 18 if any fails")
    p.add_argument("--target", metavar="NAME", help="re-read the copy at this copy target instead")
    p = add("import", cmd_import, "check an outside .tar.gz/.tar.zst and store it", False)
    p.add_argument("file", metavar="FILE", help="the archive to import")
    p = add("delete", cmd_delete, "delete a backup and its sidecar")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--force", action="store_true", help="delete it even if it is pinned")
    add("pin", _pin(True), "mark a backup as known-good (prune never deletes it)")
    add("unpin", _pin(False), "remove the known-good mark")
    p = add("prune", cmd_prune, "delete old backups by the specs' retention (keep_last/daily/weekly/monthly)", False)
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--keep-last", type=int, metavar="N",
                   help="keep the newest N of every spec (overrides the spec files)")
