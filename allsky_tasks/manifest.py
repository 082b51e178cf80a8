"""Manifest: the sidecar <archive-stem>.json beside each archive, for fast listing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .archive_io import SUFFIXES, atomic_write_bytes
from .errors import ManifestError
from .metadata import NAMESPACE

SIDECAR_MODE = 0o640  # same secrets as the archive's metadata: not world-readable


def sidecar_path(archive: Path) -> Path:
    """allsky-config-backup-X.tar.zst -> allsky-config-backup-X.json."""
    name = archive.name
    for suffix in SUFFIXES + (".tgz", ".tzst"):
        if name.endswith(suffix):
            return archive.with_name(name[: -len(suffix)] + ".json")
    raise ManifestError(f"{archive}: not an archive name (.tar.zst or .tar.gz)")


def read_sidecar(archive: Path) -> dict[str, Any] | None:
    """The sidecar's metadata, or None if there is none."""
    path = sidecar_path(archive)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ManifestError(f"{path}: unreadable sidecar: {e}",
                            hint="delete it; it is rebuilt from the archive's metadata") from e
    return data if isinstance(data, dict) else None


def write_sidecar(archive: Path, metadata: dict[str, Any], archive_facts: dict[str, Any]) -> Path:
    """Write the archive's metadata plus size and SHA-256 of the archive itself."""
    ours = metadata.setdefault(NAMESPACE, {})
    ours["archive"] = {"name": archive.name, **archive_facts}
    path = sidecar_path(archive)
    try:
        atomic_write_bytes(path, (json.dumps(metadata, indent=4) + "\n").encode(), SIDECAR_MODE)
    except OSError as e:
        raise ManifestError(f"cannot write sidecar {path}: {e.strerror or e}") from e
    return path


def record_verify(archive: Path, result: dict[str, Any]) -> None:
    """Store the latest verify result in the sidecar."""
    metadata = read_sidecar(archive)
    if metadata is None:
        raise ManifestError(f"{sidecar_path(archive)}: sidecar missing")
    metadata.setdefault(NAMESPACE, {})["verify"] = result
    atomic_write_bytes(sidecar_path(archive), (json.dumps(metadata, indent=4) + "\n").encode(),
                       SIDECAR_MODE)
