"""Media frames and the threaded archive writer: real zstd streams, real files."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

from allsky_tasks.archive.compression import MEDIA_MIN, SWITCH_MIN, FramedZstdWriter, frame_wanted
from allsky_tasks.archive.io import ZstdFrameWalker
from allsky_tasks.archive.verify import verify
from allsky_tasks.archive.writer import WINDOW, HashingWriter
from allsky_tasks.errors import VerifyError

from ..conftest import Site, archive_metadata, backup, gnu_tar_extract, make_site, tree_state


def _skewed(n: int, seed: int = 1) -> bytes:
    """Bytes with no repeats worth matching but a skewed byte histogram, like JPEG entropy data."""
    rng = random.Random(seed)
    return bytes(rng.choices(range(256), weights=[1 + (i % 16) ** 2 for i in range(256)], k=n))


def _frames(data: bytes) -> int:
    """Whole zstd frames in a stream (and it must end on a frame boundary)."""
    walker = ZstdFrameWalker()
    walker.feed(data)
    assert walker.complete
    return walker.frames


def _decode(blob: bytes) -> bytes:
    """Every frame of a stream, decompressed back to back."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    return reader.read()


def _compress(parts: list[tuple[bool | None, bytes]], media_fast: bool) -> bytes:
    """Write parts through a FramedZstdWriter, selecting each part's kind first."""
    out = io.BytesIO()
    writer = FramedZstdWriter(out, 3, media_fast)
    for media, data in parts:
        writer.select(media)
        writer.write(data)
    writer.close()
    return out.getvalue()


def test_frame_wanted_by_suffix_and_size() -> None:
    assert frame_wanted("images/20250101/image-20250101-2000.JPG", MEDIA_MIN) is True
    assert frame_wanted("images/20250101/allsky-20250101.mp4", 1 << 30) is True
    assert frame_wanted("images/20250101/thumbnails/image.jpg", MEDIA_MIN - 1) is False
    assert frame_wanted("config/settings.json", SWITCH_MIN) is False
    assert frame_wanted("images/20250101/notes.txt", SWITCH_MIN - 1) is None
    assert frame_wanted("images/20250101/thumbnails/tiny.jpg", SWITCH_MIN - 1) is None


def test_media_frames_skip_the_entropy_stage() -> None:
    jpeg_like = _skewed(1 << 20)
    fast = _compress([(True, jpeg_like)], media_fast=True)
    level = _compress([(True, jpeg_like)], media_fast=False)
    # Huffman coding of literals is what shrinks such data; media frames leave it out.
    assert len(level) < 0.97 * len(jpeg_like)
    assert len(fast) > 0.99 * len(jpeg_like)
    for blob in (fast, level):
        assert _decode(blob) == jpeg_like


def test_kinds_switch_frames_and_decode_as_one_stream() -> None:
    text = b"".join(b"line %d of a log file\n" % i for i in range(20000))
    parts = [(False, text), (True, _skewed(300_000)), (None, b"tiny"), (True, _skewed(9, 2)),
             (False, text)]
    blob = _compress(parts, media_fast=True)
    assert _frames(blob) == 3  # text | media (the tiny one rides along) | text
    assert _decode(blob) == b"".join(p for _, p in parts)
    assert _frames(_compress(parts, media_fast=False)) == 1
    # Back on the level's settings after the media: text compresses as well as ever.
    alone = len(zstandard.ZstdCompressor(level=3).compress(text))
    assert len(blob) < 2 * alone + 300_013 + 1000  # frame and block headers, checksums


def test_archive_holds_media_frames_and_round_trips(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=2, frames_per_night=2, frame_size=(480, 360))
    assert max(p.stat().st_size for p in site.tree.images.rglob("image-*.jpg")) >= MEDIA_MIN
    archive = backup(site, "imgs", "type: images\nfolders: all\n")
    assert _frames(archive.read_bytes()) >= 2
    assert archive_metadata(archive)["allskyTasks"]["mediaCompression"] == "fast"
    sidecar = json.loads(archive.with_name(archive.name.removesuffix(".tar.zst") + ".json")
                         .read_text())
    assert verify(archive, sidecar)["ok"]
    gnu_tar_extract(archive, tmp_path / "out")
    assert tree_state(tmp_path / "out" / "images") == tree_state(site.tree.images)


def test_small_media_stay_in_frames_of_the_level(site: Site) -> None:
    # The demo's 160x120 frames and thumbnails are all below MEDIA_MIN, like a thumbnail tree.
    assert max(p.stat().st_size for p in site.tree.images.rglob("*.jpg")) < MEDIA_MIN
    for video in site.tree.images.rglob("*.mp4"):  # its timelapse stand-ins are not
        video.unlink()
    archive = backup(site, "imgs", "type: images\nfolders: all\n")
    assert _frames(archive.read_bytes()) == 1


def test_media_compression_level_writes_one_frame(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=1, frames_per_night=2, frame_size=(480, 360))
    archive = backup(site, "imgs", "type: images\nfolders: all\nmedia_compression: level\n")
    assert _frames(archive.read_bytes()) == 1
    assert archive_metadata(archive)["allskyTasks"]["mediaCompression"] == "level"


def test_archive_writer_hashes_exactly_what_it_writes(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    chunks = [_skewed(n, n) for n in (1, 4096, 131_072, 1 << 20)]
    with path.open("wb") as raw:
        writer = HashingWriter(raw)
        for chunk in chunks:
            writer.write(memoryview(bytearray(chunk)))  # a reused buffer must be copied
        writer.finish()
    data = path.read_bytes()
    assert data == b"".join(chunks)
    assert writer.size == len(data)
    assert writer.sha256.hexdigest() == hashlib.sha256(data).hexdigest()


class _FullDisk(io.RawIOBase):
    """A file that takes a few writes, then fails like a full disk."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= 1
        return len(data)


def test_archive_writer_error_reaches_the_writer_and_the_thread_ends() -> None:
    writer = HashingWriter(_FullDisk(room=2))  # type: ignore[arg-type]
    with pytest.raises(OSError) as info:
        for _ in range(1000):  # the thread reports the error on a later write or at finish
            writer.write(b"x" * 4096)
        writer.finish()
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        writer.finish()
    assert not writer._worker.alive


def test_archive_writer_hands_full_windows_to_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    block = _skewed(1 << 20, 7)
    with path.open("wb", buffering=1 << 20) as raw:
        writer = HashingWriter(raw)
        for i in range(3 * WINDOW // len(block) + 1):
            writer.write(bytes([i % 251]) + block[1:])
        writer.finish()
        behind = writer._behind
    # Two windows were started and the first waited for; everything arrived intact.
    assert behind.waited >= WINDOW and behind.started >= 2 * WINDOW
    data = path.read_bytes()
    assert len(data) == writer.size and hashlib.sha256(data).hexdigest() == writer.sha256.hexdigest()
    assert data[WINDOW * 2 + 1:WINDOW * 2 + len(block)] == block[1:]


def test_media_frame_archive_imports_and_verifies(tmp_path: Path) -> None:
    from allsky_tasks.inventory.full_read import verify_backup
    from allsky_tasks.inventory.importer import import_archive

    site = make_site(tmp_path, nights=2, frames_per_night=2, frame_size=(480, 360))
    ours = backup(site, "imgs", "type: images\nfolders: all\n")
    assert _frames(ours.read_bytes()) >= 3  # the hostile-archive checks see every frame
    upload = tmp_path / "upload"
    upload.mkdir()
    src = upload / ours.name
    src.write_bytes(ours.read_bytes())
    result = import_archive(src, tmp_path / "imported")
    assert result.report.kind == "ours"
    assert result.path.read_bytes() == ours.read_bytes()
    assert verify_backup(result.path)["ok"]


def test_verify_detects_a_flipped_bit_inside_a_media_frame(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=1, frames_per_night=3, frame_size=(480, 360))
    archive = backup(site, "imgs", "type: images\nfolders: all\n")
    data = bytearray(archive.read_bytes())
    assert _frames(bytes(data)) >= 3
    data[len(data) // 2] ^= 0x10  # the middle of the stream: JPEG frames, media settings
    archive.write_bytes(bytes(data))
    sidecar = json.loads(archive.with_name(archive.name.removesuffix(".tar.zst") + ".json")
                         .read_text())
    with pytest.raises(VerifyError, match="doesn't match checksum") as info:
        verify(archive, sidecar)
    assert str(archive) in str(info.value)


def _cached_bytes(path: Path) -> int | None:
    """Bytes of a file in the page cache (util-linux fincore), None where it cannot be told."""
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    if shutil.which("fincore") is None or fs.stdout.strip() in ("tmpfs", "ramfs"):
        return None  # there the page cache is the storage: nothing to evict
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def test_packed_archive_is_not_left_in_the_page_cache(tmp_path: Path) -> None:
    site = make_site(tmp_path, nights=2, frames_per_night=3, frame_size=(480, 360))
    archive = backup(site, "imgs", "type: images\nfolders: all\nmedia_compression: level\n")
    cached = _cached_bytes(archive)
    if cached is None:
        pytest.skip("no fincore, or the backups are on tmpfs")
    # Written out, fsynced and evicted: verify reads the disk, not what pack left in memory.
    assert archive.stat().st_size > 1 << 20 and cached < 64 << 10
    archive.read_bytes()
    assert _cached_bytes(archive) >= archive.stat().st_size - 4096  # fincore does see pages


def test_write_behind_evicts_windows_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb", buffering=1 << 20) as raw:
        writer = HashingWriter(raw)
        block = _skewed(1 << 20, 3)
        for i in range(4 * WINDOW // len(block)):
            writer.write(bytes([i % 251]) + block[1:])
        writer.finish()
        cached = _cached_bytes(path)
        if cached is None:
            pytest.skip("no fincore, or tmp_path is on tmpfs")
        # Windows already waited for are gone; only the last ones (at most two) may remain.
        assert writer._behind.waited >= 2 * WINDOW
        assert cached <= path.stat().st_size - writer._behind.waited + 4096
