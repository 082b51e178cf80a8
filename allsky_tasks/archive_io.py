"""Compressed tar streams: write with hashing and atomic rename, read to the very end."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, Iterator

import zstandard

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20  # 1 MiB: tarfile's 16 KiB default doubles the time on large files
SUFFIXES = (".tar.zst", ".tar.gz")


def archive_format(path: Path | str) -> str:
    """'zstd' or 'allsky' (gzip) from an archive's name."""
    name = str(path)
    if name.endswith((".tar.zst", ".tzst")):
        return "zstd"
    if name.endswith((".tar.gz", ".tgz")):
        return "allsky"
    raise ValueError(f"{name}: not a .tar.zst or .tar.gz archive")


class HashingWriter(io.RawIOBase):
    """Counts and hashes every compressed byte on its way to the file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        """This is a write-only stream."""
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        """Hash, count and pass on."""
        self.sha256.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)


class HashingReader(io.RawIOBase):
    """Counts and hashes every compressed byte read from the file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        """This is a read-only stream."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read, hash and count."""
        n = self.raw.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self.sha256.update(view)
            self.size += n
        return n or 0


class TarStream:
    """Writes tar members (PAX format) to a byte stream, headers via tarfile."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.offset = 0

    def _write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.offset += len(data)

    def header(self, info: tarfile.TarInfo) -> None:
        """Write one member header (a PAX extended header first when needed)."""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def data(self, chunk: bytes | memoryview) -> None:
        """Write member data."""
        self._write(chunk)

    def pad(self, size: int) -> None:
        """Pad member data of `size` bytes to the next block."""
        rest = size % BLOCK
        if rest:
            self._write(b"\0" * (BLOCK - rest))

    def close(self) -> None:
        """Write the end-of-archive marker and pad to a full record, as tarfile does."""
        self._write(b"\0" * (2 * BLOCK))
        rest = self.offset % RECORD
        if rest:
            self._write(b"\0" * (RECORD - rest))


@contextmanager
def compressed_writer(fmt: str, level: int, raw: BinaryIO, mtime: int) -> Iterator[
        tuple[IO[bytes], HashingWriter]]:
    """A writable stream compressing into `raw`; also yields the hashing layer."""
    hashed = HashingWriter(raw)
    if fmt == "zstd":
        # Frame checksum on, so one flipped bit anywhere fails decompression.
        cctx = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
        stream = cctx.stream_writer(hashed, closefd=False)
        yield stream, hashed
        stream.flush(zstandard.FLUSH_FRAME)
        stream.close()
    else:
        gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=hashed,
                           mtime=mtime)
        yield gz, hashed
        gz.close()


def open_decompressed(path: Path, raw: BinaryIO) -> BinaryIO:
    """A decompressing reader over `raw` for the archive's format."""
    if archive_format(path) == "zstd":
        dctx = zstandard.ZstdDecompressor()
        # read_across_frames: a second frame appended to the file must not hide.
        return dctx.stream_reader(raw, read_size=CHUNK, read_across_frames=True)  # type: ignore[return-value]
    return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def drain(stream: BinaryIO) -> int:
    """Read a stream to its end (gzip CRC and zstd checksums are only checked there)."""
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return total
        total += len(chunk)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Write a small file via a temp name, fsync and rename."""
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
