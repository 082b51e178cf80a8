"""How much an untrusted archive may make us read: the limits, and the stream that enforces them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import BinaryIO

from .io import CHUNK, HashingReader

__all__ = ["Limiter", "Limits", "Stop"]


@dataclass(frozen=True)
class Limits:
    """How much an untrusted archive may make us read (all configurable)."""

    max_members: int = 200_000
    max_total_bytes: int = 64 << 30
    max_ratio: float = 200.0
    ratio_grace_bytes: int = 8 << 20  # small archives of JSON legitimately compress very well
    max_metadata_bytes: int = 64 << 20
    max_header_bytes: int = 1 << 20  # tarfile reads PAX/GNU long-name headers whole


class Stop(Exception):
    """A rule failed mid-stream (not an OSError/ValueError, so no layer swallows it)."""

    def __init__(self, problem: str, member: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.member = problem, member


class Limiter:
    """The decompressed stream as tarfile reads it: counted, capped, its tail remembered."""

    def __init__(self, stream: BinaryIO, hashed: HashingReader, limits: Limits) -> None:
        self.stream, self.hashed, self.limits, self.pos = stream, hashed, limits, 0
        self.window: int | None = None  # while tarfile reads headers: how far it may read
        self.recent: deque[tuple[int, bytes]] = deque()

    def read(self, size: int = -1) -> bytes:
        """Read, then stop at once if a limit was passed."""
        data = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.recent.append((self.pos, data))
        self.pos += len(data)
        # Keep enough to re-check the block tarfile stopped at (it reads ahead <= CHUNK).
        while self.pos - self.recent[0][0] - len(self.recent[0][1]) > 3 * CHUNK:
            self.recent.popleft()
        lim = self.limits
        if self.pos > lim.max_total_bytes:
            raise Stop(f"more than {lim.max_total_bytes} bytes when decompressed (limit)")
        if self.pos > lim.ratio_grace_bytes and \
                self.pos > lim.max_ratio * max(self.hashed.size, 1):
            raise Stop(f"decompresses to more than {lim.max_ratio:g} times its compressed "
                        "size (a decompression bomb?)")
        if self.window is not None and self.pos > self.window:
            raise Stop(f"a member header larger than {lim.max_header_bytes} bytes")
        return data

    def tail_is_zero(self, start: int) -> bool:
        """True if every byte delivered from `start` on is NUL (and still remembered)."""
        if self.recent and self.recent[0][0] > start:
            return False
        tails = (data[max(0, start - begin):] for begin, data in self.recent)
        return all(tail.count(0) == len(tail) for tail in tails)
