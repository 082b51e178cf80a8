"""What the inventory commands share: their folders, their ARCHIVE, sizes, tables and answers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..environment import Environment, from_environ, spec_files

__all__ = ["DEST_HELP", "confirm", "env_dest", "env_dests", "human_size", "resolve_archive", "table",
           "verified_text", "verify_every"]

DEST_HELP = ("only this backup folder (default: ALLSKY_BACKUP_DIR, else allskybackups beside "
             "the Allsky home, e.g. ~/allskybackups, plus every spec's destination:)")

def human_size(size: int) -> str:
    """Allsky's convention: 1024-based, labelled B/KB/MB/GB (1 KB = 1024 bytes)."""
    from ..backup.space import format_bytes

    return format_bytes(size)


def verified_text(ok: bool | None, when: str | None = None, stale: bool = False) -> str:
    """Verified column text: the result and the day of the last full read."""
    if ok is None:
        return "never"
    day = f" {when[:10]}" if when else ""
    return ("FAILED" if not ok else "STALE" if stale else "yes") + day


def verify_every(env: Environment) -> tuple[dict[str, float | None], float | None]:
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


def table(rows: list[list[str]]) -> list[str]:
    """Rows as aligned text columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def env_dest(args: argparse.Namespace) -> tuple[Environment, Path]:
    """The environment and the one folder written to (import): --dest, else ALLSKY_BACKUP_DIR."""
    env = from_environ()
    return env, Path(args.dest).absolute() if getattr(args, "dest", None) else env.backup_dir


def env_dests(args: argparse.Namespace) -> tuple[Environment, list[Path]]:
    """The environment and every folder looked in: --dest, else ALLSKY_BACKUP_DIR + the specs'."""
    from ..inventory.destinations import destinations

    env = from_environ()
    return env, destinations(env, getattr(args, "dest", None))


def resolve_archive(args: argparse.Namespace) -> Path:
    """The ARCHIVE argument found in any of the folders."""
    from ..inventory.destinations import resolve_everywhere

    return resolve_everywhere(args.archive, env_dests(args)[1])


def confirm(question: str, yes: bool) -> bool:
    """Ask on the terminal unless --yes; no answer (EOF) is no."""
    if yes:
        return True
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False
