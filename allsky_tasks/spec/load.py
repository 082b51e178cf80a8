"""Backup specs: read YAML, check the schema and the semantics, return a Spec."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..environment import SCHEMA_PATH, Environment
from ..errors import SpecError

# Spec and its JSON form are re-exported: backup/actions.py and backup/pack.py take them from here.
from .model import Spec, spec_from_json, spec_to_json
from .sections import BY_KEY, SECTIONS
from .semantics import LEVELS, display_path, normalize_folders, resolve_paths, semantic_problems

__all__ = ["Spec", "check_files", "load_spec", "peek_description", "read_yaml", "schema_problems",
           "spec_digest", "spec_from_json", "spec_to_json"]


def read_yaml(path: Path) -> Any:
    """Parse a spec file; YAML errors become a SpecError naming file and line."""
    import yaml  # lazily: a no-op re-run reads no spec file, and yaml costs ~15 ms to import

    from .yaml_safe import YamlLimitError, load_capped, read_spec_text

    where = display_path(path)
    try:
        text = read_spec_text(path)  # capped, never blocking
    except (OSError, UnicodeDecodeError, YamlLimitError) as e:
        raise SpecError([f"{where}::$: cannot read spec: {e}"]) from e
    try:
        return load_capped(text)  # alias expansion capped, duplicate keys refused
    except YamlLimitError as e:
        raise SpecError([f"{where}::$: {e}"]) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError([f"{where}::$: invalid YAML{line}: {problem}"]) from e


def peek_description(path: Path) -> str:
    """The spec's description for `doit list`, or why the spec is broken (never raises)."""
    try:
        data = read_yaml(path)
    except SpecError as e:
        return f"BROKEN SPEC: {e.problems[0]}"
    if not isinstance(data, dict):
        return "BROKEN SPEC: not a mapping"
    doc = data.get("description") or f"{data.get('type', '?')} backup"
    if not isinstance(doc, str):
        return "BROKEN SPEC: description must be text"
    return doc if len(doc) <= 200 else doc[:199] + "…"  # one line of `doit list`


def _json_path(parts: Any) -> str:
    """A jsonschema error path as $.a.b[0]."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_problems(data: Any, where: str) -> list[str]:
    """Every schema violation as 'file::$.path: message'."""
    from jsonschema import Draft202012Validator  # lazily: keeps `doit list` fast

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    from .messages import friendly, unrepr

    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        message = unrepr(err.message)
        ours = friendly(err)
        if ours:
            message = ours
        elif err.validator == "oneOf" and list(err.path) == ["folders"]:
            message = (f"{err.instance!r} is not 'all', a list of folder names "
                       "(YYYYMMDD or test*), {from: YYYYMMDD, to: YYYYMMDD} or {last: N}")
        elif err.validator == "additionalProperties" and list(err.path) == ["sections"]:
            message += f"; known sections: {', '.join(BY_KEY)}"
        problems.append(f"{where}::{_json_path(err.path)}: {message}")
    return problems


def spec_digest(data: dict[str, Any], home: Path, images: Path, dest: Path) -> str:
    """A digest of what the spec asks for, after defaults and path resolution."""
    blob = json.dumps({"spec": data, "home": str(home), "images": str(images),
                       "destination": str(dest)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_spec(path: Path, env: Environment, *, check_tree: bool = True) -> Spec:
    """Read and check one spec file; every problem at once in one SpecError."""
    where = display_path(path)
    data = read_yaml(path)
    if data is None:
        raise SpecError([f"{where}::$: the spec file is empty"])
    problems = schema_problems(data, where)
    if not problems:
        problems = semantic_problems(data, path, env, check_tree=check_tree)
    if problems:
        raise SpecError(problems)
    home, images, dest = resolve_paths(data, env)
    fmt = data.get("format", "zstd")
    sections = ("core",) + tuple(s.key for s in SECTIONS
                                 if not s.required and data.get("sections", {}).get(s.key))
    return Spec(
        name=path.stem, path=path, type=data["type"],
        description=data.get("description", ""), home=home, images=images, destination=dest,
        sections=sections if data["type"] == "config" else (),
        folders=normalize_folders(data.get("folders", "all")),
        include=tuple(data.get("include", ())), exclude=tuple(data.get("exclude", ())),
        format=fmt, level=data.get("level", LEVELS[fmt][2]),
        media_compression=data.get("media_compression", "fast"),
        service=dict(data.get("service", {})), on_file_error=data.get("on_file_error", "fail"),
        retention=dict(data.get("retention", {})), per_night=bool(data.get("per_night")),
        # verify: only says when archives are read again; it changes nothing in them.
        digest=spec_digest({k: v for k, v in data.items() if k != "verify"}, home, images,
                           dest),
        verify=dict(data.get("verify", {})),
        free_space=dict(data.get("free_space", {})),
        copies=tuple(dict(c) for c in data.get("copies", ())),
        must_be_mounted=data.get("must_be_mounted"),
    )


def check_files(paths: list[Path], env: Environment, *, check_tree: bool = True) -> list[str]:
    """Validate many spec files; returns every problem of every file."""
    problems: list[str] = []
    for path in paths:
        try:
            load_spec(path, env, check_tree=check_tree)
        except SpecError as e:
            problems += e.problems
    return problems
