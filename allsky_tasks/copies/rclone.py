"""Copies on any rclone remote (`remote:path`: Google Drive, Dropbox, OneDrive, SMB, WebDAV, ...).

Uses Debian's `rclone` binary, as restic does, with the operator's own rclone config (made
with `rclone config`; a spec may name another config file, never credentials). Writes go to a
hidden temporary name with `copyto`, are verified there, then renamed with `moveto`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import CopyError
from ..redact import redact, redact_remote
from .target import Progress, RemoteFile, listed_name_ok

# rclone's log prefix: "2026/03/01 12:00:00 ERROR : object : "
_STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:[A-Z]+ : )?")
# Fail rather than hang when the remote is gone; rclone's own retries stay short.
NET_FLAGS = ["--contimeout", "15s", "--timeout", "60s", "--retries", "1", "--low-level-retries", "3"]


class RcloneTarget:
    """A folder on an rclone remote."""

    def __init__(self, item: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> None:
        cfg = item["rclone"]
        if isinstance(cfg, str):
            cfg = {"remote": cfg}
        self.name: str = str(item.get("name") or "rclone")
        remote = str(cfg.get("remote") or "")
        if ":" not in remote:
            raise CopyError(f"copy target {self.name}: rclone needs `remote:path`, got {remote!r}",
                            hint="name a remote from `rclone listremotes`, e.g. gdrive:allsky-backups")
        self.remote = remote.rstrip("/") if not remote.endswith(":") else remote
        self.config: str | None = str(Path(cfg["config"]).expanduser()) if cfg.get("config") else None
        self.binary: str = str(cfg.get("binary") or "rclone")
        # Extra rclone options from the spec (e.g. --bwlimit 1M on a slow uplink).
        self.flags: list[str] = [str(f) for f in cfg.get("flags") or []]

    def describe(self) -> str:
        """`name (remote:path)`, inline credentials (`:s3,secret_access_key=...:`) hidden."""
        return f"{self.name} ({redact_remote(self.remote)})"

    def path(self, name: str) -> str:
        """`remote:path/name` for a file name (no folders, no tricks)."""
        if not name or "/" in name or name in (".", ".."):
            raise CopyError(f"copy target {self.describe()}: refusing the file name {name!r}")
        return f"{self.remote}{'' if self.remote.endswith(':') else '/'}{name}"

    def _argv(self, *args: str) -> list[str]:
        """The rclone command; callers put `--` before remote paths, so none is read as a flag."""
        exe = shutil.which(self.binary)
        if exe is None:
            raise CopyError(f"copy target {self.describe()}: the program {self.binary!r} was not found",
                            hint="install rclone (sudo apt install rclone) and set the remote up with `rclone config`")
        conf = ["--config", self.config] if self.config else []
        return [exe, *conf, *NET_FLAGS, *self.flags, *args]

    def _fail(self, what: str, stderr: str, code: int) -> CopyError:
        stderr = redact(stderr.replace(self.remote, redact_remote(self.remote)))  # rclone echoes it
        lines = [_STAMP.sub("", ln).strip() for ln in stderr.strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"rclone exited with {code}"
        hint = None
        if "didn't find section in config file" in stderr:
            hint = "set the remote up with `rclone config` as this user (or name the config file with `config:`)"
        elif any(s in stderr for s in ("401", "403", "Unauthorized", "Forbidden", "authentication")):
            hint = ("the remote refused the login: renew it with `rclone config reconnect "
                    f"{redact_remote(self.remote).split(':')[0]}:` or fix it with `rclone config`")
        elif "directory not found" in stderr or "object not found" in stderr:
            hint = "check the path after the remote name"
        elif any(s in stderr for s in ("connection refused", "no such host", "i/o timeout", "timeout")):
            hint = "the remote is unreachable; the next run copies again"
        return CopyError(f"copy target {self.describe()}: {what} failed: {detail}", hint=hint)

    def _run(self, what: str, *args: str, timeout: float | None = None) -> str:
        try:
            proc = subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CopyError(f"copy target {self.describe()}: {what} timed out") from None
        if proc.returncode != 0:
            raise self._fail(what, proc.stderr, proc.returncode)
        return proc.stdout

    # -- Target protocol --------------------------------------------------------------------

    def check_ready(self) -> None:
        """The remote exists in the config and answers; the folder is created if missing."""
        self._run("reaching the remote", "mkdir", "--", self.remote, timeout=120)

    def list_files(self) -> list[RemoteFile]:
        """Files directly in the folder (rclone lsjson), hidden temp files included."""
        out = self._run("listing", "lsjson", "--files-only", "--no-mimetype", "--no-modtime",
                        "--", self.remote, timeout=300)
        try:
            rows = json.loads(out or "[]")
        except ValueError:
            raise CopyError(f"copy target {self.describe()}: rclone lsjson gave no JSON") from None
        # JSON: a name cannot forge an entry; one with a control character is refused.
        return [RemoteFile(str(r["Name"]), int(r["Size"])) for r in rows
                if isinstance(r, dict) and not r.get("IsDir") and listed_name_ok(str(r.get("Name", "")))
                and str(r.get("Path", r["Name"])) == str(r["Name"])]

    def hidden_name(self, name: str) -> str:
        """The temporary name a copy is written under until verified."""
        return f".{name}.part"

    def put_hidden(self, local: BinaryIO, size: int, name: str, progress: Progress) -> str:
        """`rclone copyto` the local file to the hidden name; return that name."""
        hidden = self.hidden_name(name)
        source = _local_path(local, self.describe())
        argv = self._argv("copyto", "--use-json-log", "--stats", "1s", "-v", "--", source, self.path(hidden))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        errors: list[str] = []
        sent = _follow_stats(proc, progress, errors)
        if proc.wait() != 0:
            raise self._fail(f"copying {name}", "\n".join(errors), proc.returncode)
        if sent < size:
            progress(size - sent)
        return hidden

    def publish(self, hidden: str, name: str) -> None:
        """`rclone moveto` the verified hidden file to its final name."""
        self._run(f"renaming {hidden} to {name}", "moveto", "--", self.path(hidden), self.path(name))

    def put(self, local: BinaryIO, size: int, name: str, progress: Progress) -> None:
        """Copy to the hidden name, then rename (the stage verifies before publish when it can)."""
        self.publish(self.put_hidden(local, size, name, progress), name)

    def remote_sha256(self, name: str) -> str | None:
        """`rclone hashsum sha256` where the remote has SHA-256 (local, sftp, ...); else None."""
        try:
            proc = subprocess.run(self._argv("hashsum", "sha256", "--", self.path(name)), capture_output=True,
                                  text=True, timeout=3600, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0:
            if "hash type not supported" in proc.stderr or "unsupported" in proc.stderr.lower():
                return None
            raise self._fail(f"hashing {name}", proc.stderr, proc.returncode)
        digest = proc.stdout.split()[0] if proc.stdout.split() else ""
        return digest.lower() if len(digest) == 64 else None

    def open_read(self, name: str) -> BinaryIO:
        """Stream the file back (`rclone cat`); a failure is raised at the end of the stream."""
        proc = subprocess.Popen(self._argv("cat", "--", self.path(name)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return _CatStream(proc, self, name)  # type: ignore[return-value]  # read-only: what readers use of a BinaryIO

    def delete(self, name: str) -> None:
        """`rclone deletefile` one file."""
        self._run(f"deleting {name}", "deletefile", "--", self.path(name))


def _local_path(local: BinaryIO, where: str) -> str:
    """The path of the open local file (rclone copies from a path)."""
    path = getattr(local, "name", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        raise CopyError(f"copy target {where}: rclone needs a local file, got {path!r}")
    return path


def _follow_stats(proc: subprocess.Popen[str], progress: Progress, errors: list[str]) -> int:
    """Report rclone's transferred bytes from its JSON stats lines; keep error lines."""
    sent = 0
    assert proc.stderr is not None
    for line in proc.stderr:
        try:
            entry = json.loads(line)
        except ValueError:
            errors.append(line)
            continue
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if isinstance(stats, dict) and isinstance(stats.get("bytes"), int):
            if stats["bytes"] > sent:
                progress(stats["bytes"] - sent)
                sent = stats["bytes"]
        elif isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            errors.append(f"{entry.get('object', '')} : {entry.get('msg', '')}")
    return sent


class _CatStream:
    """stdout of `rclone cat`, raising CopyError at the end if rclone failed."""

    def __init__(self, proc: subprocess.Popen[bytes], target: RcloneTarget, name: str) -> None:
        self._proc, self._target, self._name = proc, target, name
        self._err: list[bytes] = []
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self._proc.stderr is not None
        self._err.append(self._proc.stderr.read())

    def read(self, n: int = -1) -> bytes:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(n if n is not None and n >= 0 else -1)
        if not data:
            code = self._proc.wait()
            self._thread.join()
            if code != 0:
                raise self._target._fail(f"reading {self._name}", b"".join(self._err).decode(errors="replace"),
                                         code)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._thread.join()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> _CatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
