"""Allsky's structural rules for a backup: what a config or images archive must hold."""

from __future__ import annotations

from typing import Any

from .members import Member
from .metadata import NAMESPACE  # where archive/metadata.py writes our additions

__all__ = ["ALLSKY_KEYS", "KNOWN_FORMATS", "key_problems", "structure_problems"]

# Every top-level key Allsky's backups write (its metadata.json, and the sidecars its Create,
# Upload and lazy reads write: the same keys or a subset), plus our one namespace.
ALLSKY_KEYS = frozenset({
    "backupFile", "backupType", "created", "version", "cameratype", "cameramodel",
    "settingsfile", "ccfile", "permissions", "files", "includedOptionalTargets",
    "includedSections", "requiredModules", "backupModules", "backupHasModules",
    "imageBackupAll", "imageFolders", "imageTargets", "format"})
KNOWN_FORMATS = (1,)  # metadata format numbers this tool can read


def key_problems(meta: dict[str, Any]) -> list[str]:
    """A format this tool does not know, or a top-level key neither Allsky's nor ours."""
    problems = []
    fmt = meta.get("format", 1)  # Allsky's upload sidecar carries no format: it is format 1
    if type(fmt) is not int or fmt not in KNOWN_FORMATS:
        problems.append(f"metadata.json: format {fmt!r} is not one this tool can read "
                        f"({', '.join(map(str, KNOWN_FORMATS))}); a newer tool made it?")
    unknown = sorted(str(k) for k in meta if k not in ALLSKY_KEYS and k != NAMESPACE)
    if unknown:
        problems.append(f"metadata.json: unknown top-level key {unknown[0]!r}"
                        + (f" (and {len(unknown) - 1} more)" if unknown[1:] else "")
                        + f"; Allsky's keys and {NAMESPACE!r} only")
    return problems


def _unknown(value: Any) -> bool:
    """Allsky's 'unknown' (or missing/empty) metadata value."""
    return not isinstance(value, str) or value.strip() in ("", "unknown")


def structure_problems(meta: Any, members: list[Member], upload_rules: bool = True
                       ) -> list[str]:
    """Allsky's structural rules for a backup, plus `files` against the members read.

    upload_rules adds what Allsky's upload insists on (version and camera known, the
    settings/cc files metadata names present).
    """
    if not isinstance(meta, dict):
        return ["metadata.json: missing or not a JSON object"]
    kinds = {m.path: m.type for m in members}
    kind = meta.get("backupType")
    problems: list[str] = key_problems(meta)
    if kind == "images":
        if not any(n == "images" or n.startswith("images/") for n in kinds):
            problems.append("images/: no images folder in an images backup")
    elif kind == "config":
        if kinds.get("env.json") != "file":
            problems.append("env.json: missing from a config backup")
        for prefix in ("config/settings_", "config/cc_"):
            if not any(n.startswith(prefix) and n.endswith(".json") and t == "file"
                       for n, t in kinds.items()):
                problems.append(f"{prefix}*.json: missing from a config backup")
        if upload_rules:
            for key in ("version", "cameratype", "cameramodel"):
                if _unknown(meta.get(key)):
                    problems.append(f"metadata.json: {key} is missing or unknown")
            for key in ("settingsfile", "ccfile"):
                named = meta.get(key)
                if named is not None and (not isinstance(named, str)
                                          or kinds.get(named) != "file"):
                    problems.append(f"metadata.json: {key} {named!r} is not in the archive")
    else:
        problems.append(f"metadata.json: backupType {kind!r} is not 'config' or 'images'")
    files = meta.get("files")
    if isinstance(files, list) and all(isinstance(f, str) for f in files):
        listed, stored = set(files), {n for n, t in kinds.items() if t != "dir"}
        problems += [f"{p}: listed in metadata.json but missing from the archive"
                     for p in sorted(listed - stored)]
        problems += [f"{p}: in the archive but not in metadata.json's files list"
                     for p in sorted(stored - listed)]
    else:
        problems.append("metadata.json: files is not a list of names")
    return problems
