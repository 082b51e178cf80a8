"""The archive's metadata.json: Allsky's fields plus our namespaced manifest."""

from __future__ import annotations

import json
import os
import platform
import shutil
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__, install
from ..safefs import open_file
from ..spec.model import Spec
from ..spec.sections import BY_KEY, IMAGES_SECTION, section_metadata

if TYPE_CHECKING:  # a type only: the archive layer never imports the backup stages
    from ..backup.scan import ScanSummary

NAMESPACE = "allskyTasks"
_TYPES = {"file": "file", "dir": "dir", "symlink": "link"}
# A symlink row's private key (never written): its target's mode and owner, or None.
LINK_TARGET = "_linkTarget"
_quote = json.encoder.encode_basestring_ascii  # what json.dumps makes of a str


def flat_json(obj: dict[str, Any], item_sep: str = ", ", key_sep: str = ": ") -> str:
    """json.dumps(obj, separators=(item_sep, key_sep)) of a flat object, direct for str/int."""
    # json.dumps builds an encoder per call: 2-3 us a row, three rows a member.
    parts = []
    try:
        for key, value in obj.items():
            kind = type(value)
            if kind is str:
                parts.append(f"{_quote(key)}{key_sep}{_quote(value)}")
            elif kind is int:
                parts.append(f"{_quote(key)}{key_sep}{value!r}")
            else:  # bool, None, float, nested: json's own rules
                return json.dumps(obj, separators=(item_sep, key_sep))
    except TypeError:  # a key that is not a str: json converts or rejects it
        return json.dumps(obj, separators=(item_sep, key_sep))
    return "{" + item_sep.join(parts) + "}"


def allsky_mode(mode: int) -> str:
    """Allsky's 4-digit octal mode, special bits dropped (they crash Allsky's restore)."""
    return f"{mode & 0o777:04o}"


def full_mode(mode: int) -> str:
    """Our manifest keeps every permission bit, setgid included."""
    return f"{mode & 0o7777:04o}"


def timezone_name(now: datetime) -> str:
    """An IANA name if the system has one, else the abbreviation."""
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return os.environ.get("TZ") or now.tzname() or "UTC"


class MetadataBuilder:
    """Collects per-member facts while packing, then writes metadata.json."""

    def __init__(self, spec: Spec, summary: ScanSummary, workdir: Path) -> None:
        self.spec = spec
        self.summary = summary
        self.workdir = workdir
        self.owner = install.read_owner(spec.home)
        self.totals = {"members": 0, "files": 0, "dirs": 0, "links": 0, "rawBytes": 0}
        self.databases: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        # Per-member facts go to files, not lists: memory stays flat however many members.
        self._paths = {name: workdir / f"{name}.rows" for name in ("manifest", "permissions",
                                                                   "files")}
        self._out: dict[str, IO[str]] = {k: open_file(p, "w") for k, p in self._paths.items()}
        self._first = {k: True for k in self._paths}

    def _put(self, name: str, text: str) -> None:
        """Append one JSON fragment to a list/object being streamed."""
        self._out[name].write(text if self._first[name] else ",\n" + text)
        self._first[name] = False

    def add(self, row: dict[str, Any]) -> None:
        """Record one packed member (row as in our manifest).

        Allsky's permissions entry of a link describes its target (PHP's fileperms follows
        links, and Allsky's restore chmods through them); a dangling link gets none.
        """
        path, kind = row["path"], row["type"]
        target = row.pop(LINK_TARGET, None)
        seen = target if kind == "symlink" else row
        quoted = _quote(path)
        if seen is not None:
            mode = seen["mode"] if isinstance(seen["mode"], int) else int(seen["mode"], 8)
            owner = seen["owner"]
            entry = {
                "mode": allsky_mode(mode),
                "owner": "ALLSKY_OWNER" if self.owner and owner == self.owner else owner,
                "group": seen["group"], "ownerId": seen["uid"], "groupId": seen["gid"],
                "type": _TYPES[kind],
            }
            self._put("permissions", f"        {quoted}: {flat_json(entry)}")
        if kind != "dir":
            self._put("files", f"        {quoted}")
        self.totals["members"] += 1
        self.totals[{"file": "files", "dir": "dirs", "symlink": "links"}[kind]] += 1
        self.totals["rawBytes"] += row.get("size", 0)
        self._put("manifest", "            " + flat_json(row, ",", ":"))

    def _allsky_fields(self, backup_file: str, created: datetime) -> dict[str, Any]:
        """Every field Allsky's own backup writes, in its order."""
        spec, summary = self.spec, self.summary
        fields: dict[str, Any] = {
            "backupFile": backup_file, "backupType": spec.type,
            "created": created.strftime("%Y-%m-%d %H:%M:%S"),
            "version": install.read_version(spec.home),
        }
        if spec.type == "config":
            fields.update(summary.camera or {})
        # Streamed in archive order (Allsky sorts them; its readers do not care).
        fields["permissions"] = _PLACEHOLDER["permissions"]
        fields["files"] = _PLACEHOLDER["files"]
        # Allsky's fields name only the sections Allsky knows; ours are in our namespace.
        optional = sorted(k for k in spec.sections
                          if k != "core" and BY_KEY[k].allsky_native)
        fields["includedOptionalTargets"] = optional if spec.type == "config" else []
        if spec.type == "config":
            sections = [BY_KEY["core"]] + [BY_KEY[k] for k in optional]
            fields["includedSections"] = [section_metadata(s) for s in sections]
            fields["requiredModules"] = install.required_modules(spec.home)
            has_modules = "modules" in spec.sections
            fields["backupModules"] = install.user_modules(spec.home) if has_modules else []
            fields["backupHasModules"] = has_modules
        else:
            fields["includedSections"] = [section_metadata(IMAGES_SECTION)]
            fields["imageBackupAll"] = summary.image_all
            fields["imageFolders"] = summary.image_folders
            fields["imageTargets"] = summary.targets
        fields["format"] = 1
        return fields

    def ours(self, created: datetime, extra: dict[str, Any]) -> dict[str, Any]:
        """Our namespaced additions (without the manifest rows)."""
        return {
            "toolVersion": __version__,
            "spec": {"name": self.spec.name, "digest": self.spec.digest,
                     "description": self.spec.description},
            "createdIso": created.isoformat(timespec="seconds"),
            "timezone": timezone_name(created),
            "host": platform.node(),
            "fingerprint": self.summary.fingerprint,
            "archiveFormat": self.spec.format, "compressionLevel": self.spec.level,
            **({"mediaCompression": self.spec.media_compression}
               if self.spec.format == "zstd" else {}),
            "sections": list(self.spec.sections),
            "totals": self.totals, "databases": self.databases,
            "warnings": self.summary.warnings + self.warnings,
            "hashAlgorithm": "sha256",
            **extra,
        }

    def write(self, backup_file: str, created: datetime, extra: dict[str, Any]) -> Path:
        """Write metadata.json, streaming the per-member parts, and return its path."""
        for fh in self._out.values():
            fh.close()
        fields = self._allsky_fields(backup_file, created)
        fields[NAMESPACE] = {**self.ours(created, extra), "manifest": _PLACEHOLDER["manifest"]}
        text = json.dumps(fields, indent=4)
        out_path = self.workdir / "metadata.json"
        with open_file(out_path, "w") as out:
            for name, (opening, closing) in _BRACKETS.items():
                before, text = text.split(json.dumps(_PLACEHOLDER[name]), 1)
                out.write(before + opening + "\n")
                with open_file(self._paths[name], "r") as rows:
                    shutil.copyfileobj(rows, out, 1 << 20)
                out.write("\n" + closing)
            out.write(text + "\n")
        for path in self._paths.values():
            path.unlink()
        return out_path

    def close(self) -> None:
        """Release the row files (after a failure)."""
        for name, fh in self._out.items():
            fh.close()
            self._paths[name].unlink(missing_ok=True)


# Stand-ins replaced by the streamed parts, in document order.
_PLACEHOLDER = {name: f"\u0000{name}\u0000" for name in ("permissions", "files", "manifest")}
_BRACKETS = {"permissions": ("{", "    }"), "files": ("[", "    ]"), "manifest": ("[", "        ]")}
