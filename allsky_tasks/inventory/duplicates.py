"""Is a file to import already stored? Same size, then same SHA-256 (hashed only then)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..archive.io import CHUNK
from ..safefs import open_regular
from .listing import archive_paths


def _sha256(path: Path, ours: bool) -> str:
    """SHA-256 of a regular file; in our folder opened without following a link."""
    digest = hashlib.sha256()
    fd = open_regular(path) if ours else os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def already_stored(src: Path, dest: Path) -> Path | None:
    """The archive in dest with exactly src's bytes, or None (no read unless a size matches)."""
    try:
        size = os.stat(src).st_size
    except OSError:
        return None
    same_size = []
    for path in archive_paths(dest):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_size == size and path.resolve() != src.resolve():
            same_size.append(path)
    if not same_size:
        return None
    wanted = _sha256(src, ours=False)
    for path in same_size:
        try:
            if _sha256(path, ours=True) == wanted:
                return path
        except OSError:
            continue
    return None
