"""What scripts/bootstrap.sh installs per platform: PyPI has a wheel for each piece (asked with
`pip download --only-binary=:all:` per platform), and the 32-bit Raspberry Pi OS install, which
takes Debian's zstandard and PyYAML and encrypts with the `age` program, backs up, encrypts a
copy and restores from it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.environment import PROJECT_DIR

from ..conftest import make_site

DEBIAN_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


needs_pypi = pytest.mark.skipif(not _pypi_reachable(), reason="needs network access to PyPI")


def _check_platforms() -> object:
    spec = importlib.util.spec_from_file_location("check_platforms",
                                                  PROJECT_DIR / "scripts" / "check_platforms.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_pypi
def test_every_supported_platform_gets_wheels_only(tmp_path: Path) -> None:
    check = _check_platforms()
    for platform in ("aarch64", "armv7l", "armv6l", "x86_64"):
        ok, text = check.check(platform, tmp_path)  # type: ignore[attr-defined]
        assert ok, (platform, text)
        assert ("pyrage-" in text) == (platform not in ("armv7l", "armv6l")), (platform, text)
    # Without Debian's packages, 32-bit ARM would have to compile (the reason for the choice).
    ok, text = check.check("armv7l", tmp_path, raw=True)  # type: ignore[attr-defined]
    assert not ok and ("zstandard" in text.lower() or "pyyaml" in text.lower()
                       or "pyrage" in text), text


def _debian_ready() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(DEBIAN_PYTHON, os.X_OK) or not shutil.which("age"):
        return f"needs {DEBIAN_PYTHON} and age"
    for module in ("zstandard", "yaml"):
        probe = subprocess.run([DEBIAN_PYTHON, "-c", f"import {module}"], capture_output=True)
        if probe.returncode != 0:
            return f"needs Debian's python3-{module} (scripts/bootstrap.sh test installs it)"
    return None


@needs_pypi
@pytest.mark.skipif(_debian_ready() is not None, reason=str(_debian_ready()))
def test_the_32_bit_install_uses_debian_and_the_age_program(tmp_path: Path) -> None:
    clone = tmp_path / "allsky-tasks"
    shutil.copytree(PROJECT_DIR, clone, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "demo", "*.egg-info", "out"))
    env = {**os.environ, "ALLSKY_BOOTSTRAP_ARCH": "armv7l", "PYTHON": DEBIAN_PYTHON}
    env.pop("ALLSKY_AGE", None)
    boot = subprocess.run(["bash", str(clone / "scripts" / "bootstrap.sh"), "cloud"], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    python = str(clone / ".venv" / "bin" / "python")
    assert "include-system-site-packages = true" in (clone / ".venv" / "pyvenv.cfg").read_text()
    where = subprocess.run([python, "-c", "import json, zstandard, yaml, boto3, importlib.util;"
                            "print(json.dumps([zstandard.__file__, yaml.__file__, "
                            "importlib.util.find_spec('pyrage') is None]))"],
                           capture_output=True, text=True, check=True)
    zstd_file, yaml_file, no_pyrage = json.loads(where.stdout)
    assert zstd_file.startswith("/usr/lib/python3/dist-packages/")  # Debian's, not a build
    assert yaml_file.startswith("/usr/lib/python3/dist-packages/") and no_pyrage

    site = make_site(tmp_path / "pi")
    run_env = {**site.environ(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run_env.pop("ALLSKY_AGE", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-m", "allsky_tasks", *args], env=run_env, cwd=site.root,
                              capture_output=True, text=True, timeout=600)

    made = cli("keygen", "--output", str(tmp_path / "identity.txt"))
    assert made.returncode == 0 and made.stdout.startswith("age1"), made.stderr
    usb = tmp_path / "usb"
    site.spec("cfg", "type: config\nsections: {modules: true}\nservice: {pause: never}\n"
                     f"copies:\n  - name: usb\n    path: {usb}\n    required: true\n"
                     f"    encrypt: {{recipients: [{made.stdout.strip()}]}}\n")
    first = cli("run", "backup:cfg")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "verify: ok" in first.stdout
    [sealed] = [p for p in usb.iterdir() if p.name.endswith(".tar.zst.age")]
    assert sealed.read_bytes().startswith(b"age-encryption.org/v1\n")
    settings = (site.home / "config" / "settings.json").read_bytes()
    shutil.rmtree(site.home / "config")
    shutil.rmtree(site.env.backup_dir)
    done = cli("restore", "latest-config", "--from", str(usb), "--identity",
               str(tmp_path / "identity.txt"), "--yes", "--no-service")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site.home / "config" / "settings.json").read_bytes() == settings
