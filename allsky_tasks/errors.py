"""One error root for the tool, with a subclass (and exit code) per stage."""

from __future__ import annotations


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
