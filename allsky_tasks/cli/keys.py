"""`allsky-tasks keygen`: a new age identity for encrypted copies, and the device's
authentication key beside it (what a restore on a new card needs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT = "~/allsky-tasks-identity.txt"

ADVICE = """\
Identity (private key) written to {path} (mode 0600).
Put the line above under `encrypt: {{recipients: [...]}}` of every copy that should be encrypted.
"""

KEY_ADVICE = """\
Authentication key: {device} (fingerprint {fingerprint}){beside}.
Every copy this Pi makes carries a tag made with it; a restore from a copy target checks the
tag, so a copy someone else put there (anyone can encrypt to the public key above) is refused.

KEEP A COPY OF {keep} SOMEWHERE OTHER THAN THIS PI: a password manager, a USB stick in a
drawer, your laptop, never at a copy target. Without the identity nobody, not even you, can
read the encrypted backups; without the key a restore on a new card must trust the target
(--trust-target). If the SD card dies and they were only on it, they are lost with it.
Backing up needs only the public line above and the key on this Pi; restoring on a new card:
  allsky-tasks restore latest-config --from TARGET --identity FILE
(the key beside the identity is found; or pass --auth-key FILE; plain copies need only that).
"""


def _key_beside(folder: Path) -> tuple[str, Path | None]:
    """This device's key (made if missing) and, unless it is there already, a copy in `folder`."""
    from ..archive import authkey
    from ..errors import UnsafePathError

    key, _ = authkey.ensure()
    beside = folder / authkey.FILE_NAME
    if beside.absolute() == key.path.absolute():
        return key.fingerprint, None
    found = authkey.load(beside, ours=False)
    if found is None:
        authkey.write_new(beside, authkey.key_text(key.secret))
    elif found.fingerprint != key.fingerprint:
        raise UnsafePathError(f"{beside} holds another authentication key (fingerprint "
                              f"{found.fingerprint}, this device's is {key.fingerprint}); left alone",
                              hint="move it away, or write the identity to another folder")
    return key.fingerprint, beside


def _cmd(args: argparse.Namespace) -> int:
    from ..archive import authkey
    from ..copies.encrypt import keygen

    path = Path(args.output).expanduser()
    if args.auth_only:
        fingerprint, beside = _key_beside(path.parent)
        print(beside or authkey.key_path())
        keep = str(beside or authkey.key_path())
    else:
        recipient = keygen(path)
        fingerprint, beside = _key_beside(path.parent)
        print(recipient)
        print(ADVICE.format(path=path), file=sys.stderr)
        keep = f"{path} AND {beside or authkey.key_path()}"
    print(KEY_ADVICE.format(device=authkey.key_path(), fingerprint=fingerprint, keep=keep,
                            beside=f", a copy beside the identity: {beside}" if beside else ""),
          file=sys.stderr)
    return 0


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keygen`."""
    p = subs.add_parser("keygen", help="write a new age identity for encrypted copies (and the "
                                       "authentication key beside it); print its public key",
                        description="Write a new age identity (mode 0600, never overwriting) and print "
                                    "its recipient (public key) for a spec's encrypt.recipients. "
                                    "Also make this device's authentication key if there is none "
                                    "(ALLSKY_TASKS_AUTH_KEY, default ~/allsky-tasks-auth.key) "
                                    "and put a copy of it beside the identity: restores on a new "
                                    "card check copies with it.")
    p.add_argument("--output", "-o", metavar="FILE", default=DEFAULT,
                   help=f"where to write the identity (default: {DEFAULT}); the key goes beside it")
    p.add_argument("--auth-only", action="store_true",
                   help="only the authentication key (for plain copies): made if missing, a copy "
                        "written beside --output; prints the key file's path")
    p.set_defaults(func=_cmd)
