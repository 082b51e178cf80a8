"""zstd settings per member: already-compressed media skip zstd's entropy stage."""

from __future__ import annotations

import os
from typing import IO, Any

MEDIA_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".heic",  # images
    ".mp4", ".mkv", ".mov", ".webm", ".avi",  # timelapses
    ".zst", ".gz", ".tgz", ".xz", ".bz2", ".zip", ".7z",  # archives
})
# A non-media file smaller than this rides in whatever frame is open: switching frames for it
# would cost more (a frame end, a lost window) than its compression could gain.
SWITCH_MIN = 4096
# Media smaller than this are not worth a media frame: with their tar headers and padding,
# 1 KB thumbnails packed 18-23 % bigger without the entropy stage (300 KB frames: 1.5 %).
MEDIA_MIN = 64 << 10
MEDIA_CHOICES = ("fast", "level")
THREADS = min(os.cpu_count() or 1, 4)
JOB_SIZE = 4 << 20


def is_media(name: str) -> bool:
    """True for a file whose format is already compressed (by its name's suffix)."""
    return os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES


def frame_wanted(name: str, size: int) -> bool | None:
    """The frame a file member wants: True media, False normal, None either."""
    if size >= MEDIA_MIN and is_media(name):
        return True
    return False if size >= SWITCH_MIN else None


def zstd_params(level: int, media: bool, threads: int = THREADS) -> Any:
    """Compression parameters for normal members or for media ones."""
    import zstandard  # lazily: plan and doit list must start fast

    # Job size 4 MiB, at most 4 workers: measured +25/+37 MB over one thread on 2/4 cores,
    # against +45/+64 MB with libzstd's defaults; a 1 GB Pi keeps its headroom.
    common = {"threads": threads, "write_checksum": True}
    if threads > 0:
        common["job_size"] = JOB_SIZE
    if not media:
        return zstandard.ZstdCompressionParameters.from_level(level, **common)
    # Strategy fast with a target length > 0 turns off literal (Huffman) compression in libzstd:
    # on camera JPEGs that stage costs ~4x the CPU of everything else and saves about 2 %.
    return zstandard.ZstdCompressionParameters.from_level(
        1, strategy=zstandard.STRATEGY_FAST, target_length=1, **common)


class FramedZstdWriter:
    """A zstd stream that ends a frame and changes settings when members change kind."""

    def __init__(self, out: IO[bytes], level: int, media_fast: bool) -> None:
        import zstandard

        self._zstd, self.out, self.media_fast = zstandard, out, media_fast
        self._cctx = {False: zstandard.ZstdCompressor(compression_params=zstd_params(level, False))}
        self._level, self.media, self.frames, self._fresh = level, False, 0, True
        self._writer = self._cctx[False].stream_writer(out, closefd=False)

    def select(self, media: bool | None) -> None:
        """Use the media settings (True) or the normal ones (False) from the next byte on."""
        if media is None or not self.media_fast or media == self.media:
            return
        if not self._fresh:  # an empty frame would only cost bytes
            self._writer.flush(self._zstd.FLUSH_FRAME)  # frames decode back to back
            self.frames += 1
        cctx = self._cctx.get(media)
        if cctx is None:
            cctx = self._cctx[media] = self._zstd.ZstdCompressor(
                compression_params=zstd_params(self._level, media))
        self._writer, self.media = cctx.stream_writer(self.out, closefd=False), media
        self._fresh = True

    def write(self, data: bytes | memoryview) -> int:
        """Compress more of the current frame."""
        self._fresh = self._fresh and not len(data)
        return self._writer.write(data)

    def close(self) -> None:
        """End the last frame (with its checksum); a stream has at least one frame."""
        if not self._fresh or not self.frames:
            self._writer.close()  # type: ignore[no-untyped-call]  # zstandard's stub leaves close() bare
            self.frames += 1
