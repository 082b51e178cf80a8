"""What every copy target can do: the protocol the copy stage, inventory and restore use.

A target kind (path, ssh, s3, rclone, ftp, Allsky's Remote Server) is one module with a class
implementing `Target`; `KINDS` maps the spec key to it, imported only when a spec uses it, so a
no-op run never loads boto3 or paramiko.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Mapping, Protocol

# Spec key of a `copies:` item -> "module:Class" below allsky_tasks.copies.
KINDS: dict[str, str] = {
    "path": "path:PathTarget",
    "ssh": "ssh:SshTarget",
    "s3": "s3:S3Target",
    "rclone": "rclone:RcloneTarget",
    "allsky_remote": "allsky_remote:AllskyRemoteTarget",
}

Progress = Callable[[int], None]  # called with the bytes moved since the last call


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


def target_from_spec(item: Mapping[str, Any], context: Mapping[str, Any]) -> Target:
    """Build the Target for one `copies:` item (exactly one kind key) of a spec."""
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        raise ValueError(f"copies item {item.get('name')!r} needs exactly one of {', '.join(KINDS)}")
    module, cls = KINDS[kinds[0]].split(":")
    factory = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    return factory(item, context)
