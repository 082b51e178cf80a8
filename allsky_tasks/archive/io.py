"""Compressed tar streams: write with hashing and atomic rename, read to the very end."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

import zstandard

# Re-exported: the archive code writes and syncs through these names.
from ..safefs import atomic_write_bytes as atomic_write_bytes
from ..safefs import fsync_dir as fsync_dir
from .compression import FramedZstdWriter
from .tar_header import ustar_header
from .writer import HashingWriter

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1 << 20  # 1 MiB: tarfile's 16 KiB default doubles the time on large files
SUFFIXES = (".tar.zst", ".tar.gz")
ARCHIVE_MODE = 0o640  # config archives hold env.json secrets: never world-readable


def archive_format(path: Path | str) -> str:
    """'zstd' or 'allsky' (gzip) from an archive's name."""
    name = str(path)
    if name.endswith((".tar.zst", ".tzst")):
        return "zstd"
    if name.endswith((".tar.gz", ".tgz")):
        return "allsky"
    raise ValueError(f"{name}: not a .tar.zst or .tar.gz archive")


class HashingReader(io.RawIOBase):
    """Counts and hashes every compressed byte read from the file."""

    def __init__(self, raw: IO[bytes], observer: Callable[[memoryview], None] | None = None
                 ) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.observer = observer

    def readable(self) -> bool:
        """This is a read-only stream."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # narrower: what readers pass
        """Read, hash and count."""
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]  # a binary file has it; typing.IO omits it
        if n:
            view = memoryview(buffer)[:n]
            self.sha256.update(view)
            self.size += n
            if self.observer is not None:
                self.observer(view)
        return n or 0


class ByteSink(Protocol):
    """Where a tar stream writes: a compressor in front of the archive file, or any binary file."""

    def write(self, data: bytes | memoryview, /) -> int: ...


class TarStream:
    """Writes tar members (PAX format, headers as tarfile makes them) to a byte stream."""

    def __init__(self, out: ByteSink) -> None:
        self.out = out
        self.offset = 0

    def _write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.offset += len(data)

    def member(self, name: str, kind: bytes, size: int, mode: int, uid: int, gid: int,
               mtime: int, linkname: str = "", uname: str = "", gname: str = "",
               mtime_ns: int | None = None) -> None:
        """Write one member header (a PAX extended header first when needed)."""
        self._write(ustar_header(name, kind, size, mode, uid, gid, mtime, linkname, uname,
                                 gname, mtime_ns))

    def select(self, media: bool | None) -> None:
        """Compress what follows as media or not, where the stream can (zstd frames)."""
        select = getattr(self.out, "select", None)
        if select is not None:
            select(media)

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
def compressed_writer(fmt: str, level: int, raw: BinaryIO, mtime: int,
                      media_fast: bool = True) -> Iterator[tuple[ByteSink, HashingWriter]]:
    """A writable stream compressing into `raw`; also yields the hashing layer."""
    hashed = HashingWriter(raw)
    try:
        if fmt == "zstd":
            # Frame checksums on, so one flipped bit anywhere fails decompression.
            # zstd only writes to it; its stub wants typing.IO, which an io.RawIOBase is not.
            stream = FramedZstdWriter(cast(IO[bytes], hashed), level, media_fast)
            yield stream, hashed
            stream.close()  # ends the last frame (with its checksum)
        else:
            gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=hashed,
                               mtime=mtime)
            yield gz, hashed
            gz.close()
    except BaseException:
        hashed.finish(raise_error=False)  # the first failure is the one to report
        raise
    hashed.finish()


def open_decompressed(path: Path, raw: IO[bytes] | HashingReader) -> BinaryIO:
    """A decompressing reader over `raw` for the archive's format."""
    # Both decompressors only read from it; zstandard's stub wants typing.IO, which an
    # io.RawIOBase (HashingReader) is not.
    source = cast(IO[bytes], raw)
    if archive_format(path) == "zstd":
        dctx = zstandard.ZstdDecompressor()
        # read_across_frames: a second frame appended to the file must not hide.
        return dctx.stream_reader(source, read_size=CHUNK, read_across_frames=True)
    # A GzipFile has every method of a binary file, but typeshed does not call it a typing.BinaryIO.
    return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[return-value]  # see above


def drain(stream: BinaryIO) -> int:
    """Read a stream to its end (gzip CRC and zstd checksums are only checked there)."""
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return total
        total += len(chunk)


class ZstdFrameWalker:
    """Follows zstd frame and block headers as raw bytes pass (RFC 8878).

    libzstd and python-zstandard return silently when input ends mid-frame, so a file cut
    just before its checksum would read as complete; this walker notices.
    """

    _MAGIC = 0xFD2FB528

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0  # parse position in buf: slicing per header was quadratic
        self.skip = 0
        self.state = "magic"
        self.frames = 0
        self.checksum = False

    def _left(self) -> int:
        """Unparsed bytes held in the buffer."""
        return len(self.buf) - self.pos

    def _need(self, n: int) -> bytes | None:
        """Take n header bytes if they have arrived."""
        if self._left() < n:
            return None
        head = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return head

    def feed(self, data: bytes | memoryview) -> None:
        """Consume the next raw bytes."""
        if self.skip and not self._left():
            # Fast path: block contents are skipped without copying.
            step = min(self.skip, len(data))
            self.skip -= step
            data = data[step:]
        if len(data):
            if self.pos:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += data
            self._parse()

    def _parse(self) -> None:
        """Advance over as many headers as the buffer holds."""
        while True:
            if self.skip:
                step = min(self.skip, self._left())
                self.skip -= step
                self.pos += step
                if self.skip:
                    return
            elif self.state == "magic":
                head = self._need(4)
                if head is None:
                    return
                magic = int.from_bytes(head, "little")
                if magic == self._MAGIC:
                    self.state = "fhd"
                elif magic & 0xFFFFFFF0 == 0x184D2A50:
                    self.state = "skippable"
                else:
                    raise ValueError("not a zstd frame")
            elif self.state == "skippable":
                head = self._need(4)
                if head is None:
                    return
                self.skip, self.state = int.from_bytes(head, "little"), "magic"
            elif self.state == "fhd":
                if not self._left():
                    return
                fhd = self.buf[self.pos]
                single, fcs_flag, dict_flag = fhd >> 5 & 1, fhd >> 6, fhd & 3
                self.checksum = bool(fhd >> 2 & 1)
                size = 1 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag] + (
                    (1 if single else 0), 2, 4, 8)[fcs_flag]
                if self._need(size) is None:
                    return
                self.state = "block"
            elif self.state == "block":
                head = self._need(3)
                if head is None:
                    return
                value = int.from_bytes(head, "little")
                last, kind, size = value & 1, value >> 1 & 3, value >> 3
                if kind == 3:
                    raise ValueError("reserved zstd block type")
                self.skip = 1 if kind == 1 else size
                if last:
                    self.state = "checksum" if self.checksum else "end"
            elif self.state == "checksum":
                if self._need(4) is None:
                    return
                self.state = "end"
            elif self.state == "end":
                self.frames += 1
                self.state = "magic"
                if not self._left():
                    return

    @property
    def complete(self) -> bool:
        """True at a frame boundary after at least one whole frame."""
        done = self.state in ("magic", "end") and not self._left() and not self.skip
        return done and (self.frames > 0 or self.state == "end")
