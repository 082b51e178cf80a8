"""The outcome of every `allsky-tasks run`, per spec, recorded in the state folder."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..environment import Environment
from ..safefs import read_bytes

RUNS_DIRNAME = "runs"
LAST_RUN_NAME = "last-run.json"  # the whole run: its exit code, and a failure before any spec


@dataclass
class SpecOutcome:
    """One spec's result in one run."""

    spec: str
    result: str  # ok | failed | skipped
    time: str
    stages: list[str] = field(default_factory=list)
    error: str | None = None  # class name
    message: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def now_iso() -> str:
    """Local time with offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def outcomes(stages: dict[str, list[str]], errors: dict[str, tuple[str, BaseException]],
             warnings: dict[str, list[str]], skipped: type[BaseException] | None = None
             ) -> list[SpecOutcome]:
    """Per spec whose backup ran to the end (ok) or stopped: failed (first error) or skipped
    (lock wait ran out)."""
    out = []
    when = now_iso()
    for spec in sorted(set(stages) | set(errors)):
        if spec not in errors and "backup" not in stages.get(spec, []):
            continue  # e.g. `run validate` or `run scan:x`: not a backup run of this spec
        result, error, message = "ok", None, None
        if spec in errors:
            _stage, exc = errors[spec]
            result = "skipped" if skipped and isinstance(exc, skipped) else "failed"
            error = type(exc).__name__
            message = getattr(exc, "message", None) or str(exc) or error
        out.append(SpecOutcome(spec, result, when, list(stages.get(spec, [])), error, message,
                               list(dict.fromkeys(warnings.get(spec, [])))))
    return out


def runs_dir(env: Environment) -> Path:
    """<state>/runs: one JSON file per spec with its last run."""
    return env.state_dir / RUNS_DIRNAME


def record(env: Environment, results: list[SpecOutcome]) -> None:
    """Write each spec's last run (atomic, never through a link)."""
    from ..errors import UnsafePathError
    from ..safefs import make_dir

    try:
        make_dir(env.state_dir)  # a link planted as the state folder is refused, not followed
        folder = make_dir(runs_dir(env))
    except UnsafePathError:
        return  # the run itself already failed naming it (exit 27); no record goes there
    for r in results:
        _replace(folder / f"{r.spec}.json", (json.dumps(r.to_dict(), indent=1) + "\n").encode())


def record_run(env: Environment, data: dict[str, Any]) -> None:
    """Write the whole run's record (beside the per-spec ones)."""
    from ..errors import UnsafePathError
    from ..safefs import make_dir

    try:
        make_dir(env.state_dir)
        folder = make_dir(runs_dir(env))
    except UnsafePathError:
        return
    _replace(folder / f".{LAST_RUN_NAME}", (json.dumps(data, indent=1) + "\n").encode())


def last_run(env: Environment) -> dict[str, Any] | None:
    """The whole last run, as recorded (None: none, or unreadable)."""
    try:
        data = json.loads(read_bytes(runs_dir(env) / f".{LAST_RUN_NAME}", 1 << 20))
    except (OSError, ValueError, Exception):  # noqa: BLE001 - a bad record is no record
        return None
    return data if isinstance(data, dict) else None


def _replace(path: Path, data: bytes) -> None:
    """Write via a hidden temp name (O_EXCL|O_NOFOLLOW: never through a link) and rename.

    No fsync: this is written on every run, also the no-op ones, and an fsync costs tens of
    milliseconds on an SD card; a power cut at worst loses the newest record.
    """
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def last_runs(env: Environment) -> dict[str, dict[str, Any]]:
    """spec -> its last run, as recorded (unreadable records are skipped)."""
    folder = runs_dir(env)
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return out
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            data = json.loads(read_bytes(folder / name, 1 << 20, owned=True))  # only ours
        except (OSError, ValueError, Exception):  # noqa: BLE001 - a bad record is no record
            continue
        if isinstance(data, dict):
            out[name[:-5]] = data
    return out
