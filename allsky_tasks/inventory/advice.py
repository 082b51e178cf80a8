"""What an operator should fix in a listed destination, each with the command that fixes it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..archive.manifest import sidecar_path
from .record import Record

__all__ = ["Advice", "listing_warnings", "trust_warnings"]


@dataclass
class Advice:
    """A listing warning and the command that fixes it."""

    message: str
    command: str


def _same_device(a: Path, b: Path) -> bool:
    """True if both paths exist on one filesystem."""
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def trust_warnings(folders: list[Path]) -> list[Advice]:
    """Records in these folders' state (and a device key) that are not ours: named, ignored."""
    from ..archive import authkey
    from ..archive.state_files import untrusted_records
    from ..errors import UnsafePathError

    out = [Advice(f"{path} {why}: not a record of ours; ignored (every backup it speaks for "
                  "counts as never verified, unpinned, uncopied)", f"rm {path}")
           for folder in folders for path, why in untrusted_records(folder)]
    try:
        authkey.load()
    except UnsafePathError as e:
        out.append(Advice(f"{e.message}; no verification record counts until it is fixed",
                          e.hint or f"ls -l {authkey.key_path()}"))
    return out


def listing_warnings(records: list[Record], dest: Path, home: Path, max_age_days: float = 30,
                     now: float | None = None, backup_cmd: str = "allsky-tasks run backup"
                     ) -> list[Advice]:
    """What an operator should fix, each with its command."""
    now = time.time() if now is None else now
    configs = [r for r in records if r.type == "config" and not r.problem]
    out = trust_warnings(sorted({r.path.parent for r in records} | {dest}))
    for r in records:
        if r.problem and r.problem.startswith("unreadable sidecar"):
            out.append(Advice(f"{r.name}: {r.problem}", f"rm {sidecar_path(r.path)}"))
        elif r.problem:
            out.append(Advice(f"{r.name}: {r.problem}", f"allsky-tasks delete {r.name}"))
    if not configs:
        what = "only images backups exist" if records else f"no backups in {dest}"
        out.append(Advice(f"No config backup: {what}.", backup_cmd))
        return out
    for r in records:  # a failed full read: never to be pinned or copied as a good backup
        if r.verified is False and not r.problem:
            why = r.verify_problems[0] if r.verify_problems else "its last full read failed"
            out.append(Advice(f"{r.name} is not a good backup: {why}",
                              f"allsky-tasks info {r.name}; allsky-tasks delete {r.name}"))
    # Only backups not known to be bad are ever suggested for pinning or copying.
    configs = [r for r in configs if r.verified is not False]
    if not configs:
        out.append(Advice("No config backup that is not damaged or unsafe.", backup_cmd))
        return out
    if not any(r.pinned and r.verified for r in configs):
        good = next((r for r in configs if r.verified), None)
        if good is not None:
            out.append(Advice("No pinned known-good config backup.", f"allsky-tasks pin {good.name}"))
        else:  # only a backup our verify read and found good is ever suggested for pinning
            out.append(Advice("No pinned known-good config backup. None is verified yet: verify "
                              "them, then pin one that verified.", "allsky-tasks verify --all"))
    age = (now - configs[0].timestamp) / 86400
    if age > max_age_days:
        out.append(Advice(f"The newest config backup is {age:.0f} days old "
                            f"(more than {max_age_days:g}).", backup_cmd))
    folders = {r.path.parent for r in records} or {dest}  # every folder listed, not only dest
    if all(_same_device(folder, home) for folder in folders):
        good = next((r for r in configs if r.verified), configs[0])
        out.append(Advice(f"Every backup is on the same filesystem as {home}: a failed card "
                            "loses both. Add `copies:` to a spec (a USB disk, a NAS over SSH, "
                            "cloud; see docs/copies.md) so every new backup is copied and "
                            "checked off the card; until then, by hand:",
                          (f"allsky-tasks verify {good.name} && " if not
                                            good.verified else "")
                          + f"cp -p {good.path} {sidecar_path(good.path)} /media/usb/"))
    return out
