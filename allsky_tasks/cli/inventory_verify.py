"""`allsky-tasks verify`: re-read one backup, a per-night set or every backup end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InventoryError
from .inventory_common import env_dests, resolve_archive, table

__all__ = ["cmd_verify", "cmd_verify_all"]


def cmd_verify_all(args: argparse.Namespace) -> int:
    """Scrub every backup in the destinations; a table; exit 18 naming each failure."""
    from ..errors import VerifyError
    from ..inventory.full_read import verify_many
    from ..inventory.listing import archive_paths

    rows = []
    for dest in env_dests(args)[1]:
        rows += verify_many(archive_paths(dest))
    grid = [["Result", "Members", "Seconds", "Archive", "Problem"]] + [
        ["ok" if r["ok"] else "FAILED", str(r.get("members", "")), str(r.get("seconds", "")),
         r["archive"], "" if r["ok"] else (r["problems"] or ["?"])[0][:160]] for r in rows]
    print("\n".join(table(grid)) if rows else "no backups found")
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
    env, folders = env_dests(args)
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
        paths = [resolve_archive(args)]
    for path in paths:
        result = verify_backup(path)
        print(f"verify {path.name}: ok ({result['kind']}, {result['members']} members, "
              f"sha256 {result['sha256'][:16]}..., {result['seconds']}s): "
              f"{result['method']}")
    return 0
