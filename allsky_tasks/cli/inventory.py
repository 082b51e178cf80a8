"""`allsky-tasks list|info|verify|import|delete|pin|unpin|prune`: the backups in a folder."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .inventory_common import DEST_HELP
from .inventory_manage import cmd_delete, cmd_import, cmd_prune, pin_command
from .inventory_show import cmd_info, cmd_list
from .inventory_verify import cmd_verify


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add("pin", pin_command(True), "mark a backup as known-good (prune never deletes it)")
    add("unpin", pin_command(False), "remove the known-good mark")
    p = add("prune", cmd_prune, "delete old backups by the specs' retention (keep_last/daily/weekly/monthly)", False)
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--keep-last", type=int, metavar="N",
                   help="keep the newest N of every spec (overrides the spec files)")
