"""One error root for the tool, with a subclass (and exit code) per stage.

Also `os_message`: the one sentence for an OSError on a path, used wherever a file error
becomes our message (pack sources, the undo backup, restore placement, state files).
"""

from __future__ import annotations

import errno
import os

# What an errno means to an operator, as the rest of a sentence that starts with the path.
_PLAIN = {
    errno.ENOSPC: "the disk is full (No space left on device)",
    errno.EDQUOT: "the disk quota is used up",
    errno.ELOOP: "is a symbolic link (or reached through one), and links are never followed here",
    errno.ENXIO: "is a socket, FIFO or device, not a regular file",
    errno.EWOULDBLOCK: "is a FIFO or socket, not a regular file",
    errno.EACCES: "Permission denied",
    errno.EPERM: "Operation not permitted",
    errno.ENOENT: "does not exist (removed or renamed meanwhile?)",
    errno.EROFS: "is on a read-only file system",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of its path is not a folder",
    errno.ENOTEMPTY: "is a folder that is not empty",
    errno.EEXIST: "already exists",
    errno.EIO: "input/output error: the disk or card may be failing",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EFBIG: "the file is too large for this file system",
    errno.EBUSY: "is busy (in use, or a mount point)",
    errno.EXDEV: "is on another file system",
    errno.EMFILE: "too many files are open",
}


def os_message(exc: OSError, path: str | os.PathLike[str] | None = None, doing: str = "") -> str:
    """`<path>: <what happened, in plain words>[, while <doing>]` for an OSError.

    `path` is the file as the operator knows it; without it, the error's own file names
    (which a write() on a full disk, or a call relative to a folder descriptor, lacks).
    """
    where: object = path
    if where is None and exc.filename is not None:
        where = os.fsdecode(exc.filename) + (f" -> {os.fsdecode(exc.filename2)}" if exc.filename2 else "")
    what = _PLAIN.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__
    text = f"{where}: {what}" if where is not None else what
    return f"{text}, while {doing}" if doing else text


class AllskyTasksError(Exception):
    """Root of every error the tool reports to an operator."""

    exit_code = 1
    stage = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class SpecError(AllskyTasksError):
    """A backup spec failed to parse, the schema or a semantic check."""

    exit_code = 10
    stage = "spec"

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class ScanError(AllskyTasksError):
    """The sources could not be walked."""

    exit_code = 11
    stage = "scan"


class SpaceError(AllskyTasksError):
    """Not enough free space at the destination."""

    exit_code = 12
    stage = "space"


class LockError(AllskyTasksError):
    """Another run holds the lock on the destination."""

    exit_code = 13
    stage = "lock"


class PackError(AllskyTasksError):
    """Writing the archive failed; no archive was left visible."""

    exit_code = 14
    stage = "pack"


class ServiceError(AllskyTasksError):
    """The Allsky service would not stop or start."""

    exit_code = 15
    stage = "service"


class ServiceStopError(ServiceError):
    """The service would not stop: nothing was written."""

    exit_code = 15


class ServiceStartError(ServiceError):
    """The service would not start again after packing (the archive is kept)."""

    exit_code = 16


class ManifestError(AllskyTasksError):
    """The manifest/sidecar could not be written."""

    exit_code = 17
    stage = "manifest"


class VerifyError(AllskyTasksError):
    """The archive does not match its manifest."""

    exit_code = 18
    stage = "verify"

    def __init__(self, archive: str, problems: list[str]) -> None:
        self.archive = archive
        self.problems = list(problems)
        shown = "\n".join(f"  {archive}: {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(
            f"verify failed for {archive} ({len(self.problems)} problem(s)):\n{shown}",
            hint="do not rely on this archive; run the backup again",
        )


class UnsafeArchiveError(AllskyTasksError):
    """An archive from outside failed a safety check."""

    exit_code = 19
    stage = "safety"


class InventoryError(AllskyTasksError):
    """Listing, import, delete, pin or prune failed."""

    exit_code = 20
    stage = "inventory"


class RestoreError(AllskyTasksError):
    """A restore check or step failed."""

    exit_code = 21
    stage = "restore"


class CopyError(AllskyTasksError):
    """A copy to a target (mounted disk, SSH, S3, rclone, Allsky's Remote Server) failed."""

    exit_code = 22
    stage = "copy"


class CopyAuthError(CopyError):
    """A copy at a target was not made by this device's key (or carries no tag): not restored."""

    exit_code = 28
    stage = "copy"


class EncryptionError(AllskyTasksError):
    """Encrypting a copy, or decrypting one (wrong or missing identity), failed."""

    exit_code = 23
    stage = "encrypt"


class DestinationError(AllskyTasksError):
    """A destination or target meant to be a mounted disk is not mounted, or not writable."""

    exit_code = 24
    stage = "destination"


class ScheduleError(AllskyTasksError):
    """Installing, showing or removing the schedule failed."""

    exit_code = 25
    stage = "schedule"


class UnhealthyError(AllskyTasksError):
    """`status` found a spec unhealthy (stale, failing or never verified backups)."""

    exit_code = 26
    stage = "status"


class UnsafePathError(AllskyTasksError):
    """A file in the backup or state folder is a link, not ours, or not a regular file."""

    exit_code = 27
    stage = "safety"


EXIT_CODES: dict[str, int] = {
    cls.__name__: cls.exit_code
    for cls in (
        AllskyTasksError, SpecError, ScanError, SpaceError, LockError, PackError,
        ServiceStopError, ServiceStartError, ManifestError, VerifyError,
        UnsafeArchiveError, InventoryError, RestoreError, CopyError, CopyAuthError, EncryptionError,
        DestinationError, ScheduleError, UnhealthyError, UnsafePathError,
    )
}
