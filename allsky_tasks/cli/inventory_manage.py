"""`allsky-tasks import|delete|pin|unpin|prune`: change which backups a folder holds."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..environment import Environment
from ..errors import InventoryError
from .inventory_common import confirm, env_dest, env_dests, human_size, resolve_archive

__all__ = ["cmd_delete", "cmd_import", "cmd_prune", "pin_command"]


def cmd_import(args: argparse.Namespace) -> int:
    """Check an outside archive and store it."""
    from ..inventory.duplicates import already_stored
    from ..inventory.importer import import_archive
    from ..progress import tracked

    _, dest = env_dest(args)
    src = Path(args.file)
    for folder in env_dests(args)[1]:  # the same bytes stored in any backup folder
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


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete one backup and its sidecar."""
    from ..inventory.listing import delete_backup, load_record

    path = resolve_archive(args)
    if load_record(path).pinned and not args.force:
        raise InventoryError(f"{path.name} is pinned as known-good; not deleted",
                             hint=f"`allsky-tasks unpin {path.name}` first, or delete it with "
                                  "--force")
    if not confirm(f'Delete backup "{path.name}"?', args.yes):
        print("not deleted")
        return 1
    print(f"deleted {', '.join(delete_backup(path))}")
    return 0


def pin_command(pinned: bool) -> Callable[[argparse.Namespace], int]:
    """pin/unpin command."""
    def run(args: argparse.Namespace) -> int:
        from ..inventory.retention import set_pinned

        record = set_pinned(resolve_archive(args), pinned)
        print(f"{record.name}: {'pinned' if pinned else 'unpinned'}")
        if pinned and not record.verified:
            print(f"  not verified yet: run `allsky-tasks verify {record.name}`")
        return 0
    return run


def cmd_prune(args: argparse.Namespace) -> int:
    """Show the retention plan for every folder; delete what it says unless --dry-run."""
    env, folders = env_dests(args)
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
    if not confirm(f"Delete {len(plan.to_delete)} backup(s), freeing "
                    f"{human_size(plan.bytes_to_free)}?", args.yes):
        print("nothing deleted")
        return 1
    done = prune(dest, env, args.keep_last, dry_run=False)
    for note in done.notes[len(plan.notes):]:
        print(f"note: {note}")
    print(f"deleted {len(done.deleted)} file(s): {', '.join(done.deleted)}")
    return 0
