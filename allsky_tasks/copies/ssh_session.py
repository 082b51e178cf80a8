"""The OpenSSH plumbing of an SSH copy target: options, one master connection, ssh/sftp runs, errors."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..environment import expand
from ..errors import CopyError

__all__ = ["TIMEOUT", "SshSession", "sftp_quote"]

TIMEOUT = 30  # seconds for one short command (listing, hashing a partial takes longer: none)


def sftp_quote(text: str) -> str:
    """A path as one sftp batch-file argument."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SshSession:
    """One server over SSH: who and where, and the commands that reach it.

    Every ssh/sftp command ends its options with `--` before the host, so no host value (a
    spec's, or Allsky's REMOTESERVER_HOST) can ever reach ssh's option parser.
    """

    def __init__(self, item: Mapping[str, Any]) -> None:
        cfg = item["ssh"]
        self.name = str(item["name"])
        self.host = str(cfg["host"])
        self.port = cfg.get("port")
        self.user = cfg.get("user")
        self.folder = str(cfg["folder"]).rstrip("/") or "/"
        self.key_file = str(expand(cfg["key_file"])) if cfg.get("key_file") else None
        self.known_hosts = str(expand(cfg["known_hosts"])) if cfg.get("known_hosts") else None
        self._control: str | None = None

    def describe(self) -> str:
        """`nas (pi@nas.local:22:backups/allsky)`."""
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.name} ({who}{self.host}{port}:{self.folder})"

    def _options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "UpdateHostKeys=no", "-o", "ConnectTimeout=15",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        if self.port:
            opts += ["-o", f"Port={int(self.port)}"]
        if self.user:
            opts += ["-o", f"User={self.user}"]
        if self.key_file:
            opts += ["-o", f"IdentityFile={self.key_file}", "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self._control:
            opts += ["-o", f"ControlPath={self._control}/%C", "-o", "ControlMaster=no"]
        return opts

    def _remote(self, name: str) -> str:
        return f"{self.folder}/{name}"

    def _fail(self, what: str, stderr: str) -> CopyError:
        """A CopyError naming the target, with the fix for the usual SSH problems."""
        text = stderr.strip()
        hostport = f"[{self.host}]:{self.port}" if self.port and self.port != 22 else self.host
        scan = f"ssh-keyscan {'-p ' + str(self.port) + ' ' if self.port else ''}{self.host}"
        known = self.known_hosts or "~/.ssh/known_hosts"
        if "IDENTIFICATION HAS CHANGED" in text or "key for" in text and "has changed" in text:
            return CopyError(
                f"copy target {self.describe()}: the host key of {hostport} CHANGED since it "
                f"was recorded in {known}; nothing was sent",
                hint=f"if the server was reinstalled, remove the old key with `ssh-keygen -R "
                     f"'{hostport}'`, check the new fingerprint and add it (`{scan} >> {known}`);"
                     " otherwise someone may be intercepting the connection")
        if "Host key verification failed" in text or "No ED25519 host key" in text or \
                "host key is known" in text:
            return CopyError(
                f"copy target {self.describe()}: the host key of {hostport} is not known "
                f"(not in {known}); nothing was sent",
                hint=f"connect once by hand (`ssh {'-p ' + str(self.port) + ' ' if self.port else ''}"
                     f"{self.host}`) and compare the fingerprint, or add it with "
                     f"`{scan} >> {known}`")
        if "Permission denied" in text:
            return CopyError(
                f"copy target {self.describe()}: the server refused the login "
                f"({self.user or 'default user'}, key {self.key_file or 'agent/default keys'})",
                hint="install the public key on the server (`ssh-copy-id`) or set key_file; "
                     "passwords are never used in batch mode")
        last = text.splitlines()[-1] if text else "no message"
        return CopyError(f"copy target {self.describe()}: {what}: {last}")

    def _run(self, argv: list[str], what: str, stdin: str | None = None,
             timeout: float | None = TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            # surrogateescape: a name that is not UTF-8 is refused later, never a crash here.
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  errors="surrogateescape", timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CopyError(f"copy target {self.describe()}: {what}: no answer in {timeout}s") \
                from None
        except FileNotFoundError as e:
            raise CopyError(f"copy target {self.describe()}: {e.filename} is not installed",
                            hint="install the OpenSSH client (apt install openssh-client)") \
                from None
        if check and proc.returncode != 0:
            raise self._fail(what, proc.stderr)
        return proc

    def _ssh(self, command: str, what: str, check: bool = True,
             timeout: float | None = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self._run(["ssh", *self._options(), "--", self.host, command], what,
                         check=check, timeout=timeout)

    def _sftp(self, commands: list[str], what: str, timeout: float | None = TIMEOUT
              ) -> subprocess.CompletedProcess[str]:
        return self._run(["sftp", "-q", *self._options(), "-b", "-", "--", self.host], what,
                         stdin="\n".join(commands) + "\n", timeout=timeout)

    def _start_master(self) -> None:
        """Open the master connection once (host key, login); every later command shares it."""
        if self._control is None:
            self._control = tempfile.mkdtemp(prefix="allsky-ssh-")
            err = Path(self._control) / "master.err"
            opts = [o.replace("ControlMaster=no", "ControlMaster=yes") for o in self._options()]
            with open(err, "w+") as errf:
                # stderr to a file: the backgrounded master must not hold one of our pipes.
                proc = subprocess.run(["ssh", *opts, "-o", "ControlPersist=120", "-f", "-N",
                                       "--", self.host], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=errf, timeout=60)
                errf.seek(0)
                message = errf.read()
            if proc.returncode != 0:
                self.close()
                raise self._fail("cannot connect", message)

    def close(self) -> None:
        """End the master connection and remove its socket folder."""
        if self._control is None:
            return
        control, self._control = self._control, None
        subprocess.run(["ssh", "-o", f"ControlPath={control}/%C", "-O", "exit",
                        *self._options(), "--", self.host], capture_output=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
        shutil.rmtree(control, ignore_errors=True)
