"""Restore from a copy: fetch it into a hidden folder of the backup folder, import it, restore.

A copy counts only with the authentication tag this device's key made when it was copied
(copies/auth.py), unless the operator trusts the target: the tag is checked before the fetch,
and the size and SHA-256 of the bytes read against it after. The fetched bytes are also
compared with the recorded (or the copied sidecar's) SHA-256; then the import checks
(archive/safety.py) run on the whole archive while it is stored under its final name, exactly
as `allsky-tasks import` does. Only an archive that passed all of that is handed to the
normal restore.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..archive.authkey import AuthKey
from ..copies import records
from ..copies.auth import check_tag, no_key_error, precheck, read_tag
from ..copies.stage import sidecar_sha256
from ..copies.target import Encryptor, Target
from ..environment import STATE_DIRNAME
from ..errors import CopyError, UnsafeArchiveError
from ..inventory.importer import import_archive

_ARCHIVE = re.compile(r"^allsky-(config|images)-backup-\d{8}-\d{6}(-\d+)?\.tar\.(zst|gz)$")
FETCH_DIR = "fetch"


def pick(target: Target, name: str, suffix: str = "") -> str:
    """The stored archive NAME means: its file name, its stem, or latest[-config|-images]."""
    names = sorted((f.name for f in target.list_files()
                    if _ARCHIVE.match(f.name[: len(f.name) - len(suffix)] if suffix
                                      and f.name.endswith(suffix) else f.name)),
                   key=lambda n: re.sub(r"^allsky-\w+-backup-", "", n))
    if name in ("latest", "latest-config", "latest-images"):
        kind = name.partition("-")[2]
        wanted = [n for n in names if not kind or n.startswith(f"allsky-{kind}-")]
        if wanted:
            return wanted[-1]
    for n in names:
        bare = n[: -len(suffix)] if suffix and n.endswith(suffix) else n
        if name in (n, bare, bare.split(".tar.")[0]):
            return n
    if not suffix:  # only encrypted copies there: say so, not "no backups"
        sealed = [n for n in (f.name for f in target.list_files())
                  if n.endswith(".age") and _ARCHIVE.match(n[:-4])]
        if sealed:
            from ..errors import EncryptionError

            raise EncryptionError(f"copy target {target.describe()} holds age-encrypted backups "
                                  f"({', '.join(sorted(sealed)[-3:])}); reading them needs the "
                                  "identity", hint="pass --identity FILE (the file `allsky-tasks "
                                                   "keygen` wrote, kept off the Pi)")
    raise CopyError(f"copy target {target.describe()} holds no backup {name!r}",
                    hint=f"it holds: {', '.join(names[-10:]) or 'no backups'}")


def _expected_sha(target: Target, backup_dir: Path, stored: str) -> str | None:
    """The SHA-256 the stored file must have: from our record, else from the copied sidecar."""
    for record in records.for_target(backup_dir, target.name):
        for entry in record["copies"].values():
            # The state folder may be damaged: an entry without a SHA-256 text is no record.
            if isinstance(entry, dict) and entry.get("stored") == stored \
                    and isinstance(sha := entry.get("storedSha256"), str):
                return sha
    return sidecar_sha256(target, stored)


def fetch(target: Target, name: str, backup_dir: Path,
          on_bytes: Callable[[int], None] | None = None,
          decryptor: Encryptor | None = None, key: AuthKey | None = None,
          trust_target: bool = False) -> Path:
    """Fetch one copy, check it, import it into `backup_dir`; return the local archive.

    Unless `trust_target`, the copy must carry this `key`'s authentication tag
    (copies/auth.py): it is checked before the copy is fetched, and the bytes read after.
    """
    work = backup_dir / STATE_DIRNAME / FETCH_DIR / str(os.getpid())
    try:
        target.check_ready()
        suffix = decryptor.suffix if decryptor is not None else ""
        stored = pick(target, name, suffix)
        tag = None
        if not trust_target:
            if key is None:
                raise no_key_error(target.describe())
            tag = read_tag(target, stored)
            precheck(key, stored, tag, target.describe(), str(key.path))
        expected = _expected_sha(target, backup_dir, stored)
        plain = stored[: -len(suffix)] if suffix and stored.endswith(suffix) else stored
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        local = work / plain
        digest = _Digest()
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, target.open_read(stored) as stream:
            if decryptor is not None:
                # The ciphertext is hashed as it streams into decrypt().
                decryptor.decrypt(_Hashing(stream, digest, on_bytes), out)  # type: ignore[arg-type]  # read-only stream
            else:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if key is not None and not trust_target:  # what was read is what this key tagged
            check_tag(key, stored, digest.size, digest.hexdigest(), tag, target.describe(),
                      key_file=str(key.path))
        if expected is not None and digest.hexdigest() != expected:
            raise CopyError(f"copy target {target.describe()}: {stored} does not match its "
                            f"recorded SHA-256 ({digest.hexdigest()[:16]}... instead of "
                            f"{expected[:16]}...); nothing was restored",
                            hint=f"try another copy; `allsky-tasks verify --target {target.name} "
                                 f"{plain}` re-reads it")
        try:
            return import_archive(local, backup_dir).path
        except UnsafeArchiveError as e:
            raise CopyError(f"copy target {target.describe()}: {stored} failed the import "
                            f"checks: {e.message}; nothing was restored") from e
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()
        shutil.rmtree(work, ignore_errors=True)


class _Digest:
    """SHA-256 that also counts the bytes it saw."""

    def __init__(self) -> None:
        self.sha, self.size = hashlib.sha256(), 0

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


class _Hashing:
    """A read-only stream that hashes and counts what passes through."""

    def __init__(self, inner: BinaryIO, digest: Any, on_bytes: Callable[[int], None] | None) -> None:
        self.inner, self.digest, self.on_bytes = inner, digest, on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.digest.update(data)
        if self.on_bytes is not None and data:
            self.on_bytes(len(data))
        return data
