"""A copy target on a server over SSH, through the system's OpenSSH client (ssh and sftp).

OpenSSH honours the operator's ~/.ssh/config, agent, keys and ProxyJump, and its sftp uses
fsync@openssh.com (`put -f`), posix-rename@openssh.com (`rename`) and resumes (`put -a`).
One master connection per target and run (ControlMaster) carries every command, so a copy
costs one key exchange. Host keys are always checked; nothing is ever added to known_hosts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import CopyError
from .ssh_session import SshSession, sftp_quote
from .target import Progress, RemoteFile, listed_name_ok

# Names an sftp `ls` argument takes literally (sftp globs its arguments).
_SFTP_PLAIN = re.compile(r"[A-Za-z0-9._+=@,-][A-Za-z0-9._+=@, -]*")


def listing_script(folder: str) -> str:
    """A POSIX sh command printing `size/name` NUL-terminated for each regular file in folder.

    GNU find's -printf where there is one (one process); else a loop over the names with
    `ls -lnd` for the size (busybox, BSD). Neither ever prints a name unescaped in a line.
    """
    return (f"cd -- {shlex.quote(folder)} || exit 3; "
            "if find . -maxdepth 0 -printf '' >/dev/null 2>&1; then "
            "find . -maxdepth 1 -type f -printf '%s/%P\\0'; "
            "else for f in * .[!.]* ..?*; do "
            "if [ -f \"$f\" ] && [ ! -h \"$f\" ]; then set -- $(ls -lnd -- \"$f\"); "
            "printf '%s/%s\\0' \"$5\" \"$f\"; fi; done; fi")


def parse_listing(stdout: str) -> list[RemoteFile]:
    """The records of listing_script: `size/name`, each ended by a NUL."""
    out = []
    for record in stdout.split("\0")[:-1]:
        size, sep, name = record.partition("/")
        if sep and size.isdigit() and name and "/" not in name:
            out.append(RemoteFile(name, int(size)))
    return out


def hidden_name(name: str) -> str:
    """The temporary name a copy is uploaded under."""
    return f".{name}.part"


class SshTarget(SshSession):
    """`ssh: {host, port, user, folder, key_file, known_hosts}`."""

    def __init__(self, item: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        super().__init__(item)
        self.limit_kbps: int | None = None  # sftp -l (tests slow a transfer down with it)
        self._has_sha256sum: bool | None = None
        self._shell = True  # False on an sftp-only account: no mkdir -p, sha256sum or cat
        self._temp_dir = Path(context["state_dir"]) if context.get("state_dir") else None

    # -- the protocol ---------------------------------------------------------------------
    def check_ready(self) -> None:
        """Connect once (host key, login), create the folder, learn whether sha256sum exists."""
        self._start_master()
        folder = shlex.quote(self.folder)
        proc = self._ssh(f"mkdir -p -- {folder} && test -w {folder} && "
                         "{ command -v sha256sum >/dev/null 2>&1 && echo sha256sum=yes || "
                         "echo sha256sum=no; }", "cannot create the folder", check=False)
        if proc.returncode == 0 and "sha256sum=" in proc.stdout:
            self._has_sha256sum = "sha256sum=yes" in proc.stdout
            return
        if proc.returncode == 255:
            raise self._fail("cannot connect", proc.stderr)
        # No usable shell (an sftp-only account: ForceCommand internal-sftp, a storage box):
        # make the folder with sftp, one component at a time ("-": an existing one is fine),
        # and read copies back to hash them.
        self._shell, self._has_sha256sum = False, False
        lead = "/" if self.folder.startswith("/") else ""
        parts = [p for p in self.folder.split("/") if p]
        steps = [lead + "/".join(parts[: i + 1]) for i in range(len(parts))]
        self._sftp([f"-mkdir {sftp_quote(step)}" for step in steps]
                   + [f"ls -la {sftp_quote(self.folder)}"], "cannot create the folder")

    def list_files(self) -> list[RemoteFile]:
        """Regular files in the folder; no name can forge an entry (see listing_script).

        With a shell: one NUL-separated `size/name` record per file. On an sftp-only account,
        `sftp ls -lan` is text, so each name of ours it shows is confirmed by a look at that
        very path: a line forged by a name holding a newline names a file that is not there.
        """
        if self._has_sha256sum is None:
            self.check_ready()  # learns whether there is a shell
        if self._shell:
            proc = self._ssh(listing_script(self.folder), "cannot list the folder", timeout=300)
            return [f for f in parse_listing(proc.stdout) if listed_name_ok(f.name)]
        proc = self._sftp([f"ls -lan {sftp_quote(self.folder)}"], "cannot list the folder")
        found = {}
        for line in proc.stdout.splitlines():
            parts = line.split(None, 8)
            if len(parts) == 9 and parts[0].startswith("-") and parts[4].isdigit():
                found[parts[8].rsplit("/", 1)[-1]] = int(parts[4])
        return self._confirmed(found)

    def _confirmed(self, found: dict[str, int]) -> list[RemoteFile]:
        """The sftp listing's names that are really there (and plain: no glob characters)."""
        plain = [n for n in found if listed_name_ok(n) and _SFTP_PLAIN.fullmatch(n)]
        if not plain:
            return []
        proc = self._sftp([f"-ls -ln {sftp_quote(self._remote(n))}" for n in plain],
                          "cannot list the folder")
        seen: dict[str, int] = {}
        for line in proc.stdout.splitlines():
            parts = line.split(None, 8)
            if len(parts) == 9 and parts[0].startswith("-") and parts[4].isdigit():
                seen[parts[8].rsplit("/", 1)[-1]] = int(parts[4])
        return [RemoteFile(n, seen[n]) for n in plain if n in seen]

    def _partial_matches(self, local: BinaryIO, hidden: str, have: int, size: int) -> bool:
        """A partial upload may be resumed only if its bytes are the local archive's first ones."""
        if have == 0 or have > size or not self._has_sha256sum:
            return False  # without a server-side hash, re-sending is cheaper than reading back
        import hashlib

        digest, left = hashlib.sha256(), have
        local.seek(0)
        while left:
            chunk = local.read(min(left, 1 << 20))
            if not chunk:
                return False
            digest.update(chunk)
            left -= len(chunk)
        return self.remote_sha256(hidden) == digest.hexdigest()

    def put_hidden(self, local: BinaryIO, size: int, name: str, progress: Progress) -> str:
        """sftp `put -f` (fsync) to `.name.part`, or `put -a -f` to resume a matching partial."""
        hidden = hidden_name(name)
        have = {f.name: f.size for f in self.list_files()}.get(hidden, 0)
        resume = self._partial_matches(local, hidden, have, size)
        if have and not resume:
            self.delete(hidden)
        if resume:
            progress(have)
        flags = "-a -f" if resume else "-f"
        fd = local.fileno()
        limit = ["-l", str(self.limit_kbps)] if self.limit_kbps else []
        argv = ["sftp", "-q", *limit, *self._options(), "-b", "-", "--", self.host]
        batch = f"put {flags} /dev/fd/{fd} {sftp_quote(self._remote(hidden))}\n"
        with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: nothing drains it while we poll
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=err, text=True, pass_fds=(fd,))
            assert proc.stdin is not None
            proc.stdin.write(batch)
            proc.stdin.close()
            reported = have if resume else 0
            ident = os.fstat(fd)
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    pos = _read_position(proc.pid, (ident.st_dev, ident.st_ino))
                    if pos is not None and pos > reported:
                        progress(pos - reported)
                        reported = pos
            err.seek(0)
            message = err.read()
        if proc.returncode != 0:
            raise self._fail(f"upload of {name} stopped (the partial copy stays hidden "
                             "and is resumed next time)", message)
        if size > reported:
            progress(size - reported)
        return hidden

    def publish(self, hidden: str, name: str) -> None:
        """sftp `rename` (posix-rename@openssh.com where the server has it)."""
        self._sftp([f"rename {sftp_quote(self._remote(hidden))} "
                    f"{sftp_quote(self._remote(name))}"], f"cannot rename {hidden}")

    def put(self, local: BinaryIO, size: int, name: str, progress: Progress) -> None:
        """The plain protocol: hidden name, durable, renamed."""
        self.publish(self.put_hidden(local, size, name, progress), name)

    def remote_sha256(self, name: str) -> str | None:
        """`sha256sum` on the server, so the bytes do not cross the network twice."""
        if self._has_sha256sum is None:
            self.check_ready()
        if not self._has_sha256sum:
            return None
        proc = self._ssh(f"sha256sum -- {shlex.quote(self._remote(name))}",
                         f"cannot hash {name}", timeout=None)
        match = re.match(r"\\?([0-9a-f]{64})\s", proc.stdout)
        if match is None:
            raise CopyError(f"copy target {self.describe()}: sha256sum said {proc.stdout!r}")
        return match.group(1)

    def open_read(self, name: str) -> BinaryIO:
        """Stream a stored file back (`cat` over the connection; sftp `get` without a shell)."""
        if not self._shell:
            return self._get_to_temp(name)
        argv = ["ssh", *self._options(), "--", self.host, f"cat -- {shlex.quote(self._remote(name))}"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return _Stream(proc, self, name)  # type: ignore[return-value]  # read-only: what readers use of a BinaryIO

    def _get_to_temp(self, name: str) -> BinaryIO:
        """sftp `get` into a private temp file (already unlinked), opened for reading."""
        folder = self._temp_dir or Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd, tmp = tempfile.mkstemp(prefix=".sftp-get-", dir=folder)
        try:
            os.close(fd)
            self._sftp([f"get {sftp_quote(self._remote(name))} {sftp_quote(tmp)}"],
                       f"cannot read {name}", timeout=None)
            stream = open(tmp, "rb")  # noqa: SIM115 - returned open: the caller closes it
        finally:
            os.unlink(tmp)  # the open stream keeps the bytes until it is closed
        return stream

    def delete(self, name: str) -> None:
        """sftp `rm`."""
        self._sftp([f"rm {sftp_quote(self._remote(name))}"], f"cannot delete {name}")


class _Stream:
    """A remote file read through `ssh cat`; a failed read raises CopyError at the end."""

    def __init__(self, proc: subprocess.Popen[bytes], target: SshTarget, name: str) -> None:
        self.proc, self.target, self.name = proc, target, name

    def read(self, n: int = -1) -> bytes:
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(n)
        if not data:
            self._finish()
        return data

    def _finish(self) -> None:
        if self.proc.wait() != 0:
            assert self.proc.stderr is not None
            raise self.target._fail(f"cannot read {self.name}", self.proc.stderr.read().decode(
                errors="replace"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_position(pid: int, ident: tuple[int, int]) -> int | None:
    """Where sftp's read of the local file is (Linux /proc), for the progress bar."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == ident:
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    for line in info:
                        if line.startswith("pos:"):
                            return int(line.split()[1])
    except OSError:
        return None
    return None
