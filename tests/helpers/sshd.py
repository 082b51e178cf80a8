"""A real OpenSSH server on 127.0.0.1 for the copy tests: own host key, own client key."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Sshd:
    """One sshd process (in a session of its own, so killing it ends every connection)."""

    root: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.root / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def item(self, folder: Path, name: str = "nas", **extra: Any) -> dict[str, Any]:
        """A `copies:` item for this server."""
        ssh = {"host": "127.0.0.1", "port": self.port, "user": "root", "folder": str(folder),
               "key_file": str(self.client_key), "known_hosts": str(self.known_hosts)}
        ssh.update(extra)
        return {"name": name, "ssh": ssh}

    def setup(self) -> Sshd:
        self.root.mkdir(parents=True, exist_ok=True)
        _keygen(self.root / "host_key")
        _keygen(self.client_key)
        shutil.copy(self.root / "client_key.pub", self.root / "authorized_keys")
        pub = (self.root / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        (self.root / "sshd_config").write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.root / 'host_key'}
PidFile {self.root / 'sshd.pid'}
AuthorizedKeysFile {self.root / 'authorized_keys'}
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
LogLevel ERROR
""")
        return self

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(exist_ok=True)
        with open(self.root / "sshd.log", "ab") as log:  # sshd keeps its own copy
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError((self.root / "sshd.log").read_text()) from None
                time.sleep(0.05)
        raise AssertionError("sshd did not start")

    def kill(self) -> None:
        """SIGKILL the server and every session it forked (those call setsid: found by ppid)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


def _descendants(root: int) -> list[int]:
    """Every process below `root`, by parent pid."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        out += sorted(children)
        frontier = children
    return out


def require_openssh() -> None:
    """Skip, naming the package, when the OpenSSH server or client is missing."""
    missing = [p for p in (SSHD, shutil.which("ssh"), shutil.which("sftp"),
                           shutil.which("ssh-keygen")) if not p or not os.path.exists(p)]
    if missing or not os.path.exists(SSHD):
        pytest.skip("needs Debian's openssh-server and openssh-client (apt install "
                    "openssh-server); ./test.sh installs them when run as root")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A running sshd for one test."""
    require_openssh()
    server = Sshd(tmp_path / "sshd").setup().start()
    yield server
    server.kill()
