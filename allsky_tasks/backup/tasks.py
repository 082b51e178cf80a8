"""doit task creators: validate -> scan -> pause -> pack -> resume, manifest -> verify.

Pure functions building task dicts; actions are imported only when a task runs, so `doit list`
stays fast and one broken spec cannot break it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doit.tools import config_changed

from .. import __version__
from ..environment import SCHEMA_PATH, Environment, spec_files
from ..spec.docs import CACHE_NAME, spec_docs

# Which module holds each stage's action (the rest are in actions.py).
_MODULES = {"run_pack": "pack_stage", "run_manifest": "pack_stage", "run_verify": "after_pack",
            "run_copy": "after_pack", "run_prune": "after_pack", "run_summary": "after_pack"}


def _dispatch(name: str, *args: Any) -> Any:
    """Run an action by name, importing the heavy modules only now."""
    from importlib import import_module

    module = import_module(f"{__package__}.{_MODULES.get(name, 'actions')}")
    return getattr(module, name)(*args)


def _action(name: str, *args: Any) -> tuple[Any, list[Any]]:
    """A doit python-action calling actions.<name>(*args)."""
    return (_dispatch, [name, *args])


def _archive_present(state: str) -> bool:
    """uptodate check for pack (see actions.archive_present)."""
    from .actions import archive_present

    return archive_present(state)


def _live_unchanged(state: str) -> bool:
    """uptodate check for validate: the install paths it checked are as they were."""
    from .live import unchanged

    return unchanged(state)


def _summary_due(state: str) -> bool:
    """backup:<spec> runs in every `doit` run (it prints the summary); `doit info` calls it up
    to date while the latest archive exists and was verified."""
    from . import reporter

    if reporter.RUN_STARTED is not None:
        return False
    from .actions import archive_present

    return archive_present(state) and (Path(state) / "verify.json").exists()


def _copies_current(state: str) -> bool:
    """uptodate check for copy: records and local stat only, no connection (copies/records.py)."""
    from ..copies.records import copies_current

    return copies_current(state)


def _verify_uptodate(state: str) -> bool:
    """uptodate check for verify (see after_pack.verify_uptodate): the archives on disk too."""
    from .after_pack import verify_uptodate

    return verify_uptodate(state)


def spec_state(env: Environment, name: str) -> Path:
    """The folder holding one spec's task state."""
    return env.state_dir / "specs" / name


def doit_config(env: Environment) -> dict[str, Any]:
    """DOIT_CONFIG: sqlite3 state kept with the backups, so runs from any folder agree."""
    from ..safefs import trust_owner_of

    trust_owner_of(env.home)  # plain `sudo -E doit`: the Allsky user's state is ours too
    try:
        env.state_dir.mkdir(parents=True, exist_ok=True)
        dep_file = env.dep_file
        # Never open doit's database through a link planted in the (maybe shared) state folder:
        # use the private fallback; the `recover` task then refuses the folder, naming it.
        if env.state_dir.is_symlink() or dep_file.is_symlink() or (
                dep_file.exists() and not dep_file.is_file()):
            raise OSError("not a plain file")
    except OSError:
        fallback = Path.home() / ".cache" / "allsky-tasks"
        fallback.mkdir(parents=True, exist_ok=True)
        dep_file = fallback / "doit.sqlite3"
    from .defaults import default_tasks
    from .reporter import OperatorReporter

    return {"backend": "sqlite3", "dep_file": str(dep_file), "reporter": OperatorReporter,
            "default_tasks": default_tasks(env.specs_dir),
            "verbosity": 2, "continue": True}


def _env_key(env: Environment) -> dict[str, str]:
    """What, besides the spec file, changes a spec's meaning."""
    return {"home": str(env.home), "images": str(env.images), "backups": str(env.backup_dir),
            "tool": __version__}


def _tasks(env: Environment) -> Iterator[tuple[str, Path, str, Path]]:
    """(name, spec path, doc line, state folder) per spec file; never reads beyond YAML."""
    paths = spec_files(env.specs_dir)
    for path, doc in zip(paths, spec_docs(paths, env.state_dir / CACHE_NAME), strict=True):
        yield path.stem, path, doc, spec_state(env, path.stem)


def gen_recover(env: Environment, action: Any = None) -> dict[str, Any]:
    """recover: runs first in every run, before any spec's checks (a killed run's leftovers).

    `action` (from dodo.py, which may import any layer) also finishes an interrupted restore.
    """
    return {"basename": "recover", "doc": "finish an interrupted restore; restart a service a "
                                          "killed run left stopped",
            "actions": [(action, [env]) if action else _action("run_recover", env)],
            "uptodate": [False], "verbosity": 2}


def gen_validate(env: Environment) -> Iterator[dict[str, Any]]:
    """validate:<spec>: schema and semantic checks (also `doit validate` for CI)."""
    yield {"basename": "validate", "name": None, "doc": "check every backup spec"}
    for name, path, doc, st in _tasks(env):
        yield {"basename": "validate", "name": name, "doc": doc, "task_dep": ["recover"],
               "actions": [_action("run_validate", str(path), env, str(st))],
               "file_dep": [str(path), str(SCHEMA_PATH)], "targets": [str(st / "spec.json")],
               "uptodate": [config_changed(_env_key(env)), (_live_unchanged, [str(st)])],
               "verbosity": 2}


def gen_stages(env: Environment) -> Iterator[dict[str, Any]]:
    """scan, pack, manifest, verify and backup tasks per spec."""
    docs = {"scan": "stat-walk the sources and fingerprint them",
            "plan": "sizes and measured compressed estimates per section or folder",
            "pause": "decide whether pack stops the service; recover a killed run's pause",
            "pack": "stop the service if needed, write a new archive, start it again",
            "resume": "confirm the service is back in the state it was in before pack",
            "manifest": "write the sidecar beside the archive",
            "verify": "check new archives; re-read changed or due ones (verify.every)",
            "copy": "copy the newest archive to the spec's copies targets, verified there",
            "prune": "delete the spec's old backups its retention rules do not keep",
            "backup": "run the whole chain for every spec"}
    for basename, doc in docs.items():
        yield {"basename": basename, "name": None, "doc": doc}
    for name, _path, doc, st in _tasks(env):
        yield {"basename": "scan", "name": name, "doc": doc, "uptodate": [False],
               "actions": [_action("run_scan", str(st))], "task_dep": [f"validate:{name}"],
               "targets": [str(st / "fingerprint")]}
        yield {"basename": "plan", "name": name, "doc": doc,
               "actions": [_action("run_plan", str(st))], "task_dep": [f"scan:{name}"],
               "file_dep": [str(st / "fingerprint")], "targets": [str(st / "plan.json")]}
        yield {"basename": "pause", "name": name, "doc": doc, "uptodate": [False],
               "actions": [_action("run_pause", str(st), env)],
               "task_dep": [f"scan:{name}", f"plan:{name}"]}
        yield {"basename": "pack", "name": name, "doc": doc,
               "actions": [_action("run_pack", str(st), env)],
               "task_dep": [f"scan:{name}", f"plan:{name}", f"pause:{name}"],
               "file_dep": [str(st / "fingerprint")], "targets": [str(st / "pack.json")],
               "uptodate": [(_archive_present, [str(st)])]}
        yield {"basename": "resume", "name": name, "doc": doc,
               "actions": [_action("run_resume", str(st))], "file_dep": [str(st / "pack.json")]}
        yield {"basename": "manifest", "name": name, "doc": doc,
               "actions": [_action("run_manifest", str(st))], "file_dep": [str(st / "pack.json")],
               "task_dep": [f"resume:{name}"],
               "targets": [str(st / "manifest.json")]}
        yield {"basename": "verify", "name": name, "doc": doc,
               "actions": [_action("run_verify", str(st))], "file_dep": [str(st / "manifest.json")],
               "targets": [str(st / "verify.json")],
               "uptodate": [(_verify_uptodate, [str(st)])]}
        # One copy task per spec, not per target: the targets are known only after the YAML
        # is read, and task creation reads no YAML (see copies/records.pending).
        yield {"basename": "copy", "name": name, "doc": doc,
               "actions": [_action("run_copy", str(st))], "task_dep": [f"verify:{name}"],
               "uptodate": [(_copies_current, [str(st)])]}
        # After verify and the spec's copies (never delete what a target still lacks); only when
        # a new archive was verified.
        yield {"basename": "prune", "name": name, "doc": doc,
               "actions": [_action("run_prune", str(st), env)],
               "file_dep": [str(st / "verify.json")],
               "task_dep": [f"verify:{name}", f"copy:{name}"],
               "targets": [str(st / "prune.json")]}
        yield {"basename": "backup", "name": name, "doc": doc,
               "uptodate": [(_summary_due, [str(st)])],
               "actions": [_action("run_summary", str(st))],
               "task_dep": [f"resume:{name}", f"verify:{name}", f"copy:{name}", f"prune:{name}"]}

