"""An archive read again for a restore: a tar stream capped again, its damage blamed on the archive."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from ..archive.io import CHUNK, HashingReader, open_decompressed
from ..archive.safety import ArchiveRejected, Limits
from ..archive.verify import CORRUPT
from ..safefs import open_source

__all__ = ["CappedReader", "open_tar", "read_member"]


class CappedReader:
    """The decompressed stream, counted and capped as safety.Limits says."""

    # The archive may have been swapped for a bomb since it was checked: cap again.

    def __init__(self, stream: BinaryIO, hashed: HashingReader, archive: Path, limits: Limits,
                 max_bytes: int | None) -> None:
        self.stream, self.hashed, self.archive, self.limits = stream, hashed, archive, limits
        self.cap = min(limits.max_total_bytes, max_bytes or limits.max_total_bytes)
        self.pos = 0

    def read(self, size: int | None = -1) -> bytes:
        """Read, then stop at once if a limit was passed."""
        data = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.pos += len(data)
        if self.pos > self.cap:
            raise ArchiveRejected(self.archive, f"more than {self.cap} bytes when decompressed "
                                  "(limit, or more than when it was checked)")
        if self.pos > self.limits.ratio_grace_bytes and \
                self.pos > self.limits.max_ratio * max(self.hashed.size, 1):
            raise ArchiveRejected(self.archive, "decompresses to more than "
                                  f"{self.limits.max_ratio:g} times its size (a bomb?)")
        return data


@contextmanager
def open_tar(archive: Path, limits: Limits, max_bytes: int | None = None
             ) -> Iterator[tarfile.TarFile]:
    """The archive as a capped tar stream."""
    with open_source(archive) as raw:  # never blocking on a FIFO swapped in since the checks
        hashed = HashingReader(raw)
        capped = CappedReader(open_decompressed(archive, hashed), hashed, archive, limits,
                              max_bytes)
        try:
            # Stream mode only reads; the stub's file protocol asks for seek and write too.
            # Opened here, not in a with (SIM115), so a damaged first header is named; `with tar` closes it.
            tar = tarfile.open(fileobj=capped, mode="r|", bufsize=CHUNK)  # type: ignore[call-overload]  # noqa: SIM115
        except CORRUPT as e:  # it reads the first header already
            raise ArchiveRejected(archive, f"damaged or truncated: {type(e).__name__}: {e}") from e
        with tar:
            yield tar


def read_member(source: IO[bytes], archive: Path, name: str) -> bytes:
    """One chunk of member data; damage is the archive's fault, not ours."""
    try:
        return source.read(CHUNK)
    except CORRUPT as e:
        raise ArchiveRejected(archive, f"damaged or truncated: {type(e).__name__}: {e}",
                              name) from e
