"""doit task creators and actions: validate -> scan -> pack -> manifest -> verify per spec."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from . import __version__
from .archive_io import atomic_write_bytes
from .environment import SCHEMA_PATH, Environment, spec_files
from .errors import AllskyTasksError, PackError, ServiceStartError, VerifyError
from .lock import destination_lock
from .manifest import read_sidecar, record_verify, sidecar_path, write_sidecar
from .pack import clean_stale_parts, pack
from .scan import ScanSummary, read_rows, scan
from .service import (ServiceConfig, pause_needed, paused_service, recover_stale_marker,
                      signals_as_interrupt)
from .spec import Spec, load_spec, peek_description, spec_from_json, spec_to_json

# Errors of this run, newest last: the CLI maps the first to its exit code.
FAILURES: list[AllskyTasksError] = []


def spec_state(env: Environment, name: str) -> Path:
    """The folder holding one spec's task state."""
    return env.state_dir / "specs" / name


def doit_config(env: Environment) -> dict[str, Any]:
    """DOIT_CONFIG: sqlite3 state kept with the backups, so runs from any folder agree."""
    try:
        env.state_dir.mkdir(parents=True, exist_ok=True)
        dep_file = env.dep_file
    except OSError:
        fallback = Path.home() / ".cache" / "allsky-tasks"
        fallback.mkdir(parents=True, exist_ok=True)
        dep_file = fallback / "doit.sqlite3"
    return {"backend": "sqlite3", "dep_file": str(dep_file), "default_tasks": ["backup"],
            "verbosity": 2, "continue": True}


def _write_json(path: Path, data: Any) -> None:
    """Atomically write a JSON state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode(), 0o640)


def _read_json(path: Path) -> Any:
    """Read a JSON state file."""
    return json.loads(path.read_bytes())


def _say(message: str) -> None:
    """Operator-facing progress line."""
    print(message, flush=True)


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a clean doit failure (no traceback) and remember them."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AllskyTasksError as e:
            FAILURES.append(e)
            return TaskFailed(f"[{type(e).__name__}] {e}")
    return wrapper


@stage
def run_validate(spec_path: str, env: Environment, state: str) -> None:
    """Check one spec completely and hand the resolved spec to later tasks."""
    spec = load_spec(Path(spec_path), env)
    _write_json(Path(state) / "spec.json", spec_to_json(spec))
    what = ", ".join(spec.sections) if spec.type == "config" else f"folders {spec.folders}"
    _say(f"{spec_path}: ok ({spec.type}: {what}; {spec.format} -> {spec.destination})")


@stage
def run_scan(state: str) -> None:
    """Stat-walk the selection; rewrite the fingerprint only when something changed."""
    st = Path(state)
    spec = spec_from_json(_read_json(st / "spec.json"))
    part = st / "scan.jsonl.part"
    try:
        with part.open("w", encoding="utf-8") as out:
            summary = scan(spec, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    fp_path = st / "fingerprint"
    old = fp_path.read_text().strip() if fp_path.exists() else None
    if old == summary.fingerprint and (st / "scan.jsonl").exists():
        part.unlink()
    else:
        os.replace(part, st / "scan.jsonl")
        _write_json(st / "scan.json", summary.to_dict())
        atomic_write_bytes(fp_path, (summary.fingerprint + "\n").encode(), 0o640)
    if not (st / "scan.json").exists():
        _write_json(st / "scan.json", summary.to_dict())
    change = "unchanged" if old == summary.fingerprint else "changed"
    _say(f"scan {spec.name}: {summary.entries} members, {summary.raw_bytes} bytes ({change})")
    for warning in summary.warnings:
        _say(f"  warning: {warning}")


def archive_present(state: str) -> bool:
    """pack is only up to date while the archive it made still exists."""
    try:
        return Path(_read_json(Path(state) / "pack.json")["archive"]).exists()
    except (OSError, ValueError, KeyError):
        return False


def _service(spec: Spec, summary: ScanSummary | None) -> tuple[ServiceConfig, bool, str]:
    """The spec's service settings and whether this backup pauses it, with the reason."""
    cfg = ServiceConfig.from_spec(spec.service)
    selected = "databases" in spec.sections or bool(summary and summary.database_files)
    needed, reason = pause_needed(cfg, selected)
    return cfg, needed, reason


@stage
def run_pause(state: str, env: Environment) -> None:
    """Say whether pack will pause the service; restart one a killed run left stopped."""
    st = Path(state)
    spec = spec_from_json(_read_json(st / "spec.json"))
    summary = ScanSummary.from_dict(_read_json(st / "scan.json"))
    cfg, needed, reason = _service(spec, summary)
    recovered = recover_stale_marker(cfg, env.state_dir)
    if recovered:
        _say(f"  warning: {recovered}")
    _say(f"service {spec.name}: {reason}")


@stage
def run_pack(state: str, env: Environment) -> None:
    """Stop the service if needed, stream a new archive, start the service whatever happens."""
    st = Path(state)
    spec = spec_from_json(_read_json(st / "spec.json"))
    summary = ScanSummary.from_dict(_read_json(st / "scan.json"))
    cfg, needed, reason = _service(spec, summary)
    work = st / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        spec.destination.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as e:
        raise PackError(f"cannot create destination {spec.destination}: {e.strerror}") from e
    # SIGTERM/SIGHUP become KeyboardInterrupt so the restart below runs (doit's teardown would
    # not); a SIGKILL leaves the marker that the next run's pause task acts on.
    result = None
    try:
        with signals_as_interrupt(), destination_lock(spec.destination):
            for name in clean_stale_parts(spec.destination):
                _say(f"  removed {name} left by an interrupted run")
            with paused_service(cfg, needed, reason, env.state_dir) as record:
                if record.stopped:
                    _say(f"  stopped {cfg.unit} ({reason})")
                result = pack(spec, summary, read_rows(st / "scan.jsonl"), work,
                              extra={"service": record.to_dict()})
    except ServiceStartError:
        if result is not None:  # the archive is good: keep it complete, with its sidecar
            _write_json(st / "pack.json", {**result.__dict__, "service": record.to_dict()})
            _manifest(st)
            _say(f"  kept {result.archive}")
        raise
    if record.stopped:
        _say(f"  started {cfg.unit} again after {record.paused_seconds}s")
    _write_json(st / "pack.json", {**result.__dict__, "service": record.to_dict()})
    _say(f"pack {spec.name}: {result.archive} ({result.size} bytes, {result.members} members, "
         f"{result.raw_bytes} raw bytes, {result.seconds}s)")
    for warning in result.warnings + record.warnings:
        _say(f"  warning: {warning}")


def _manifest(st: Path) -> Path:
    """Write the sidecar of the archive recorded in pack.json; returns its path."""
    packed = _read_json(st / "pack.json")
    archive = Path(packed["archive"])
    metadata = _read_json(Path(packed["metadata"]))
    # The pause ended after metadata.json was sealed: the sidecar has the full record.
    metadata.setdefault("allskyTasks", {})["service"] = packed.get("service")
    path = write_sidecar(archive, metadata, {"sizeBytes": packed["size"],
                                             "sha256": packed["sha256"]})
    _write_json(st / "manifest.json", {"archive": str(archive), "sidecar": str(path)})
    shutil.rmtree(st / "work", ignore_errors=True)
    return path


@stage
def run_manifest(state: str) -> None:
    """Write the sidecar: the archive's metadata plus its own size and SHA-256."""
    path = _manifest(Path(state))
    _say(f"manifest {Path(state).name}: {path}")


@stage
def run_verify(state: str) -> None:
    """Re-read the whole archive and check every member against the manifest."""
    st = Path(state)
    archive = Path(_read_json(st / "manifest.json")["archive"])
    try:
        result = verify_archive(archive)
    except VerifyError as e:
        if sidecar_path(archive).exists():
            record_verify(archive, {"ok": False, "problems": e.problems[:100]})
        raise
    _write_json(st / "verify.json", {"archive": str(archive), **result})
    _say(f"verify {st.name}: ok, {result['members']} members, sha256 {result['sha256'][:16]}...")


def verify_archive(archive: Path) -> dict[str, Any]:
    """Verify an archive of ours against its sidecar and record the result there."""
    from .verify import verify  # zstandard/tarfile only when verifying

    result = verify(archive, read_sidecar(archive))
    if sidecar_path(archive).exists():
        record_verify(archive, result)
    return result


def _env_key(env: Environment) -> dict[str, str]:
    """What, besides the spec file, changes a spec's meaning."""
    return {"home": str(env.home), "images": str(env.images), "backups": str(env.backup_dir),
            "tool": __version__}


def _tasks(env: Environment) -> Iterator[tuple[str, Path, str, Path]]:
    """(name, spec path, doc line, state folder) per spec file; never reads beyond YAML."""
    for path in spec_files(env.specs_dir):
        yield path.stem, path, peek_description(path), spec_state(env, path.stem)


def gen_validate(env: Environment) -> Iterator[dict[str, Any]]:
    """validate:<spec>: schema and semantic checks (also `doit validate` for CI)."""
    yield {"basename": "validate", "name": None, "doc": "check every backup spec"}
    for name, path, doc, st in _tasks(env):
        yield {"basename": "validate", "name": name, "doc": doc,
               "actions": [(run_validate, [str(path), env, str(st)])],
               "file_dep": [str(path), str(SCHEMA_PATH)], "targets": [str(st / "spec.json")],
               "uptodate": [config_changed(_env_key(env))], "verbosity": 2}


def gen_stages(env: Environment) -> Iterator[dict[str, Any]]:
    """scan, pack, manifest, verify and backup tasks per spec."""
    docs = {"scan": "stat-walk the sources and fingerprint them",
            "pause": "decide whether pack stops the service; recover a killed run's pause",
            "pack": "stop the service if needed, write a new archive, start it again",
            "manifest": "write the sidecar beside the archive",
            "verify": "re-read the archive and check every member",
            "backup": "run the whole chain for every spec"}
    for basename, doc in docs.items():
        yield {"basename": basename, "name": None, "doc": doc}
    for name, _path, doc, st in _tasks(env):
        yield {"basename": "scan", "name": name, "doc": doc, "uptodate": [False],
               "actions": [(run_scan, [str(st)])], "task_dep": [f"validate:{name}"],
               "targets": [str(st / "fingerprint")]}
        yield {"basename": "pause", "name": name, "doc": doc, "uptodate": [False],
               "actions": [(run_pause, [str(st), env])], "task_dep": [f"scan:{name}"]}
        yield {"basename": "pack", "name": name, "doc": doc,
               "actions": [(run_pack, [str(st), env])],
               "task_dep": [f"scan:{name}", f"pause:{name}"],
               "file_dep": [str(st / "fingerprint")], "targets": [str(st / "pack.json")],
               "uptodate": [(archive_present, [str(st)])]}
        yield {"basename": "manifest", "name": name, "doc": doc,
               "actions": [(run_manifest, [str(st)])], "file_dep": [str(st / "pack.json")],
               "targets": [str(st / "manifest.json")]}
        yield {"basename": "verify", "name": name, "doc": doc,
               "actions": [(run_verify, [str(st)])], "file_dep": [str(st / "manifest.json")],
               "targets": [str(st / "verify.json")]}
        yield {"basename": "backup", "name": name, "doc": doc, "actions": None,
               "task_dep": [f"verify:{name}"]}


def stderr(message: str) -> None:
    """Print to stderr (for the CLI)."""
    print(message, file=sys.stderr)
