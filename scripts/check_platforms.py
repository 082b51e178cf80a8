"""Does every platform get wheels for what scripts/bootstrap.sh installs there? Asks PyPI.

    python3 scripts/check_platforms.py [aarch64 armv7l armv6l x86_64]

For each platform it takes the project's dependencies and the `cloud` and `notify` extras as
bootstrap.sh installs them there, and runs `pip download --only-binary=:all:` for that platform
(Python 3.11). On 32-bit ARM, bootstrap.sh takes zstandard and PyYAML from Debian (stand-in
wheels of Debian 12's versions take their place here) and encrypts with the `age` program
instead of pyrage. Prints each platform's wheels, or what has none; exit 1 if one fails.
Needs network access to PyPI (docs/platforms.md has the result).
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {  # pip's tags for each, newest glibc first (Debian 12 has glibc 2.36)
    "aarch64": ["manylinux_2_36_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64",
                "linux_aarch64"],
    "armv7l": ["manylinux_2_36_armv7l", "manylinux_2_17_armv7l", "manylinux2014_armv7l",
               "linux_armv7l"],
    "armv6l": ["linux_armv6l"],
    "x86_64": ["manylinux_2_36_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
               "linux_x86_64"],
}
ARM32 = {"armv7l", "armv6l"}
DEBIAN_12 = {"zstandard": "0.20.0", "PyYAML": "6.0"}  # python3-zstandard, python3-yaml
NOT_ON_ARM32 = {"pyrage"}  # the `age` program instead (bootstrap.sh maps cloud to s3)


def requirements(platform: str, raw: bool = False) -> list[str]:
    """What bootstrap.sh has pip install on the platform (base, cloud, notify); `raw`: the
    project's requirements as they are, without the 32-bit ARM choices."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = [*project["dependencies"], *extras["cloud"], *extras["notify"]]
    if platform in ARM32 and not raw:
        reqs = [r for r in reqs if _name(r) not in NOT_ON_ARM32]
        reqs += [f"{name}=={version}" for name, version in DEBIAN_12.items()]
    return reqs


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()


def stand_in(folder: Path, name: str, version: str) -> None:
    """An empty wheel standing for a Debian package (pip sees it as installed-to-be)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: stand-in\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode()
        record += f"{path},sha256={digest.rstrip('=')},{len(text.encode())}\n"
    record += f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, text in {**files, f"{dist}/RECORD": record}.items():
            whl.writestr(path, text)


def check(platform: str, work: Path, raw: bool = False) -> tuple[bool, str]:
    """(ok, pip's last lines or the wheels it took)."""
    links = work / "debian"
    links.mkdir(exist_ok=True)
    for name, version in DEBIAN_12.items():
        stand_in(links, name, version)
    out = work / (platform + ("-raw" if raw else ""))
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311", "--find-links", str(links), "-d", str(out),
            *(f"--platform={tag}" for tag in PLATFORMS[platform]), *requirements(platform, raw)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
        return False, "\n".join(lines[-3:]) or proc.stderr[-500:]
    return True, " ".join(sorted(p.name for p in out.iterdir()))


def main(argv: list[str]) -> int:
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for platform in argv or list(PLATFORMS):
            ok, text = check(platform, Path(tmp))
            failed += not ok
            print(f"{platform}: {'ok' if ok else 'NO WHEEL'}\n  {text}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
