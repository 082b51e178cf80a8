"""age encryption of copies that leave the device, with pyrage (the Rust age library in-process).

pyrage rather than the `age` binary: it streams through Python file objects, so the ciphertext's
SHA-256 is computed in the same pass, errors arrive as exceptions rather than stderr text, and
nothing extra has to be installed on the Pi (the wheel is self-contained). Recipients are age
X25519 keys (`age1...`) or SSH public keys (`ssh-ed25519 ...`, `ssh-rsa ...`). The ciphertext is
a standard age file: `age -d -i identity.txt x.age` decrypts it too. Where pyrage has no wheel
(32-bit Raspberry Pi OS) the `age` program does the same work (copies/age_cli.py, ALLSKY_AGE=cli).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from ..environment import install_line
from ..errors import EncryptionError, UnsafePathError

SUFFIX = ".age"
BACKEND_ENV = "ALLSKY_AGE"  # pyrage | cli: which age implementation (default: pyrage if installed)


def backend() -> str:
    """"pyrage" when it is installed (and not ALLSKY_AGE=cli), else "cli" (the `age` program)."""
    wanted = os.environ.get(BACKEND_ENV, "")
    if wanted != "cli":
        try:
            import pyrage  # noqa: F401
        except ImportError:
            if wanted == "pyrage":
                raise EncryptionError("ALLSKY_AGE=pyrage, but pyrage is not installed",
                                      hint=f"install it: {install_line('cloud')}") from None
        else:
            return "pyrage"
    from . import age_cli

    if age_cli.available():
        return "cli"
    if wanted == "cli":
        raise EncryptionError("ALLSKY_AGE=cli, but the age program is not installed",
                              hint="install it: sudo apt install age")
    raise EncryptionError("age encryption needs pyrage or the age program; neither is installed",
                          hint=f"install one: {install_line('cloud')} (pyrage), or sudo apt "
                               "install age (where pyrage has no wheel: 32-bit Raspberry Pi OS)")


def check_spec_recipients(copies: Sequence[Mapping[str, Any]], where: str) -> None:
    """Every `encrypt.recipients` of a spec's copies parses (validate): EncryptionError naming it."""
    for item in copies:
        conf = item.get("encrypt")
        if isinstance(conf, Mapping):
            parse_recipients(conf.get("recipients") or [],
                             where=f"{where}: copies[{item.get('name')}].encrypt.recipients")


def parse_recipients(values: Sequence[str], *, where: str = "encrypt.recipients") -> list[Any]:
    """pyrage recipients from `age1...` or SSH public key strings; a bad one is named."""
    if not values:
        raise EncryptionError(f"{where}: no recipients", hint="add an `age1...` key from `allsky-tasks keygen`")
    if backend() == "cli":
        return _cli_recipients(values, where)
    import pyrage

    out = []
    for value in values:
        text = str(value).strip()
        try:
            if text.startswith("age1"):
                out.append(pyrage.x25519.Recipient.from_str(text))
            elif text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
                out.append(pyrage.ssh.Recipient.from_str(text))
            else:
                raise ValueError("not an age1... key or an ssh-ed25519/ssh-rsa public key")
        except (ValueError, pyrage.RecipientError) as exc:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise EncryptionError(f"{where}: recipient {shown!r} is not usable: {exc}",
                                  hint="use the line `allsky-tasks keygen` printed, or an SSH public key") from None
    return out


def _cli_recipients(values: Sequence[str], where: str) -> list[Any]:
    """Recipients as text for the `age` program, each one checked by it."""
    from . import age_cli

    out = []
    for value in values:
        text = str(value).strip()
        problem = None if text.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")) else \
            "not an age1... key or an ssh-ed25519/ssh-rsa public key"
        problem = problem or age_cli.check_recipient(text)
        if problem:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise EncryptionError(f"{where}: recipient {shown!r} is not usable: {problem}",
                                  hint="use the line `allsky-tasks keygen` printed, or an SSH public key")
        out.append(text)
    return out


def load_identities(path: Path) -> list[Any]:
    """Identities from an age identity file (AGE-SECRET-KEY-1... lines) or an unencrypted SSH private key."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read(1 << 20)
    except OSError as exc:
        raise EncryptionError(f"identity file {path}: cannot be read: {exc.strerror or exc}",
                              hint="pass the file `allsky-tasks keygen` wrote with --identity") from None
    if st.st_mode & 0o077:
        # As ssh does for a private key: a secret others may read is refused, not used.
        import stat

        raise EncryptionError(
            f"identity file {path} is a secret key, but others may read it "
            f"({stat.filemode(st.st_mode)}); not used",
            hint=f"`chmod 600 {path}` (a FAT USB stick cannot keep that: copy the file to your "
                 "home folder first, then chmod it)")
    if backend() == "cli":
        from . import age_cli

        problem = None if b"PRIVATE KEY-----" in data else age_cli.check_identity(path)
        if problem:
            raise EncryptionError(f"identity file {path}: not an age identity or SSH private key: {problem}")
        return [path]
    import pyrage

    try:
        if b"PRIVATE KEY-----" in data:
            return [pyrage.ssh.Identity.from_buffer(data)]
        keys = [line.strip() for line in data.decode("utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
        idents = [pyrage.x25519.Identity.from_str(k) for k in keys]
    except (ValueError, UnicodeDecodeError, pyrage.IdentityError) as exc:
        raise EncryptionError(f"identity file {path}: not an age identity or SSH private key: {exc}") from None
    if not idents:
        raise EncryptionError(f"identity file {path}: holds no AGE-SECRET-KEY-1 line")
    return idents


def keygen(path: Path) -> str:
    """Write a new age identity to `path` (mode 0600, never overwriting); return its recipient."""
    import datetime as dt

    path = Path(path).expanduser()
    if backend() == "cli":
        from . import age_cli

        ident, recipient = age_cli.generate()
    else:
        import pyrage

        made = pyrage.x25519.Identity.generate()
        ident, recipient = str(made), str(made.to_public())
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    text = f"# created: {stamp}\n# public key: {recipient}\n{ident}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise EncryptionError(f"identity file {path} already exists; not overwritten",
                              hint="choose another file name, or keep using the existing identity") from None
    except OSError as exc:
        raise EncryptionError(f"identity file {path}: cannot be created: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        os.fchmod(out.fileno(), 0o600)  # whatever the umask
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    return recipient


class _HashingWriter:
    """A writer that hashes and counts what passes to the real file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self.raw.flush()


def encrypt_stream(src: BinaryIO, dst: BinaryIO, recipients: Sequence[Any]) -> tuple[int, str]:
    """Encrypt `src` into `dst` as it streams; return the ciphertext's size and SHA-256."""
    out = _HashingWriter(dst)
    if backend() == "cli":
        from . import age_cli

        age_cli.encrypt(src, out, [str(r) for r in recipients])
        return out.size, out.sha.hexdigest()
    import pyrage

    try:
        pyrage.encrypt_io(src, out, list(recipients))
    except (pyrage.EncryptError, OSError) as exc:
        raise EncryptionError(f"encrypting failed: {exc}") from None
    return out.size, out.sha.hexdigest()


def _decrypt_error(exc: BaseException, what: str) -> EncryptionError:
    import pyrage

    if isinstance(exc, pyrage.DecryptError) and "No matching keys" in str(exc):
        return EncryptionError(f"{what}: the identity does not match any recipient it was encrypted to",
                               hint="pass the identity file whose public key is in the spec's encrypt.recipients")
    return EncryptionError(f"{what}: the ciphertext is damaged or was altered ({exc})",
                           hint="nothing was written from it; restore from another copy")


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: Sequence[Any], *, what: str = "decrypting") -> None:
    """Decrypt `src` into `dst`; a wrong identity or altered ciphertext raises EncryptionError."""
    if backend() == "cli":
        from . import age_cli

        return age_cli.decrypt(src, dst, [Path(i) for i in identities], what)
    import pyrage

    try:
        pyrage.decrypt_io(src, dst, list(identities))
    except (pyrage.DecryptError, OSError) as exc:
        raise _decrypt_error(exc, what) from None


class AgeEncryptor:
    """The copy stage's Encryptor (copies/target.py): age to the spec's recipients, `.age` names."""

    suffix = SUFFIX

    def __init__(self, recipients: Sequence[str], identity: Path | None = None,
                 where: str = "encrypt.recipients") -> None:
        self.recipients = [str(r).strip() for r in recipients]
        self._parsed = parse_recipients(self.recipients, where=where)
        self.identity = identity

    def encrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        """Write the ciphertext of all of `src` to `dst`."""
        encrypt_stream(src, dst, self._parsed)

    def decrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        """Write the plaintext of all of `src` to `dst`; needs an identity (--identity FILE)."""
        if self.identity is None:
            raise EncryptionError("this copy is encrypted: an identity is needed to read it",
                                  hint="pass --identity FILE (the file `allsky-tasks keygen` wrote)")
        decrypt_stream(src, dst, load_identities(self.identity), what=f"decrypting with {self.identity}")


def encryptor_for(item: Mapping[str, Any], spec_encrypt: Mapping[str, Any] | None = None,
                  identity: Path | None = None) -> AgeEncryptor | None:
    """The Encryptor for one `copies:` item: its own `encrypt:`, else the spec's; `encrypt: false` opts out."""
    conf = item.get("encrypt", spec_encrypt)
    if not conf:
        return None
    where = f"copies[{item.get('name')}].encrypt.recipients" if "encrypt" in item else "encrypt.recipients"
    return AgeEncryptor(conf.get("recipients") or [], identity, where)


def decryptor(identity: Path) -> AgeEncryptor:
    """An Encryptor that only decrypts (restore --from --identity): no recipients needed."""
    dec = AgeEncryptor.__new__(AgeEncryptor)
    dec.recipients, dec._parsed, dec.identity = [], [], Path(identity)
    load_identities(dec.identity)  # a missing or unreadable identity fails before anything is fetched
    return dec


def _cache_paths(source: Path, work: Path, encryptor: Any) -> tuple[Path, Path, list[str]]:
    recipients = sorted(str(r) for r in getattr(encryptor, "recipients", []) or [])
    tag = hashlib.sha256("\n".join(recipients).encode()).hexdigest()[:12]
    path = work / f".{source.name}.{tag}{encryptor.suffix}"
    return path, path.with_name(path.name + ".json"), recipients


def _drop_orphans(work: Path, folder: Path) -> None:
    """Remove kept ciphertexts whose source file is gone (pruned) and half-written ones."""
    for entry in os.scandir(work):
        name = entry.name
        if not name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        if name.endswith(".part"):
            os.unlink(entry.path)
            continue
        stem = name[1:].removesuffix(".json").removesuffix(SUFFIX)
        source = stem.rsplit(".", 1)[0] if "." in stem else stem
        if stem != name[1:] and not (folder / source).exists():
            os.unlink(entry.path)


@contextmanager
def sealed(source: Path, encryptor: Any, work: Path) -> Iterator[tuple[Path, int, str]]:
    """The ciphertext of `source` in `work` (path, size, SHA-256) for the copy stage.

    It is kept when the copy fails, and used again by the next run while the source and the
    recipients are unchanged, so an interrupted upload resumes with the very same bytes (age
    picks a new key on every encryption). It is removed once the copy succeeded.
    """
    from ..safefs import read_bytes

    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    _drop_orphans(work, source.parent)
    path, meta, recipients = _cache_paths(source, work, encryptor)
    st = os.stat(source)
    want = {"source": source.name, "size": st.st_size, "mtimeNs": st.st_mtime_ns, "recipients": recipients}
    facts: dict[str, Any] | None = None
    try:
        facts = json.loads(read_bytes(meta, 1 << 20, owned=True))
        kept = os.lstat(path)
        if ({k: facts.get(k) for k in want} != want or not recipients
                or kept.st_size != facts.get("cipherSize") or not os.path.isfile(path)
                or os.path.islink(path)):
            facts = None
    except (OSError, ValueError, UnsafePathError):  # none kept, unusable or not ours: encrypt afresh
        facts = None
    if facts is None:
        meta.unlink(missing_ok=True)
        temp = path.with_name(path.name + ".part")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, open(source, "rb") as src:
                out = _HashingWriter(raw)
                encryptor.encrypt(src, out)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        facts = {**want, "cipherSize": out.size, "cipherSha256": out.sha.hexdigest()}
        mfd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(mfd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(facts))
    done = False
    try:
        yield path, int(facts["cipherSize"]), str(facts["cipherSha256"])
        done = True
    finally:
        if done or not recipients:
            path.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
