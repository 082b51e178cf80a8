"""What every copy target can do: the protocol the copy stage, inventory and restore use.

A target kind (path, ssh, s3, rclone, ftp, Allsky's Remote Server) is one module with a class
implementing `Target`; `KINDS` maps the spec key to it, imported only when a spec uses it, so a
no-op run never loads boto3 or paramiko.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

# Spec key of a `copies:` item -> "module:Class" below allsky_tasks.copies.
KINDS: dict[str, str] = {
    "path": "path:PathTarget",
    "ssh": "ssh:SshTarget",
    "s3": "s3:S3Target",
    "rclone": "rclone:RcloneTarget",
    "allsky_remote": "allsky_remote:AllskyRemoteTarget",
}

Progress = Callable[[int], None]  # called with the bytes moved since the last call
# The names this tool stores at a target: archives and sidecars, maybe encrypted.
OWN_NAME = (r"allsky-(?:config|images)-backup-[^/\x00-\x1f]+"
            r"\.(?:tar\.zst|tar\.gz|json)(?:\.age)?")
# Their temporary names while a copy is written (path, ssh, rclone, ftp).
TEMP_NAME = re.compile(rf"^\.({OWN_NAME})\.part$")


_CONTROL = re.compile("[\x00-\x1f\x7f\x80-\x9f\ud800-\udfff]")


def listed_name_ok(name: str) -> bool:
    """Whether a name from a target's listing may be used at all: one plain file name.

    A newline (or any control character) in a name could forge a line of a listing, or an
    entry of ours; such names are refused (left out), as are '/', '.' and '..'.
    """
    return bool(name) and name not in (".", "..") and "/" not in name and not _CONTROL.search(name)


@dataclass(frozen=True)
class RemoteFile:
    """One file a target holds: its name (no folders) and size, and a SHA-256 if the listing has it."""

    name: str
    size: int
    sha256: str | None = None


class Target(Protocol):
    """A place copies go. Every method raises CopyError naming the target on failure."""

    name: str  # the operator's name for it, from the spec

    def describe(self) -> str:
        """Where it is, for messages: `usb (/media/usb/allskybackups)`, `nas (pi@nas:backups)`."""

    def check_ready(self) -> None:
        """Refuse before anything is stopped or written: not mounted, unreachable, unknown host key."""

    def list_files(self) -> list[RemoteFile]:
        """Every file in the target's folder/prefix (hidden temp files included, so they can be resumed)."""

    def put(self, local: BinaryIO, size: int, name: str, progress: Progress) -> None:
        """Store `size` bytes under `name`: hidden temp name, durable, then renamed; resume a partial one."""

    def remote_sha256(self, name: str) -> str | None:
        """The SHA-256 the target computes itself (sha256sum, S3 checksum, rclone hashsum), or None."""

    def open_read(self, name: str) -> BinaryIO:
        """Stream a stored file back (verify without a remote hash, restore --from)."""

    def delete(self, name: str) -> None:
        """Remove a file this tool wrote there (retention)."""


class StagedTarget(Target, Protocol):
    """Optional extension: targets that let the stage verify a copy BEFORE it gets
    its final name, so nothing unverified is ever visible under a final name.

    The copy stage (copies/stage.py) uses these when a target has them (checked with
    `hasattr(target, "put_hidden")`), else plain `put` followed by a verify, deleting the copy
    again when it does not match. Other optional methods the stage calls when present:
    `close()` (end connections) and `hidden_name(name)`.
    """

    def put_hidden(self, local: BinaryIO, size: int, name: str, progress: Progress) -> str:
        """Store under a hidden temp name, durable, resuming a matching partial; return that name."""

    def publish(self, hidden: str, name: str) -> None:
        """Atomically rename a verified hidden file to its final name."""


class Encryptor(Protocol):
    """Encrypted copies (copies/encrypt.py implements it): the stage stores the ciphertext
    under `name + suffix` and records and verifies the ciphertext's size and SHA-256."""

    suffix: str  # ".age"

    def encrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        """Write the ciphertext of all of `src` to `dst`."""

    def decrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        """Write the plaintext of all of `src` to `dst`; EncryptionError when it cannot."""


def target_from_spec(item: Mapping[str, Any], context: Mapping[str, Any]) -> Target:
    """Build the Target for one `copies:` item (exactly one kind key) of a spec.

    `context` holds `home` (Path: the Allsky home, for mount checks), `spec` (the spec name)
    and `state_dir` (Path: `<backup dir>/.allsky-tasks`, for private temp files).
    """
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        raise ValueError(f"copies item {item.get('name')!r} needs exactly one of {', '.join(KINDS)}")
    module, cls = KINDS[kinds[0]].split(":")
    factory: Callable[..., Target] = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    return factory(item, context)
