"""The whole file's SHA-256 on a second core, read by a thread of its own.

For the check of a fresh archive: the thread reads the file (from the disk: pack evicted it)
while the caller decompresses and parses the same file; whichever touches a page first reads
it from the medium, the other finds it in the page cache. hashlib and file reads release the
GIL, so the hashing runs beside the parsing instead of before it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from .io import CHUNK


class FileDigest:
    """SHA-256 and size of a file, computed by a background thread."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._digest = hashlib.sha256()
        self.size = 0
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="archive-readback", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Read and hash to the end (or until stopped)."""
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            with open(self._fd, "rb", buffering=0, closefd=True) as fh:
                while not self._stop and (n := fh.readinto(buf)):
                    self._digest.update(view[:n])
                    self.size += n
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def result(self) -> tuple[str, int]:
        """Wait for the thread; (hex SHA-256, bytes read)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest(), self.size

    def stop(self) -> None:
        """Abandon the read (the check already failed)."""
        self._stop = True
        self._thread.join()
