"""The archive stream simulated for the estimate: what each part costs compressed, as pack compresses it."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from ..archive.compression import zstd_params

__all__ = ["OVERHEAD_KEY", "StreamSim"]

OVERHEAD_KEY = "<archive>"  # tar end, metadata.json's fixed fields, compression frame


def _compressor(fmt: str, level: int, media: bool = False
                ) -> tuple[Callable[[bytes], bytes], Callable[[bool], bytes]]:
    """compress(data) and flush(end) of one stream, compressed as pack writes it."""
    if fmt == "zstd":
        import zstandard  # lazily: plan and doit list must start fast

        params = zstd_params(level, media)
        zc = zstandard.ZstdCompressor(compression_params=params).compressobj()
        zmodes = (zstandard.COMPRESSOBJ_FLUSH_BLOCK, zstandard.COMPRESSOBJ_FLUSH_FINISH)
        return zc.compress, lambda end: zc.flush(zmodes[end])
    # Allsky's .tar.gz: the deflate stream GzipFile writes, with its gzip header
    z = zlib.compressobj(level, zlib.DEFLATED, 31)
    modes = (zlib.Z_SYNC_FLUSH, zlib.Z_FINISH)
    return z.compress, lambda end: z.flush(modes[end])


class StreamSim:
    """The archive stream, simulated: costs measured per part between flushes."""

    # Flushes move block boundaries (so the size): whole parts also go to an unflushed stream.

    def __init__(self, fmt: str, level: int, media_fast: bool = True) -> None:
        self.data, self.plain = _compressor(fmt, level), _compressor(fmt, level)
        # Pack puts media in frames of their own settings (compression.py): so does the sim.
        self.media = _compressor(fmt, level, True) if fmt == "zstd" and media_fast else None
        self.pending, self.plain_size, self.media_pending = 0, 0, 0
        self.costs: dict[tuple[str, str], int] = {("data", OVERHEAD_KEY): 0}

    def feed(self, chunk: bytes, whole: bool = True) -> None:
        """Compress more of the stream (samples are not whole: they stay out of the total)."""
        self.pending += len(self.data[0](chunk))
        if whole:
            self.plain_size += len(self.plain[0](chunk))

    def feed_media(self, chunk: bytes) -> None:
        """Compress media bytes (their cost is taken with mark_media)."""
        assert self.media is not None
        self.media_pending += len(self.media[0](chunk))

    def mark_media(self) -> int:
        """Media cost since the last mark_media."""
        assert self.media is not None
        n, self.media_pending = self.media_pending + len(self.media[1](False)), 0
        return n

    def mark(self, key: tuple[str, str] | None = None, end: bool = False) -> int:
        """Cost since the last mark, booked to `key` if that part was fed whole."""
        n, self.pending = self.pending + len(self.data[1](end)), 0
        if key is not None:
            self.costs[key] = self.costs.get(key, 0) + n
        return n

    def close(self) -> dict[tuple[str, str], float]:
        """Whole parts' costs, scaled to the unflushed stream's size."""
        self.mark(("data", OVERHEAD_KEY), end=True)
        scale = (self.plain_size + len(self.plain[1](True))) / max(1, sum(self.costs.values()))
        return {k: v * scale for k, v in self.costs.items()}
