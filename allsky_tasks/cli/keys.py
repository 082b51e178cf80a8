"""`allsky-tasks keygen`: a new age identity for encrypted copies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT = "~/allsky-tasks-identity.txt"

ADVICE = """\
Identity (private key) written to {path} (mode 0600).
Put the line above under `encrypt: {{recipients: [...]}}` of every copy that should be encrypted.

KEEP A COPY OF {path} SOMEWHERE OTHER THAN THIS PI: a password manager, a USB stick in a
drawer, your laptop. Without it nobody, not even you, can read the encrypted backups. If the
SD card dies and the identity was only on it, the encrypted copies are lost with it. Then
delete it from the Pi if you like: backing up needs only the public line above; restoring
needs the identity (`allsky-tasks restore NAME --from TARGET --identity FILE`).
"""


def _cmd(args: argparse.Namespace) -> int:
    from ..copies.encrypt import keygen

    path = Path(args.output).expanduser()
    recipient = keygen(path)
    print(recipient)
    print(ADVICE.format(path=path), file=sys.stderr)
    return 0


def register(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keygen`."""
    p = subs.add_parser("keygen", help="write a new age identity for encrypted copies; print its public key",
                        description="Write a new age identity (mode 0600, never overwriting) and print "
                                    "its recipient (public key) for a spec's encrypt.recipients.")
    p.add_argument("--output", "-o", metavar="FILE", default=DEFAULT,
                   help=f"where to write the identity (default: {DEFAULT})")
    p.set_defaults(func=_cmd)
