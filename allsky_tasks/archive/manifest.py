"""Manifest: the sidecar <archive-stem>.json beside each archive, for fast listing."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import ManifestError, UnsafePathError, os_message
from ..safefs import atomic_writer, open_file, read_bytes
from .io import SUFFIXES, atomic_write_bytes
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
        data = json.loads(read_bytes(path, 1 << 30))
    except FileNotFoundError:
        return None
    except UnsafePathError as e:  # a link or FIFO planted as the sidecar: never followed
        raise ManifestError(e.message, hint=e.hint) from None
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
        hint = "free some space at the destination" if e.errno == errno.ENOSPC else None
        raise ManifestError(f"cannot write the sidecar: {os_message(e, path)}", hint=hint) from e
    return path


def record_verify(archive: Path, result: dict[str, Any]) -> None:
    """Store the latest verify result in the state folder beside the archive (never the sidecar).

    Only for archives the tool wrote into that folder itself (pack, the undo backup).
    """
    from .records import STATE, RecordStore, make_record

    facts = {k: v for k, v in result.items() if k not in ("ok", "verifiedAt")}
    RecordStore(archive.absolute().parent / STATE).put(
        archive, make_record(os.stat(archive), result.get("ok") is True, **facts))


# Our sidecars end with the manifest rows (one per line) and then "trailer" lines, one key of
# our namespace each, so they can be written and updated by streaming: flat memory however
# many members an archive holds. Sidecars in any other layout are handled as whole JSON.
_MANIFEST_END = "        ]\n"
_CLOSE = ("    }\n", "}\n")
_TRAILER = "        , "


def _trailer_line(key: str, value: Any) -> str:
    """One trailer line: `        , "key": value`."""
    return f"{_TRAILER}{json.dumps(key)}: {json.dumps(value)}\n"


def write_sidecar_from(archive: Path, metadata_file: Path, additions: dict[str, Any]) -> Path:
    """The sidecar: metadata.json streamed, plus `additions` to our namespace as trailers."""
    path = sidecar_path(archive)
    try:
        # Hidden temp name created O_EXCL|O_NOFOLLOW, fsynced, renamed: never through a link.
        with open_file(metadata_file, "r") as src, atomic_writer(path, SIDECAR_MODE) as fd, \
                os.fdopen(os.dup(fd), "w", encoding="utf-8") as out:
            _copy_with_trailers(src, out, additions)
            out.flush()
    except OSError as e:
        hint = "free some space at the destination" if e.errno == errno.ENOSPC else None
        raise ManifestError(f"cannot write the sidecar: {os_message(e, path)}", hint=hint) from None
    return path


def _copy_with_trailers(src: IO[str], out: IO[str], additions: dict[str, Any]) -> None:
    """Copy a document in our layout, replacing/adding trailer lines before its end."""
    held: list[str] = []  # the last two lines: the closing braces, once we reach them
    for line in src:
        if line.startswith(_TRAILER) and _trailer_key(line) in additions:
            continue
        held.append(line)
        if len(held) > 2:
            out.write(held.pop(0))
    if tuple(held) != _CLOSE:
        raise ValueError("not in the streamed sidecar layout")
    for key, value in additions.items():
        out.write(_trailer_line(key, value))
    out.writelines(held)


def _trailer_key(line: str) -> str:
    """The key of a trailer line; ValueError if it is not a JSON string (not our layout)."""
    key = json.loads(line[len(_TRAILER):].split(":", 1)[0])
    if not isinstance(key, str):
        raise ValueError(f"a trailer key is not a string: {key!r}")
    return key


def update_sidecar(archive: Path, additions: dict[str, Any]) -> None:
    """Set keys of our namespace in a sidecar; streamed when it has our layout."""
    path = sidecar_path(archive)
    if not path.exists():
        raise ManifestError(f"{path}: sidecar missing")
    try:
        write_sidecar_from(archive, path, additions)
    except (ValueError, ManifestError):
        metadata = read_sidecar(archive) or {}
        metadata.setdefault(NAMESPACE, {}).update(additions)
        atomic_write_bytes(path, (json.dumps(metadata, indent=4) + "\n").encode(),
                           SIDECAR_MODE)


def read_trailers(archive: Path) -> dict[str, Any] | None:
    """Our namespace's trailer keys, read from the sidecar's end (None: other layout)."""
    path = sidecar_path(archive)
    try:
        with open_file(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - (256 << 10)))
            lines = fh.read().decode("utf-8", "replace").splitlines(keepends=True)
    except OSError:
        return None
    if tuple(lines[-2:]) != _CLOSE:
        return None
    out: dict[str, Any] = {}
    for line in reversed(lines[:-2]):
        if not line.startswith(_TRAILER):
            return out if line == _MANIFEST_END else None
        try:
            out.setdefault(_trailer_key(line), json.loads(line[len(_TRAILER):].split(":", 1)[1]))
        except (ValueError, IndexError):  # a damaged or foreign line: not our layout
            return None
    return None


def iter_manifest(archive: Path) -> Iterator[dict[str, Any]] | None:
    """Stream our manifest rows from the sidecar (None: not in our layout)."""
    path = sidecar_path(archive)
    opening = '        "manifest": [\n'
    try:
        with open_file(path, "r") as fh:
            for line in fh:
                if line == opening:
                    break
            else:
                return None
    except OSError:
        return None
    return _rows_after(path, opening)


def _rows_after(path: Path, opening: str) -> Iterator[dict[str, Any]]:
    """The rows between the manifest's opening line and its end."""
    with open_file(path, "r") as fh:
        for line in fh:
            if line == opening:
                break
        for line in fh:
            if line == _MANIFEST_END:
                return
            yield json.loads(line.strip().rstrip(","))
