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
# sudo (a non-root Allsky user pausing the service through `sudo -n`), python3-zstandard and
# python3-yaml (the 32-bit Raspberry Pi OS install, which takes them from Debian).
DEBIAN_TEST_PACKAGES="openssh-server openssh-client rclone age borgbackup sudo python3-zstandard python3-yaml"
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
# 32-bit Raspberry Pi OS (armv7l, armv6l): PyPI has no wheels for zstandard, PyYAML or pyrage
# there, and building them takes an hour (pyrage needs Rust). Debian's python3-zstandard and
# python3-yaml come in through --system-site-packages, encryption through Debian's `age`
# program, and pip may only take wheels (--only-binary): it fails in seconds, never compiles.
# See docs/platforms.md. ALLSKY_BOOTSTRAP_ARCH overrides `uname -m` (the tests use it).
arch="${ALLSKY_BOOTSTRAP_ARCH:-$(uname -m)}"
venv_opts=""
pip_opts=""
pip_extras="$extras"
case "$arch" in
    armv6l|armv7l|armv8l|armhf|arm)
        debian="python3-zstandard python3-yaml age"
        case ",$extras," in *,demo,*|*,test,*) debian="$debian python3-pil" ;; esac
        missing=""
        for p in $debian; do
            dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
        done
        if [ -n "$missing" ]; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                echo "bootstrap: $arch: installing Debian packages:$missing" >&2
                apt-get update -qq >/dev/null
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
            else
                echo "bootstrap: 32-bit ARM ($arch): PyPI has no wheels for zstandard, PyYAML" \
                     "and pyrage here; install Debian's packages first:" >&2
                echo "  sudo apt install$missing" >&2
                exit 1
            fi
        fi
        venv_opts="--system-site-packages"
        pip_opts="--only-binary=:all:"
        # pyrage (in `cloud`) has no wheel here: S3 through boto3, encryption through `age`.
        pip_extras="$(echo "$extras" | sed -E 's/(^|,)cloud(,|$)/\1s3\2/')"
        ;;
esac
if [ ! -x "$root/.venv/bin/python" ] || { [ -n "$venv_opts" ] && \
        ! grep -q "include-system-site-packages = true" "$root/.venv/pyvenv.cfg"; }; then
    "$py" -m venv $venv_opts "$root/.venv"
fi
stamp="$root/.venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    if ! "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check $pip_opts \
            -e "$root${pip_extras:+[$pip_extras]}"; then
        echo "bootstrap: pip could not install allsky-tasks${pip_extras:+[$pip_extras]} on $arch" \
             "(see docs/platforms.md)" >&2
        exit 1
    fi
    touch "$stamp"
fi
