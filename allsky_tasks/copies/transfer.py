"""Sending one file to a target and proving what the target holds: payloads, hashes, transfer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import CopyError
from .target import Progress, Target

CHUNK = 1 << 20


@dataclass(frozen=True)
class Payload:
    """What goes to the target for one local file: stored name, size and SHA-256."""

    source: Path
    stored: str
    size: int
    sha256: str


def hash_stream(stream: BinaryIO, progress: Progress | None = None) -> tuple[str, int]:
    """SHA-256 and size of everything a stream yields."""
    digest, size = hashlib.sha256(), 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return digest.hexdigest(), size
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a local file."""
    with open(path, "rb") as f:
        return hash_stream(f)


def target_hash(target: Target, name: str, progress: Progress | None = None) -> tuple[str, str]:
    """(SHA-256 of a stored file, how it was obtained): the server's own hash, else read back."""
    remote = target.remote_sha256(name)
    if remote is not None:
        return remote, "hashed at the target"
    with target.open_read(name) as stream:
        return hash_stream(stream, progress)[0], "read back"


def close_target(target: Target) -> None:
    """Close a target's connection, if it keeps one."""
    close = getattr(target, "close", None)
    if close is not None:
        close()


def transfer(target: Target, payload: Payload, progress: Progress) -> str:
    """Store one payload at the target, verified before (or right after) its final name."""
    # A StagedTarget (put_hidden, publish; see target.py) is found by hasattr, not by its type.
    staged = hasattr(target, "put_hidden")
    with open(payload.source, "rb") as local:
        if staged:
            name = target.put_hidden(local, payload.size, payload.stored, progress)  # type: ignore[attr-defined]  # see above
        else:
            target.put(local, payload.size, payload.stored, progress)
            name = payload.stored
    sizes = {f.name: f.size for f in target.list_files()}
    problem = None
    if sizes.get(name) != payload.size:
        problem = f"size {sizes.get(name)} instead of {payload.size}"
    else:
        sha, method = target_hash(target, name)
        if sha != payload.sha256:
            problem = f"SHA-256 {sha[:16]}... instead of {payload.sha256[:16]}... ({method})"
    if problem is not None:
        target.delete(name)  # nothing unverified stays under any name
        raise CopyError(f"copy target {target.describe()}: {payload.stored} arrived damaged: "
                        f"{problem}; the copy was deleted, the local archive is untouched",
                        hint="run the backup again; if it repeats, check the disk or network")
    if staged:
        target.publish(name, payload.stored)  # type: ignore[attr-defined]  # see above
        return method
    return method
