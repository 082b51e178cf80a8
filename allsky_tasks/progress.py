"""Progress the operator can trust: real byte counts, a JSON-lines event stream, summaries."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

EVENTS_ENV = "ALLSKY_PROGRESS_FILE"
QUIET_ENV = "ALLSKY_QUIET"
INTERVAL_ENV = "ALLSKY_PROGRESS_INTERVAL"
# Each stage owns a slice of the whole backup's percentage; pack and verify read every byte.
SLICES: dict[str, tuple[float, float]] = {
    "validate": (0.0, 1.0), "scan": (1.0, 3.0), "plan": (3.0, 4.0), "pause": (4.0, 5.0),
    "pack": (5.0, 74.0),
    "resume": (74.0, 75.0), "manifest": (75.0, 76.0), "verify": (76.0, 90.0),
    "copy": (90.0, 99.0), "prune": (99.0, 99.0), "backup": (99.0, 100.0),
    # Other flows, each a whole of its own.
    "import": (0.0, 100.0), "restore-checks": (0.0, 40.0), "restore": (40.0, 100.0),
}


# Warnings of this process per spec, so the final summary can repeat every one of them.
RUN_WARNINGS: dict[str, list[str]] = {}
# Stages this process ran per spec, and each spec's first error: the run's recorded outcome.
RUN_STAGES: dict[str, list[str]] = {}
RUN_ERRORS: dict[str, tuple[str, BaseException]] = {}


def human(n: float) -> str:
    """Allsky's formatBytes: 1024-based, B/KB/MB/GB/TB, one decimal ("20.0 MB"; bytes whole)."""
    units = ("B", "KB", "MB", "GB", "TB")
    value, i = float(n), 0
    while abs(value) >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.0f} {units[i]}" if i == 0 else f"{value:.1f} {units[i]}"


def _eta(seconds: float | None) -> str:
    """ETA as m:ss."""
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class Progress:
    """One stage of one spec: counts bytes against a known total and reports as it goes."""

    spec: str
    stage: str
    total: int = 0
    events_path: str | None = field(default_factory=lambda: os.environ.get(EVENTS_ENV))
    quiet: bool = field(default_factory=lambda: os.environ.get(QUIET_ENV, "") not in ("", "0"))
    interval: float = field(
        default_factory=lambda: float(os.environ.get(INTERVAL_ENV, "") or 5.0))
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._t0 = self.clock()
        self._last_line = self._t0
        self._last_event = self._t0 - 1.0
        self._percent = SLICES.get(self.stage, (0.0, 100.0))[0]
        self._bar: Any = None
        self._current = ""

    # -- output ----------------------------------------------------------------
    def _event(self, kind: str, **data: Any) -> None:
        """Append one JSON object to the event stream, flushed at once."""
        if not self.events_path:
            return
        record = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
                  "spec": self.spec, "stage": self.stage, "event": kind,
                  "percent": round(self._percent, 2), **data}
        with open(self.events_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _say(self, text: str) -> None:
        """A line for the operator (not in quiet mode)."""
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def _rate(self) -> float:
        """Bytes per second so far."""
        elapsed = self.clock() - self._t0
        return self.done / elapsed if elapsed > 0 else 0.0

    def _overall(self) -> float:
        """Whole-backup percent; never goes backwards."""
        lo, hi = SLICES.get(self.stage, (0.0, 100.0))
        fraction = min(self.done / self.total, 1.0) if self.total else 0.0
        self._percent = max(self._percent, lo + (hi - lo) * fraction)
        return self._percent

    # -- API -------------------------------------------------------------------
    def start(self, message: str = "") -> Progress:
        """Announce the stage (and open a live bar on a terminal)."""
        RUN_STAGES.setdefault(self.spec, []).append(self.stage)
        self._event("start", total=self.total, message=message)
        if self.total and not self.quiet and self.stream.isatty():
            from tqdm import tqdm  # only on a terminal: cron and CI get plain lines

            self._bar = tqdm(total=self.total, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=f"{self.stage} {self.spec}", file=self.stream, leave=False,
                             mininterval=0.5)
        return self

    def update(self, delta: int, current: str = "") -> None:
        """Count `delta` more bytes done; `current` is the file or folder at work."""
        self.done += delta
        self._current = current or self._current
        now = self.clock()
        if self._bar is not None:
            self._bar.update(delta)
            self._bar.set_postfix_str(self._current[-40:], refresh=False)
        elif now - self._last_line >= self.interval:
            self._last_line = now
            self._say(self.line())
        if now - self._last_event >= 0.5:
            self._last_event = now
            self._overall()
            rate = self._rate()
            eta = (self.total - self.done) / rate if rate and self.total else None
            self._event("progress", bytes=self.done, total=self.total, current=self._current,
                        rate=round(rate), eta=None if eta is None else round(eta, 1))

    def line(self) -> str:
        """A plain progress line: percent, bytes, throughput, ETA, current item."""
        rate = self._rate()
        pct = 100.0 * self.done / self.total if self.total else 0.0
        eta = (self.total - self.done) / rate if rate and self.total else None
        return (f"{self.stage} {self.spec}: {pct:5.1f}% {human(self.done)}/{human(self.total)}"
                f", {human(rate)}/s, ETA {_eta(eta)}, {self._current}")

    def warning(self, message: str) -> None:
        """Show a warning now; it is repeated in the final summary."""
        self.warnings.append(message)
        RUN_WARNINGS.setdefault(self.spec, []).append(message)
        self._event("warning", message=message)
        if self._bar is not None:
            self._bar.write(f"  warning: {message}", file=self.stream)
        else:
            self._say(f"  warning: {message}")

    def finish(self, event: str = "end", **result: Any) -> None:
        """The stage ended well ("done" for the whole backup)."""
        self.done = max(self.done, self.total)
        self._close_bar()
        self._percent = SLICES.get(self.stage, (0.0, 100.0))[1]
        seconds = round(self.clock() - self._t0, 3)
        self._event(event, bytes=self.done, seconds=seconds, result=result)

    def fail(self, error: BaseException) -> None:
        """The stage failed: an error event naming the cause."""
        RUN_ERRORS.setdefault(self.spec, (self.stage, error))
        self._close_bar()
        hint = getattr(error, "hint", None)
        self._event("error", error=type(error).__name__,
                    message=getattr(error, "message", str(error)), hint=hint)

    def _close_bar(self) -> None:
        """Remove the live bar before plain output resumes."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def events_file_for(path: str | None) -> str | None:
    """Create the folder of an events file; return the path (None: no stream)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def tracked(spec: str, stage: str, total: int = 0, message: str = "") -> Iterator[Progress]:
    """A started Progress whose stage ends in an error event if the body raises."""
    progress = Progress(spec, stage, total).start(message)
    try:
        yield progress
    except BaseException as e:
        progress.fail(e)
        raise
