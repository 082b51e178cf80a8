"""The doc line of each spec for `doit list`, cached so a run that changed no spec reads no YAML."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from ..errors import AllskyTasksError
from ..safefs import atomic_write_bytes, read_bytes
from .load import peek_description

CACHE_NAME = "spec-docs.json"
_BROKEN = "BROKEN SPEC"


def _file_key(path: Path) -> list[int] | None:
    """What changes whenever the file's content may have: inode, size, mtime and ctime."""
    try:
        st = path.stat()
    except OSError:
        return None
    # ctime too: copying with a preserved mtime (cp -p, rsync -t) still moves it.
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


CACHE_LIMIT = 4 << 20  # a few hundred doc lines; anything bigger is not ours: rebuilt


def _read(cache_path: Path) -> dict[str, Any]:
    """The cache, or {} if it is missing, unreadable, too big, a link or not a regular file."""
    try:
        data = json.loads(read_bytes(cache_path, CACHE_LIMIT, owned=True))
    except (OSError, ValueError, AllskyTasksError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(cache_path: Path, data: dict[str, Any]) -> None:
    """Replace the cache atomically; a cache that cannot be written is simply not kept."""
    with contextlib.suppress(OSError, AllskyTasksError):
        atomic_write_bytes(cache_path, (json.dumps(data, indent=1) + "\n").encode(), 0o640)


def spec_docs(paths: list[Path], cache_path: Path) -> list[str]:
    """peek_description of each spec, re-read only for files changed since they were cached.

    Importing yaml alone costs a no-op re-run ~15 ms. Broken specs are never cached: their
    message names the file relative to the current folder.
    """
    # A state folder that is a link is refused by the `recover` task: no cache through it.
    usable = not cache_path.parent.is_symlink()
    cache = _read(cache_path) if usable else {}
    fresh: dict[str, Any] = {}
    docs = []
    for path in paths:
        key = _file_key(path)  # taken before reading: a change while reading re-reads next time
        hit = cache.get(str(path))
        if (key is not None and isinstance(hit, list) and len(hit) == 2 and hit[0] == key
                and isinstance(hit[1], str)):
            doc = hit[1]
        else:
            doc = peek_description(path)
        if key is not None and not doc.startswith(_BROKEN):
            fresh[str(path)] = [key, doc]
        docs.append(doc)
    folders = {path.parent for path in paths}
    kept = {k: v for k, v in cache.items() if Path(k).parent not in folders}  # other specs dirs
    if usable and {**kept, **fresh} != cache:
        _write(cache_path, {**kept, **fresh})
    return docs
