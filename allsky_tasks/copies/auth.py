"""Authenticated copies: each copy at a target carries a tag only this device's key can make.

The age recipient is public and a target is writable by whoever runs it, so anyone could put a
valid `.tar.zst.age` (or a plain `.tar.zst`) there. Beside every archive it copies, the copy
stage stores `<stored name>.auth`: the stored file's name, size and SHA-256 with an HMAC-SHA256
over them made with the device's authentication key (archive/authkey.py), kept off the target.
`restore --from` checks the bytes it read against that tag and refuses a copy the key did not
make, encrypted or plain (borg's authenticated repository key works the same way).

`check_tag` takes only the name, size and SHA-256 of what was read and the tag's bytes, so a
restore that hashes while it streams calls it once the stream ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive import authkey
from ..archive.authkey import AuthKey
from ..errors import CopyAuthError
from .target import Target

SUFFIX = ".auth"
PURPOSE = "copy/1"
_LIMIT = 64 << 10


def tag_name(stored: str) -> str:
    """Where a stored copy's tag lives at the target."""
    return stored + SUFFIX


def make_tag(key: AuthKey, name: str, size: int, sha256: str) -> bytes:
    """The tag file for one stored copy."""
    doc = {"format": 1, "name": name, "size": size, "sha256": sha256, "key": key.fingerprint,
           "tag": key.tag(PURPOSE, name, size, sha256)}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class Tag:
    """A parsed tag file: what it claims, and the MAC over the claim."""

    name: str
    size: int
    sha256: str
    key: str  # fingerprint of the key that made it
    mac: str


def parse_tag(data: bytes | None) -> Tag | None:
    """A tag file's content (None: absent or not a tag at all)."""
    if data is None or len(data) > _LIMIT:
        return None
    try:
        doc: Any = json.loads(data)
        return Tag(str(doc["name"]), int(doc["size"]), str(doc["sha256"]), str(doc["key"]),
                   str(doc["tag"]))
    except (ValueError, KeyError, TypeError):
        return None


_TRUST = "if you trust everyone who can write there, restore it anyway with --trust-target"


def precheck(key: AuthKey, name: str, tag: bytes | None, where: str, key_file: str = "") -> Tag:
    """Before anything big is fetched: a tag is there, this key made it, for this name."""
    parsed = parse_tag(tag)
    if parsed is None:
        raise CopyAuthError(
            f"copy target {where}: {name} has no {'usable ' if tag else ''}authentication tag "
            f"({tag_name(name)}), so nothing shows this device's key made it: a copy made "
            "before copies were authenticated, or one someone else put there; nothing was "
            "restored",
            hint="on the Pi that made it, the next backup that copies there tags the copies it "
                 f"recorded (allsky-tasks run); or, {_TRUST}")
    if parsed.key != key.fingerprint:
        raise CopyAuthError(
            f"copy target {where}: {name} was tagged by another key (fingerprint {parsed.key}; "
            f"the key {key_file or 'given'} is {key.fingerprint}); nothing was restored",
            hint="pass --auth-key with the allsky-tasks-auth.key kept beside the identity of "
                 f"the Pi that made the copy; or, {_TRUST}")
    if parsed.name != name or not key.check(parsed.mac, PURPOSE, parsed.name, parsed.size,
                                             parsed.sha256):
        raise CopyAuthError(
            f"copy target {where}: the authentication tag of {name} is not genuine (changed, "
            "or made for another file); nothing was restored",
            hint=f"restore another copy (allsky-tasks list --target ...); or, {_TRUST}")
    return parsed


def check_tag(key: AuthKey, name: str, size: int, sha256: str, tag: bytes | None,
              where: str, *, key_file: str = "") -> None:
    """Refuse a copy this key did not make: no tag, another key's, or bytes it does not cover.

    `name`, `size`, `sha256`: the stored file as read from the target; `where`: the target as
    messages name it. Raises CopyAuthError saying what to do.
    """
    parsed = precheck(key, name, tag, where, key_file)
    if (parsed.size, parsed.sha256) != (size, sha256):
        raise CopyAuthError(
            f"copy target {where}: {name} is not what this device copied there ({size} bytes, "
            f"SHA-256 {sha256[:16]}...; its tag says {parsed.size} bytes, "
            f"{parsed.sha256[:16]}...): changed after it was made; nothing was restored",
            hint=f"restore another copy (allsky-tasks list --target ...); or, {_TRUST}")


def read_tag(target: Target, stored: str) -> bytes | None:
    """The tag file of a stored copy at the target (None: there is none)."""
    name = tag_name(stored)
    if name not in {f.name for f in target.list_files()}:
        return None
    with target.open_read(name) as stream:
        return bytes(stream.read(_LIMIT + 1))


def restore_key(auth_key: Path | None, identity: Path | None) -> AuthKey | None:
    """The key a restore checks copies with: --auth-key, else the one kept beside the
    identity, else this device's own (a restore on the Pi that made the copies)."""
    if auth_key is not None:
        key = authkey.load(Path(auth_key).expanduser(), ours=False)
        if key is None:
            raise CopyAuthError(f"authentication key {auth_key}: no such file",
                                hint="give the allsky-tasks-auth.key kept beside the identity")
        return key
    if identity is not None:
        beside = Path(identity).expanduser().parent / authkey.FILE_NAME
        key = authkey.load(beside, ours=False)
        if key is not None:
            return key
    return authkey.load()


def no_key_error(where: str) -> CopyAuthError:
    """What to say when a restore has no key to check a copy with."""
    return CopyAuthError(
        f"copy target {where}: no authentication key to check its copies with (none given, "
        f"none beside the identity, none at {authkey.key_path()}); nothing was fetched",
        hint="pass --auth-key FILE (the allsky-tasks-auth.key `allsky-tasks keygen` wrote "
             f"beside the identity); or, {_TRUST}")
