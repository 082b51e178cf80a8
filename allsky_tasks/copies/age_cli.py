"""age encryption through the `age` program, where pyrage has no wheel (32-bit Raspberry Pi OS).

The same files as pyrage makes (the age format): either side decrypts what the other wrote.
Data streams through the program's pipes, so memory stays bounded; stderr goes to a temporary
file (a full pipe would stall the program).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import EncryptionError

CHUNK = 1 << 20


def available() -> bool:
    """Whether `age` and `age-keygen` are on PATH."""
    return bool(shutil.which("age") and shutil.which("age-keygen"))


def _run(argv: list[str], data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=data, capture_output=True, timeout=120)


def check_recipient(text: str) -> str | None:
    """None when `age` accepts the recipient, else its complaint."""
    proc = _run(["age", "-r", text, "-o", "/dev/null"])
    return None if proc.returncode == 0 else proc.stderr.decode(errors="replace").strip()


def check_identity(path: Path) -> str | None:
    """None when the file holds age identities `age-keygen -y` reads, else its complaint."""
    proc = _run(["age-keygen", "-y", str(path)])
    return None if proc.returncode == 0 else proc.stderr.decode(errors="replace").strip()


def generate() -> tuple[str, str]:
    """A new identity: (AGE-SECRET-KEY-1... line, its age1... recipient)."""
    proc = _run(["age-keygen"])
    if proc.returncode != 0:
        raise EncryptionError(f"age-keygen failed: {proc.stderr.decode(errors='replace').strip()}")
    secret = next((ln for ln in proc.stdout.decode().splitlines()
                   if ln.startswith("AGE-SECRET-KEY-1")), None)
    if secret is None:
        raise EncryptionError("age-keygen printed no AGE-SECRET-KEY-1 line")
    public = _run(["age-keygen", "-y"], secret.encode() + b"\n")
    return secret, public.stdout.decode().strip()


def _pump(argv: list[str], src: Any, dst: Any) -> tuple[int, str]:
    """Stream src through the program into dst; (exit code, stderr)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None and proc.stdout is not None
        failed: list[BaseException] = []

        def feed(pipe: IO[bytes]) -> None:
            try:
                while chunk := src.read(CHUNK):
                    pipe.write(chunk)
            except BrokenPipeError:
                pass  # the program stopped early: its exit code and stderr say why
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                failed.append(e)
            finally:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()

        feeder = threading.Thread(target=feed, args=(proc.stdin,), name="age-feed", daemon=True)
        feeder.start()
        try:
            while chunk := proc.stdout.read(CHUNK):
                dst.write(chunk)
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            code = proc.wait()
            feeder.join()
        if failed:
            raise failed[0]
        err.seek(0)
        return code, err.read().decode(errors="replace").strip()


def encrypt(src: Any, dst: Any, recipients: Sequence[str]) -> None:
    """Encrypt all of src into dst to these recipients."""
    code, err = _pump(["age", *(w for r in recipients for w in ("-r", r))], src, dst)
    if code != 0:
        raise EncryptionError(f"encrypting failed: age: {err}")


def decrypt(src: Any, dst: Any, identities: Sequence[Path], what: str) -> None:
    """Decrypt all of src into dst with these identity files."""
    code, err = _pump(["age", "-d", *(w for i in identities for w in ("-i", str(i)))], src, dst)
    if code == 0:
        return
    if "no identity matched" in err:
        raise EncryptionError(f"{what}: the identity does not match any recipient it was "
                              "encrypted to",
                              hint="pass the identity file whose public key is in the spec's "
                                   "encrypt.recipients")
    raise EncryptionError(f"{what}: the ciphertext is damaged or was altered (age: {err})",
                          hint="nothing was written from it; restore from another copy")
