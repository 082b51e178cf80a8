"""Real servers for the cloud-copy tests, on 127.0.0.1: moto's S3 server, rclone serve, pyftpdlib."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on the port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def need_module(name: str) -> None:
    """Skip, naming the package, when a Python package the test needs is missing."""
    try:
        __import__(name)
    except ImportError:
        pytest.skip(f"the Python package {name} is not installed (pip install -e '.[test]')")


class Proc:
    """A server process: started, stopped (SIGTERM, then SIGKILL), and restartable."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv, self.port, self.env, self.cwd = argv, port, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


def moto_server(auth: bool = False) -> Proc:
    """moto's standalone S3 server; with `auth`, requests need IAM credentials (any dummy key fails)."""
    need_module("moto")
    port = free_port()
    env = dict(os.environ)
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    return Proc([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, env)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the AWS chain's environment, and no ~/.aws of the machine."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture
def s3_server(s3_env: None) -> Iterator[Proc]:
    """A running moto S3 server."""
    server = moto_server().start()
    try:
        yield server
    finally:
        server.stop()


def make_bucket(port: int, bucket: str) -> None:
    """Create a bucket on the server through boto3 over HTTP."""
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket=bucket)


def need_binary(name: str, package: str) -> str:
    """Skip, naming the Debian package, when a program is missing."""
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not found: install the Debian package {package}")
    return found


def rclone_webdav(root: Path, config: Path, remote: str = "dav",
                  login: tuple[str, str, str] | None = None) -> Proc:
    """`rclone serve webdav` of `root`, plus a client config file naming it `remote`.

    With `login` (user, server password, client password) the server wants a login and the
    client config offers the client password (the tests make it wrong on purpose).
    """
    rclone = need_binary("rclone", "rclone")
    port = free_port()
    auth = ""
    if login is not None:
        obscured = subprocess.run([rclone, "obscure", login[2]], capture_output=True, text=True,
                                  check=True).stdout.strip()
        auth = f"user = {login[0]}\npass = {obscured}\n"
    config.write_text(textwrap.dedent(f"""\
        [{remote}]
        type = webdav
        url = http://127.0.0.1:{port}/
        vendor = other
        """) + auth, encoding="utf-8")
    empty = config.with_name(config.name + ".server")
    empty.write_text("", encoding="utf-8")
    server_auth = ["--user", login[0], "--pass", login[1]] if login is not None else []
    return Proc([rclone, "--config", str(empty), "serve", "webdav", "--addr", f"127.0.0.1:{port}",
                 *server_auth, str(root)], port)


FTP_SERVER = """
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
port, root, user, password, cert = sys.argv[1:6]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elradfmwMT")
handler = FTPHandler
if cert:
    from pyftpdlib.handlers import TLS_FTPHandler  # needs pyOpenSSL
    handler = TLS_FTPHandler
    handler.certfile = cert
    handler.tls_control_required = True
    handler.tls_data_required = True
handler.authorizer = auth
handler.passive_ports = range(int(port) + 1, int(port) + 40)
FTPServer(("127.0.0.1", int(port)), handler).serve_forever()
"""


def ftp_server(root: Path, user: str, password: str, cert: Path | None = None) -> Proc:
    """A pyftpdlib server (FTPS when given a certificate) in its own process."""
    need_module("pyftpdlib")
    if cert is not None:
        need_module("OpenSSL")  # pyftpdlib's FTPS handler needs the pyOpenSSL package
    port = free_port()
    return Proc([sys.executable, "-c", FTP_SERVER, str(port), str(root), user, password,
                 str(cert or "")], port)


def self_signed_cert(folder: Path) -> Path:
    """A throwaway certificate + key (PEM, one file) for 127.0.0.1."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / "ftps.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    return path
