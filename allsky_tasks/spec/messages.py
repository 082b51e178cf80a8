"""Operator-facing wording for spec problems: YAML notation, the likely fix, no Python reprs."""

from __future__ import annotations

import calendar
import datetime as _dt
import difflib
import re
from typing import Any

_DATE_REPR = re.compile(r"datetime\.date\((\d+), (\d+), (\d+)\)")
_NIGHT = re.compile(r"^2\d{7}$")


def show(value: Any) -> str:
    """A value as the operator wrote it in YAML (dates as YYYY-MM-DD, mappings in braces)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def folders_text(folders: Any) -> str:
    """The folders selection for the validate ok line."""
    if folders == "all":
        return "every night folder"
    if isinstance(folders, dict) and "last" in folders:
        return f"the {folders['last']} newest nights"
    if isinstance(folders, dict):
        return f"nights {folders.get('from')} to {folders.get('to')}"
    return "folders " + ", ".join(map(str, folders)) if isinstance(folders, list) else show(folders)


def _date_hint(value: Any) -> str | None:
    """A YAML date (2026-11-27) where a night folder name (20261127) was meant."""
    if isinstance(value, _dt.date):
        return f"{value.isoformat()} is a date; write the night folder name {value:%Y%m%d}"
    return None


def folders_message(value: Any) -> str:
    """Why a folders: value is wrong, and how to write it."""
    forms = "all, a list of folder names, {from: YYYYMMDD, to: YYYYMMDD} or {last: N}"
    if isinstance(value, dict):
        for key in ("from", "to"):
            hint = _date_hint(value.get(key))
            if hint:
                return f"{key}: {hint} (YYYYMMDD, no dashes)"
        unknown = [k for k in value if k not in ("from", "to", "last")]
        if unknown:
            return (f"unknown key {', '.join(map(str, unknown))} in {show(value)}; "
                    f"use {{from: YYYYMMDD, to: YYYYMMDD}} or {{last: N}}")
        if "last" in value:
            if "from" in value or "to" in value:
                return f"{show(value)} mixes last with from/to; use one of them"
            last = value["last"]
            if isinstance(last, int) and not isinstance(last, bool) and last < 1:
                return f"last: {last} selects nothing; it must be 1 or more (the N newest nights)"
            return f"last: {show(last)} must be a whole number, 1 or more"
        if "from" in value and "to" not in value:
            return (f"{show(value)} has no to:; a range needs both ends, e.g. "
                    f"{{from: {show(value['from'])}, to: YYYYMMDD}}")
        if "to" in value and "from" not in value:
            return (f"{show(value)} has no from:; a range needs both ends, e.g. "
                    f"{{from: YYYYMMDD, to: {show(value['to'])}}}")
        return f"{show(value)}: from and to must be night folder names YYYYMMDD"
    if isinstance(value, list):
        for i, item in enumerate(value):
            hint = _date_hint(item)
            if hint:
                return f"item {i}: {hint}"
        if not value:
            return "an empty list selects nothing; name at least one folder, or write all"
        return (f"{show(value)}: each item must be a night folder name (YYYYMMDD) or test*, "
                "listed once")
    hint = _date_hint(value)
    if hint:
        return f"{hint} in a list, e.g. [{value:%Y%m%d}]"
    shown = repr(value) if isinstance(value, str) else show(value)
    return f"{shown} is not {forms}"


def unknown_key_message(unexpected: list[str], known: list[str]) -> str:
    """An unknown key, with the closest known one when it looks like a typo."""
    parts = []
    for key in unexpected:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        parts.append(f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return "; ".join(parts) + f" (known: {', '.join(known)})"


def friendly(err: Any) -> str | None:
    """Our wording for a jsonschema error, or None to keep its own."""
    path = list(err.path)
    if path[:1] == ["folders"]:
        return folders_message(err.instance if len(path) == 1 else _root_folders(err))
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = list(err.schema.get("properties", {}))
        unexpected = [k for k in err.instance if k not in known]
        if unexpected and known:
            return unknown_key_message(unexpected, known)
    if path == ["sections", "core"] and err.validator == "const":
        return ("core is always backed up and cannot be turned off; remove the line "
                f"core: {show(err.instance)}")
    if err.validator == "type" and _date_hint(err.instance):
        return f"{_date_hint(err.instance)} or quote it"
    return None


def _root_folders(err: Any) -> Any:
    """The whole folders value for an error found inside it."""
    node = err
    while node.parent is not None:
        node = node.parent
    return node.instance.get("folders") if isinstance(node.instance, dict) else err.instance


def unrepr(message: str) -> str:
    """jsonschema's own messages with Python date reprs written as dates."""
    return _DATE_REPR.sub(lambda m: f"{int(m[1]):04d}-{int(m[2]):02d}-{int(m[3]):02d}", message)


def impossible_date(name: str) -> str | None:
    """Why a YYYYMMDD folder name is not a real date (20261131), or None."""
    if not _NIGHT.match(name):
        return None
    year, month, day = int(name[:4]), int(name[4:6]), int(name[6:])
    if not 1 <= month <= 12:
        return f"{name} is not a date: there is no month {month}"
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        return (f"{name} is not a date: {calendar.month_name[month]} {year} has {days} days")
    return None


def date_problems(folders: Any, where: str) -> list[str]:
    """Impossible dates in a folders selection, as validate reports them."""
    out = []
    if isinstance(folders, list):
        for i, name in enumerate(folders):
            problem = impossible_date(str(name))
            if problem:
                out.append(f"{where}::$.folders[{i}]: {problem}")
    elif isinstance(folders, dict):
        for key in ("from", "to"):
            problem = impossible_date(str(folders.get(key, "")))
            if problem:
                out.append(f"{where}::$.folders.{key}: {problem}")
    return out
