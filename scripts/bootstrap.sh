#!/usr/bin/env bash
# Create .venv (once) and install the project with the given extras. Run by demo.sh/test.sh.
# For `test`, also the Debian packages the tests start as real servers (when root and missing).
set -euo pipefail
extras="${1:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
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
