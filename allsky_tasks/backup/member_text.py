"""The bytes pack writes for a member, reproduced for the estimate: its tar header and metadata.json text."""

from __future__ import annotations

import hashlib
import json
import tarfile
from typing import TYPE_CHECKING

from ..archive.tar_header import ustar_header
from .sources import group_name, user_name

if TYPE_CHECKING:
    from .entry import Entry

__all__ = ["fixed_text", "member_header", "member_meta_text", "tar_names"]


def tar_names(uid: int, gid: int) -> tuple[str, str]:
    """User and group names as pack writes them into tar headers (cached there)."""
    return user_name(uid), group_name(gid)


_TAR_TYPES = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}


def member_header(e: Entry) -> bytes:
    """The exact tar header (PAX records included) pack writes for the member."""
    kind = _TAR_TYPES.get(e.kind, tarfile.REGTYPE)
    return ustar_header(e.arcname, kind, e.size if e.kind == "file" else 0, e.mode, e.uid,
                        e.gid, e.mtime_ns // 10 ** 9, e.linkname, *tar_names(e.uid, e.gid),
                        mtime_ns=e.mtime_ns)


def member_meta_text(e: Entry) -> tuple[str, str, str]:
    """The member's permissions entry, files entry and manifest row, as metadata.py writes them."""
    path, (owner, group) = json.dumps(e.arcname), tar_names(e.uid, e.gid)
    kind = "link" if e.kind == "symlink" else e.kind
    perm = (f'        {path}: {{\n            "mode": "{e.mode & 0o777:04o}",\n'
            f'            "owner": "ALLSKY_OWNER",\n            "group": {json.dumps(group)},\n'
            f'            "ownerId": {e.uid},\n            "groupId": {e.gid},\n'
            f'            "type": "{kind}"\n        }},\n')
    row = {"path": e.arcname, "type": e.kind, "size": e.size, "mode": f"{e.mode:04o}",
           "uid": e.uid, "gid": e.gid, "owner": owner, "group": group,
           "mtime": e.mtime_ns // 1_000_000_000}
    if e.kind == "file":  # a stand-in digest: as incompressible as the real one
        row["sha256"] = hashlib.sha256(e.arcname.encode("utf-8", "surrogateescape")).hexdigest()
    elif e.kind == "symlink":
        row["linkname"] = e.linkname
    files = "" if e.kind == "dir" else f"        {path},\n"
    return perm, files, f"            {json.dumps(row, separators=(',', ':'))},\n"


def fixed_text() -> str:
    """A stand-in for metadata.json's fixed fields (Allsky's header, our spec and totals)."""
    digest, fingerprint = (hashlib.sha256(bytes([i])).hexdigest() for i in range(2))
    text = ("Include the databases directory which contains the allsky.db file. This can be a "
            "large directory but will allow you to restore your database if needed.")
    return json.dumps({
        "backupFile": "allsky-config-backup-20260101-000000.tar.zst", "backupType": "config",
        "created": "2026-01-01 00:00:00", "version": "v2025.xx.xx", "cameratype": "RPi",
        "cameramodel": "HQ", "settingsfile": "config/settings_RPi_HQ.json",
        "ccfile": "config/cc_RPi_HQ.json", "includedOptionalTargets": ["databases"],
        "includedSections": [{"key": "databases", "description": text, "required": False}] * 2,
        "requiredModules": ["allsky_overlay.py"], "backupModules": [], "format": 1, "allskyTasks": {
            "toolVersion": "0.1.0", "spec": {"name": "nightly", "digest": digest},
            "createdIso": "2026-01-01T00:00:00+00:00", "timezone": "Europe/London",
            "host": "allsky", "fingerprint": fingerprint, "archiveFormat": "zstd",
            "compressionLevel": 3, "mediaCompression": "fast", "sections": ["core", "databases"], "databases": [],
            "totals": dict.fromkeys(("members", "files", "dirs", "links", "rawBytes"), 1234),
            "warnings": [], "hashAlgorithm": "sha256", "service": {"needed": False, "reason":
            "no database content is selected, so allsky keeps running while packing"}}}, indent=4)
