"""Copies on an FTP or FTPS server (Python's ftplib), as Allsky's Remote Server upload uses them.

FTP has no atomic-rename guarantee across servers, so, like Allsky's own upload.sh, a copy is
stored under a hidden temporary name and renamed when complete (after the stage verified it).
FTPS checks the server's certificate against the system's CAs (or SSL_CERT_FILE).
"""

from __future__ import annotations

import contextlib
import ftplib
import re
import socket
import ssl
from typing import Any, BinaryIO

from ..errors import CopyError
from .target import OWN_NAME, Progress, RemoteFile, listed_name_ok

BLOCK = 1 << 20
TIMEOUT = 60
_OURS = re.compile(rf"^\.?{OWN_NAME}(?:\.part)?$")  # our files and temp names


class FtpTarget:
    """A folder on an FTP(S) server; host, user and password come from Allsky's env.json."""

    def __init__(self, name: str, host: str, user: str, password: str, folder: str = "",
                 port: int | None = None, tls: bool = False, source: str = "") -> None:
        self.name, self.host, self.user, self.password = name, host, user, password
        self.port = int(port or 21)
        self.folder = folder.rstrip("/") or ""
        self.tls = tls
        self.source = source  # where the settings came from, for messages
        self._ftp: ftplib.FTP | None = None

    def describe(self) -> str:
        """`name (ftps://user@host:port/folder)`."""
        scheme = "ftps" if self.tls else "ftp"
        return f"{self.name} ({scheme}://{self.user}@{self.host}:{self.port}/{self.folder.lstrip('/')})"

    def _fail(self, what: str, exc: BaseException) -> CopyError:
        detail = str(exc).strip() or type(exc).__name__
        hint = None
        if isinstance(exc, ftplib.error_perm) and detail.startswith("530"):
            hint = f"the user or password was refused: check them{' in ' + self.source if self.source else ''}"
        elif isinstance(exc, ssl.SSLError):
            hint = "the server's TLS certificate was not accepted (or the server does not speak FTPS)"
        elif isinstance(exc, (OSError, EOFError)):
            hint = "the server is unreachable or closed the connection; the next run copies again"
        return CopyError(f"copy target {self.describe()}: {what} failed: {detail}", hint=hint)

    @property
    def ftp(self) -> ftplib.FTP:
        """The logged-in connection, in the target's folder (created if missing)."""
        if self._ftp is None:
            try:
                ftp: ftplib.FTP = (ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=TIMEOUT)
                                   if self.tls else ftplib.FTP(timeout=TIMEOUT))
                ftp.connect(self.host, self.port)
                ftp.login(self.user, self.password)
                if isinstance(ftp, ftplib.FTP_TLS):
                    ftp.prot_p()
                self._enter(ftp)
            except (ftplib.Error, OSError, EOFError) as exc:
                raise self._fail("connecting", exc) from None
            self._ftp = ftp
        return self._ftp

    def _enter(self, ftp: ftplib.FTP) -> None:
        if self.folder.startswith("/"):
            ftp.cwd("/")
        for part in [p for p in self.folder.split("/") if p]:
            try:
                ftp.cwd(part)
            except ftplib.error_perm:
                ftp.mkd(part)
                ftp.cwd(part)

    def _do(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ftplib.Error, OSError, EOFError) as exc:
            self._drop()
            raise self._fail(what, exc) from None

    def _drop(self) -> None:
        if self._ftp is not None:
            try:
                self._ftp.close()
            finally:
                self._ftp = None

    def close(self) -> None:
        """End the connection politely."""
        if self._ftp is not None:
            with contextlib.suppress(ftplib.Error, OSError, EOFError):
                self._ftp.quit()
            self._drop()

    @staticmethod
    def _check(name: str) -> str:
        if not name or "/" in name or name in (".", "..") or any(c in name for c in "\r\n"):
            raise CopyError(f"refusing the file name {name!r}")
        return name

    # -- Target protocol --------------------------------------------------------------------

    def check_ready(self) -> None:
        """Log in and enter (or create) the folder."""
        self.ftp  # noqa: B018 - connecting is the check

    def _listing(self, command: str) -> list[str]:
        """A listing's lines from the raw bytes, split at CRLF only (RFC 3659).

        ftplib's own readers split at a bare LF or CR too, so a name holding one would become
        two entries; here it stays one name, and listed_name_ok refuses it.
        """
        chunks: list[bytes] = []
        ftp = self.ftp
        try:
            ftp.retrbinary(command, chunks.append)
        except ftplib.error_perm:
            raise  # e.g. no MLSD on this server: the caller falls back
        except (ftplib.Error, OSError, EOFError) as exc:
            self._drop()
            raise self._fail("listing", exc) from None
        raw = b"".join(chunks)
        sep = b"\r\n" if b"\r\n" in raw or b"\n" not in raw else b"\n"  # a few servers end with LF
        return [line.decode(self.ftp.encoding, "surrogateescape") for line in raw.split(sep) if line]

    def list_files(self) -> list[RemoteFile]:
        """Files in the folder, with sizes (MLSD, else NLST + SIZE); names of ours confirmed.

        A name with CR LF in it could still forge a line: every name of our own pattern is
        looked at once more (SIZE), so a forged one, which is not there, is never listed.
        """
        try:
            found = {}
            for line in self._listing("MLSD"):
                facts, _, name = line.partition(" ")
                fields = dict(f.split("=", 1) for f in facts.lower().split(";") if "=" in f)
                if fields.get("type") == "file" and fields.get("size", "").isdigit():
                    found[name] = int(fields["size"])
        except ftplib.error_perm:  # no MLSD on this server
            try:
                found = {n.rsplit("/", 1)[-1]: -1 for n in self._listing("NLST")}
            except ftplib.error_perm as exc:
                raise self._fail("listing", exc) from None
        out = []
        for name, size in found.items():
            if not listed_name_ok(name):
                continue
            if size < 0 or _OURS.match(name):
                try:
                    size = int(self.ftp.size(name) or 0)
                except ftplib.error_perm:
                    continue  # a folder, or not there at all (a forged line)
                except (ftplib.Error, OSError, EOFError) as exc:
                    self._drop()
                    raise self._fail("listing", exc) from None
            out.append(RemoteFile(name, size))
        return out

    def hidden_name(self, name: str) -> str:
        """The temporary name a copy is stored under until verified."""
        return f".{self._check(name)}.part"

    def put_hidden(self, local: BinaryIO, size: int, name: str, progress: Progress) -> str:
        """STOR the file under its hidden name; return that name."""
        hidden = self.hidden_name(name)
        ftp = self.ftp
        self._do(f"storing {name}", ftp.storbinary, f"STOR {hidden}", local, BLOCK,
                 lambda block: progress(len(block)))
        stored = self._do(f"checking the size of {hidden}", ftp.size, hidden)
        if stored is not None and int(stored) != size:
            raise CopyError(f"copy target {self.describe()}: {hidden} holds {stored} bytes, not {size}")
        return hidden

    def publish(self, hidden: str, name: str) -> None:
        """Rename the verified hidden file to its final name (replacing a stale one, as upload.sh does)."""
        ftp = self.ftp
        try:
            ftp.rename(hidden, self._check(name))
        except ftplib.error_perm:
            self._do(f"removing the old {name}", ftp.delete, name)
            self._do(f"renaming {hidden} to {name}", ftp.rename, hidden, name)
        except (ftplib.Error, OSError, EOFError) as exc:
            self._drop()
            raise self._fail(f"renaming {hidden} to {name}", exc) from None

    def put(self, local: BinaryIO, size: int, name: str, progress: Progress) -> None:
        """Store under the hidden name, then rename."""
        self.publish(self.put_hidden(local, size, name, progress), name)

    def remote_sha256(self, name: str) -> str | None:
        """FTP has no standard hash command: None, so the stage reads the copy back."""
        return None

    def open_read(self, name: str) -> BinaryIO:
        """Stream a file back (RETR)."""
        ftp = self.ftp
        self._do(f"reading {name}", ftp.voidcmd, "TYPE I")  # binary: listings leave ASCII mode on
        conn = self._do(f"reading {name}", ftp.transfercmd, f"RETR {self._check(name)}")
        return _Retr(self, conn, name)  # type: ignore[return-value]  # read-only: what readers use of a BinaryIO

    def delete(self, name: str) -> None:
        """DELE one file."""
        self._do(f"deleting {name}", self.ftp.delete, self._check(name))


class _Retr:
    """The data connection of a RETR; the server's final reply is checked at the end."""

    def __init__(self, target: FtpTarget, conn: socket.socket, name: str) -> None:
        self._t, self._conn, self._name = target, conn, name
        self._file = conn.makefile("rb")
        self._done = False

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._file.read(n if n is not None and n >= 0 else -1)
        except OSError as exc:
            self._t._drop()
            raise self._t._fail(f"reading {self._name}", exc) from None
        if not data and not self._done:
            self._finish()
        return data

    def _finish(self) -> None:
        self._done = True
        self._file.close()
        if isinstance(self._conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                self._conn.unwrap()  # a clean TLS close, as ftplib's own retrbinary does
        self._conn.close()
        self._t._do(f"reading {self._name}", self._t.ftp.voidresp)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._file.close()
            self._conn.close()
            self._t._drop()  # an unfinished transfer leaves the control connection mid-reply

    def __enter__(self) -> _Retr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
