"""The device's authentication key: HMAC-SHA256 tags on what our records and copies vouch for.

One secret per device (32 random bytes) in a file of its own, outside every backup folder
and every copy target: `~/allsky-tasks-auth.key` (mode 0600), or wherever
ALLSKY_TASKS_AUTH_KEY points. A verification record, and a copy at a target, counts only with
a tag made by this key, so whoever can write to a shared backup folder or a copy target can
plant files there but can never make them look like ours (borg's authenticated repository key
does the same for a repository). The standard library only: no wheel needed on a 32-bit Pi.

Keep a copy off the device beside the age identity: a new card restores from a copy target
only what this key tagged (`restore --from TARGET --auth-key FILE`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import safefs
from ..errors import UnsafePathError

KEY_ENV = "ALLSKY_TASKS_AUTH_KEY"
FILE_NAME = "allsky-tasks-auth.key"
_MAGIC = "ALLSKY-TASKS-AUTH-KEY-1"
_LIMIT = 4096


@dataclass(frozen=True)
class AuthKey:
    """A loaded key: tags and checks them; never prints its secret."""

    secret: bytes = field(repr=False)
    path: Path

    @property
    def fingerprint(self) -> str:
        """A public name for the key (not the secret): which key tagged a file."""
        return hmac.new(self.secret, b"allsky-tasks key fingerprint", hashlib.sha256).hexdigest()[:16]

    def tag(self, purpose: str, *fields: object) -> str:
        """HMAC-SHA256 over the purpose and the fields, as canonical JSON (no two inputs alike)."""
        text = json.dumps([purpose, *fields], sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True)
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def check(self, tag: object, purpose: str, *fields: object) -> bool:
        """Whether `tag` is this key's tag of these fields (constant time)."""
        return isinstance(tag, str) and hmac.compare_digest(tag, self.tag(purpose, *fields))


def key_path(environ: dict[str, str] | None = None) -> Path:
    """Where this device's key lives: ALLSKY_TASKS_AUTH_KEY, else ~/allsky-tasks-auth.key."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    return Path(value).expanduser() if value else Path.home() / FILE_NAME


def _parse(path: Path, data: bytes) -> AuthKey:
    """The key in a key file's text; a file that is not one is named."""
    for line in data.decode("ascii", errors="replace").splitlines():
        word, _, value = line.strip().partition(" ")
        if word == _MAGIC:
            try:
                secret = bytes.fromhex(value.strip())
            except ValueError:
                break
            if len(secret) == 32:
                return AuthKey(secret, path)
    raise UnsafePathError(f"{path}: not an allsky-tasks authentication key (no {_MAGIC} line "
                          "with 64 hex digits)",
                          hint="restore the file you kept off the device, or move it away and "
                               "let `allsky-tasks keygen` make a new one")


def load(path: Path | None = None, *, ours: bool = True) -> AuthKey | None:
    """The key at `path` (default: this device's), None when there is none.

    `ours`: the device's own key must be owned by the running user and neither readable nor
    writable by anyone else; a key handed in from outside (`--auth-key FILE` on a new card) is
    only read, never through a link or FIFO.
    """
    path = key_path() if path is None else Path(path).expanduser()
    try:
        fd = safefs.open_regular(path, owned=ours)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as e:
        raise UnsafePathError(f"{path}: the authentication key cannot be read ({e.strerror})",
                              hint="run as the user who owns it") from None
    try:
        st = os.fstat(fd)
        if ours and st.st_mode & 0o077:
            raise UnsafePathError(f"{path}: a secret key others may read "
                                  f"({stat.filemode(st.st_mode)}); not used",
                                  hint=f"chmod 600 {path}")
        data = safefs.read_fd(fd, _LIMIT)
    finally:
        os.close(fd)
    return _parse(path, data)


def key_text(secret: bytes) -> str:
    """The key file's content."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return (f"# allsky-tasks authentication key, created {stamp}\n"
            "# It tags this device's verification records and copies (HMAC-SHA256).\n"
            "# Keep a copy OFF the device, beside the age identity; never at a copy target.\n"
            f"{_MAGIC} {secret.hex()}\n")


def write_new(path: Path, text: str) -> None:
    """Create a key file (mode 0600, never overwriting, never through a link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | safefs.NOFOLLOW, 0o600)
    except FileExistsError:
        raise UnsafePathError(f"{path} already exists; not overwritten",
                              hint="choose another file name") from None
    try:
        os.set_blocking(fd, True)
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(text.encode("ascii"))
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure(path: Path | None = None) -> tuple[AuthKey, bool]:
    """This device's key, made on first use; (key, whether it was made now)."""
    path = key_path() if path is None else path
    key = load(path)
    if key is not None:
        return key, False
    with contextlib.suppress(UnsafePathError):  # another process made it meanwhile: use theirs
        write_new(path, key_text(secrets.token_bytes(32)))
    key = load(path)
    if key is None:
        raise UnsafePathError(f"{path}: the authentication key vanished while it was made")
    return key, True
