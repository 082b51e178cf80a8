#!/usr/bin/env bash
# Create .venv (once) and install the project with the given extras. Run by demo.sh/test.sh.
# For `test`, also the Debian packages the tests start as real servers (when root and missing).
set -euo pipefail
extras="${1:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
# Check the Python version before anything else: with an older one pip's resolver can search
# for many minutes before it fails (Raspberry Pi OS Bullseye ships 3.9).
if ! command -v "$py" >/dev/null 2>&1; then
    echo "bootstrap: $py not found. allsky-tasks needs Python 3.11 or newer with venv" \
         "(Raspberry Pi OS Bookworm: sudo apt install python3 python3-venv)." >&2
    exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    found="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo unknown)"
    echo "bootstrap: $py is Python $found; allsky-tasks needs Python 3.11 or newer." >&2
    echo "  Raspberry Pi OS Bookworm (12) has 3.11. On Bullseye (11, Python 3.9) upgrade the OS," \
         "or install a newer Python and run again with PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "bootstrap: $py has no venv/ensurepip module; install it: sudo apt install python3-venv" >&2
    exit 1
fi
# Debian packages behind real-server tests: sshd (ssh copies), rclone (rclone copies),
# age (cross-checks of encrypted copies), borg (the bench's nightly reference row),
# sudo (a non-root Allsky user pausing the service through `sudo -n`).
DEBIAN_TEST_PACKAGES="openssh-server openssh-client rclone age borgbackup sudo"
if [ "$extras" = "test" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    for p in $DEBIAN_TEST_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "bootstrap: installing Debian packages:$missing" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi
if [ ! -x "$root/.venv/bin/python" ]; then
    "$py" -m venv "$root/.venv"
fi
stamp="$root/.venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e "$root${extras:+[$extras]}"
    touch "$stamp"
fi
