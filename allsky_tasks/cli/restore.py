"""`allsky-tasks restore ARCHIVE`: pre-restore checks, then a dry-run listing or the restore."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backup.space import format_bytes
from ..environment import default_backup_dir, expand, from_environ

if TYPE_CHECKING:  # the restore machinery is imported only when a restore runs
    from ..restore.prepare import Prepared
    from ..restore.summary import RestoreSummary

_SHOWN_FILES = 40


def _csv(text: str) -> list[str]:
    """a,b,,c -> [a, b, c]."""
    return [part.strip() for part in text.split(",") if part.strip()]


# Every list option accumulates: `--folders A --folders B,C` is A, B and C (action "extend"
# adds the items of each occurrence), never only the last one.
LIST_OPTION: dict[str, Any] = {"action": "extend", "default": []}


def _print_checks(prep: Prepared) -> None:
    """Each check with pass/FAIL/warn and its reason."""
    print(f"Pre-restore checks for {prep.archive}:")
    for check in prep.checks:
        print(f"  [{check.status}] {check.name}: {check.reason}")


def _print_plan(summary: RestoreSummary) -> None:
    """The dry-run listing and its totals."""
    print("Dry run: nothing was changed. A restore would:")
    totals: dict[str, list[int]] = {}
    for action, path, size in summary.plan:
        print(f"  {action:<9} {format_bytes(size):>10}  {path}")
        count = totals.setdefault(action, [0, 0])
        count[0], count[1] = count[0] + 1, count[1] + size
    print("  " + ", ".join(f"{action} {n} ({format_bytes(b)})"
                           for action, (n, b) in totals.items()))
    if any(a == "keep" for a, _, _ in summary.plan):
        print("  (keep: not in the backup, left as it is)")
    if any(a == "unchanged" for a, _, _ in summary.plan):
        print("  (unchanged: the live file already has the backup's bytes and mode)")


def _print_summary(summary: RestoreSummary) -> None:
    """The summary; a long file list is cut short (the log has it all)."""
    from ..restore.summary import summary_lines

    lines = summary_lines(summary)
    cut = lines.index("Files:")
    print("\n".join(lines[:cut]))
    print(f"Files ({len(summary.files)}):")
    for path in summary.files[:_SHOWN_FILES]:
        print(f"  {path}")
    if len(summary.files) > _SHOWN_FILES:
        print(f"  ... and {len(summary.files) - _SHOWN_FILES} more (see the log)")
    print(f"Restore log: {summary.log}")


def _fresh_note(prep: Prepared) -> None:
    """The disaster case, said before anything happens: what this restore will do."""
    assert prep.selection is not None
    camera = f"{prep.metadata.get('cameratype')} {prep.metadata.get('cameramodel')}"
    print(f"This is a fresh or empty Allsky install ({prep.fresh}): the restore puts the "
          f"backup's configuration in place (camera '{camera}', sections "
          f"{', '.join(prep.selection.chosen)}); there is nothing here to undo, so no undo "
          "backup is taken.")


def _confirm(prep: Prepared) -> bool:
    """Ask on a terminal; elsewhere --yes is required."""
    assert prep.selection is not None
    what = (f"Restore {len(prep.selection.files)} files "
            f"({format_bytes(prep.selection.bytes)}) into {prep.home}"
            + (", stopping the Allsky service while files are replaced"
               if prep.selection.kind == "config" and prep.options.service else "") + "? [y/N] ")
    if not sys.stdin.isatty():
        print("allsky-tasks: restore needs --yes when not run on a terminal", file=sys.stderr)
        return False
    return input(what).strip().lower() in ("y", "yes")


def _accept_incomplete(prep: Prepared) -> bool:
    """Known-bad members: ask on a terminal; elsewhere --accept-incomplete is required."""
    if not sys.stdin.isatty():
        print(f"allsky-tasks: {len(prep.incomplete)} file(s) of this backup changed while being "
              "packed (see 'Content complete' above); restoring them needs --accept-incomplete "
              "when not run on a terminal", file=sys.stderr)
        return False
    return input(f"{len(prep.incomplete)} file(s) in this backup are incomplete copies (they "
                 "changed while being packed). Restore them anyway? [y/N] ").strip().lower() \
        in ("y", "yes")


def _cmd(args: argparse.Namespace) -> int:
    """Check; print; dry-run listing or confirm and restore."""
    from ..progress import tracked
    from ..restore.prepare import RestoreBlocked, RestoreOptions, prepare
    from ..restore.run import dry_run, execute
    from ..service.config import ServiceConfig, machine_pause
    from ..service.signals import signals_as_interrupt

    env = from_environ()
    home = expand(args.home).absolute() if args.home else env.home
    backup_dir = env.backup_dir if not args.home or os.environ.get("ALLSKY_BACKUP_DIR") \
        else default_backup_dir(home)
    options = RestoreOptions(
        sections=list(dict.fromkeys(args.sections)), folders=list(dict.fromkeys(args.folders)),
        files=list(dict.fromkeys(args.files)), dry_run=args.dry_run,
        force_camera=args.force_camera, undo=not args.no_undo,
        images=env.images if home == env.home else None, backup_dir=backup_dir,
        service=None if args.no_service or machine_pause() else ServiceConfig(unit=args.service_unit),
        accept_incomplete=args.accept_incomplete)
    from ..inventory.destinations import destinations

    confirmed = args.yes
    looked_in = destinations(replace(env, backup_dir=backup_dir), args.dest)
    if args.from_target:  # fetch the copy, check it as an import, then restore it as usual
        from .copies import fetch_for_restore

        args.archive = str(fetch_for_restore(env, args.from_target, args.archive, backup_dir,
                                             identity=args.identity, auth_key=args.auth_key,
                                             trust_target=args.trust_target))
    for archive, folders in _targets(args.archive, looked_in, args.folders):
        one = replace(options, folders=folders)
        with signals_as_interrupt():
            with tracked(archive.name, "restore-checks") as progress:
                prep = prepare(archive, home, one)
                progress.finish(blocked=prep.blocked)
            _print_checks(prep)
            if prep.blocked:
                raise RestoreBlocked(prep)
            if prep.fresh:
                _fresh_note(prep)
            if args.dry_run:
                _print_plan(dry_run(prep))
                continue
            if prep.incomplete and not prep.options.accept_incomplete:
                if not _accept_incomplete(prep):
                    print("Restore cancelled; nothing was changed.")
                    return 2
                prep.options = replace(prep.options, accept_incomplete=True)
            if not confirmed and not _confirm(prep):
                print("Restore cancelled; nothing was changed.")
                return 2
            confirmed = True  # a per-night set is confirmed once, for all its nights
            with tracked(archive.name, "restore") as progress:
                summary = execute(prep)
                progress.finish(files=len(summary.files))
        _print_summary(summary)
    return 0


LATEST = ("latest", "latest-config", "latest-images")


def _latest(name: str, looked_in: list[Path]) -> Path:
    """The newest good local backup of the kind `latest[-config|-images]` names.

    Never one that failed verification or cannot be read, and never an undo backup
    (`pre-restore`: the state before a restore, not a backup of the install).
    """
    from ..errors import RestoreError
    from ..inventory.destinations import list_everywhere

    kind = name.partition("-")[2]
    good = [r for r in list_everywhere(looked_in) if not r.problem and r.verified is not False
            and r.spec != "pre-restore" and (r.type == kind if kind else r.type in
                                            ("config", "images"))]
    if not good:
        raise RestoreError(f"no {kind or 'readable'} backup in "
                           f"{', '.join(str(f) for f in looked_in)} for {name}",
                           hint="`allsky-tasks list` shows the backups; after a dead card use "
                                f"`allsky-tasks restore {name} --from TARGET`")
    newest = max(good, key=lambda r: (r.timestamp, r.mtime))
    print(f"{name}: {newest.name} ({newest.created})")
    return newest.path


def _targets(name: str, looked_in: list[Path], folders: list[str]
             ) -> list[tuple[Path, list[str]]]:
    """(archive, folders) to restore: one archive, or the chosen nights of a per-night set."""
    from ..errors import RestoreError
    from ..inventory.destinations import list_everywhere, resolve_everywhere
    from ..inventory.record import set_members

    if name in LATEST:
        return [(_latest(name, looked_in), folders)]
    if not name.startswith("set:"):
        return [(resolve_everywhere(name, looked_in), folders)]
    out = []
    records = sorted(set_members(list_everywhere(looked_in), name[4:]),
                     key=lambda r: (r.metadata["allskyTasks"]["perNight"].get("folder", ""),
                                    r.timestamp, r.mtime))
    for record in records:
        night = record.metadata["allskyTasks"]["perNight"]["folder"]
        if not folders or night in folders:
            out.append((record.path, [night]))
    if not out:
        raise RestoreError(f"no archive of per-night set {name[4:]!r} in "
                           f"{', '.join(str(f) for f in looked_in)} holds "
                           f"{', '.join(folders) or 'any night'}",
                           hint="allsky-tasks list shows the sets; list --archives the nights")
    # Only the newest archive of each night: a night packed again supersedes the older one.
    newest: dict[str, tuple[Path, list[str]]] = {}
    for path, nights in out:
        newest[nights[0]] = (path, nights)
    return list(newest.values())


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `restore` command."""
    p = subs.add_parser(
        "restore", help="restore a backup: checked, staged, reversible",
        description="Restore a config or images backup (ours or Allsky's). Every check is "
                    "printed with its reason; a failed one stops the restore before anything "
                    "changes. A config restore first takes an undo backup and stops the service.")
    p.add_argument("archive", metavar="ARCHIVE",
                   help="a backup name in the backup folder (as `list` shows it) or a path")
    p.add_argument("--sections", type=_csv, metavar="A,B", **LIST_OPTION,
                   help="config: sections to restore (default: every one in the backup); "
                        "repeat or separate with commas, they add up")
    p.add_argument("--folders", type=_csv, metavar="X,Y", **LIST_OPTION,
                   help="images: night folders to restore (default: every one in the backup); "
                        "repeat or separate with commas, they add up")
    p.add_argument("--files", nargs="+", metavar="GLOB", **LIST_OPTION,
                   help="advanced: files or globs from the backup's file list (a folder "
                        "takes everything below it; * also matches /); repeated, they add up")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be created, replaced or kept; change nothing")
    p.add_argument("--force-camera", action="store_true",
                   help="restore camera settings made for another camera")
    p.add_argument("--no-undo", action="store_true",
                   help="do not take a config backup of the current state first")
    p.add_argument("--from", dest="from_target", metavar="TARGET",
                   help="fetch ARCHIVE (a name, or latest, latest-config, latest-images) from a "
                        "copy target first: a spec's copies name, ssh://user@host[:port]/folder, "
                        "s3://bucket/prefix[?endpoint_url=URL], rclone:REMOTE:path or a folder")
    p.add_argument("--identity", metavar="FILE",
                   help="with --from: the age identity (from `allsky-tasks keygen`) or SSH private "
                        "key that decrypts an encrypted copy while it streams in")
    p.add_argument("--auth-key", metavar="FILE",
                   help="with --from: the authentication key (allsky-tasks-auth.key from "
                        "`allsky-tasks keygen`) a copy must be tagged with; default: the one "
                        "beside --identity, else this device's own")
    p.add_argument("--trust-target", action="store_true",
                   help="with --from: restore a copy without checking its authentication tag "
                        "(only if you trust everyone who can write to the target)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--accept-incomplete", action="store_true",
                   help="also restore files that changed while being packed (on_file_error: "
                        "warn): their copies are incomplete; without it the restore asks on a "
                        "terminal and refuses elsewhere")
    p.add_argument("--home", metavar="DIR", help="the Allsky home (default: $ALLSKY_HOME)")
    p.add_argument("--dest", metavar="DIR",
                   help="look only in this backup folder (default: ALLSKY_BACKUP_DIR, else "
                        "allskybackups beside the home, e.g. ~/allskybackups, plus every "
                        "spec's destination:)")
    p.add_argument("--no-service", action="store_true",
                   help="leave the Allsky service alone (installs without systemd)")
    p.add_argument("--service-unit", default="allsky", metavar="UNIT",
                   help="systemd unit stopped during a config restore (default: allsky)")
    p.set_defaults(func=_cmd)
