"""A new card in one command: a fresh or empty install is restored with one confirmation, the
latest-* names work locally, the tree comes back with Allsky's folder modes and exact times,
and an encrypted cloud copy without --identity says so (exit 23)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers.cloud_servers import make_bucket, s3_env, s3_server  # noqa: F401

from ..conftest import Site, archive_metadata, tree_state

CONFIG = ("type: config\nsections: {modules: true, databases: true, cameras: true, uservariables: "
          "true, remote: true, ssl: true, myfiles: true, darks: true}\nservice: {pause: never}\n")


def _held(site: Site, state: dict[str, Any]) -> dict[str, Any]:
    """The paths of a tree state that the site's newest config backup holds (a database is
    captured, not copied: left out)."""
    [archive] = [a for a in site.archives() if a.name.startswith("allsky-config-")][-1:]
    rows = archive_metadata(archive)["allskyTasks"]["manifest"]
    held = {r["path"] for r in rows if not r["path"].endswith(".db")}
    assert len(held) > 20
    return {k: v for k, v in state.items() if k in held}


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)


def _on_a_terminal(site: Site, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the command on a real pseudo-terminal; answer every question with `answer`."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, with the site's environment
        os.chdir(site.root)
        os.execve(sys.executable, [sys.executable, "-m", "allsky_tasks", *args], site.environ())
    out, deadline = b"", time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
        if out.rstrip().endswith(b"[y/N]"):
            os.write(fd, answer)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def _exact_times(site: Site) -> None:
    """Give the config files sub-second times, as files written by Allsky have."""
    for i, path in enumerate(sorted((site.home / "config").rglob("*"))):
        if path.is_file() and not path.is_symlink():
            ns = path.stat().st_mtime_ns // 10 ** 9 * 10 ** 9 + 123_456_789 + i
            os.utime(path, ns=(ns, ns))


def _times(site: Site) -> dict[str, int]:
    return {str(p.relative_to(site.home)): p.lstat().st_mtime_ns
            for p in (site.home / "config").rglob("*") if p.is_file() and not p.is_symlink()
            and "logs" not in p.parts}


def test_a_fresh_install_comes_back_in_one_command_with_one_confirmation(site: Site) -> None:
    site.spec("cfg", CONFIG)
    for folder in ("config", "config/overlay"):
        os.chmod(site.home / folder, 0o775)  # as Allsky's installer leaves them
    _exact_times(site)
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    before, times = tree_state(site.home), _times(site)
    shutil.rmtree(site.home / "config")  # the new card: Allsky installed, no config yet
    code, out = _on_a_terminal(site, ["restore", "latest-config", "--no-service"], b"y\n")
    assert code == 0, out
    assert out.count("[y/N]") == 1  # one confirmation, no --force-camera, no --no-undo
    assert "fresh or empty Allsky install" in out and "no undo backup" in out
    assert "[pass] Camera matches: no camera is set up here yet" in out
    assert _held(site, tree_state(site.home)) == _held(site, before)
    for folder in ("config", "config/overlay"):
        assert stat.S_IMODE((site.home / folder).stat().st_mode) == 0o775, folder
    assert stat.S_IMODE((site.home / "config/logs").stat().st_mode) == 0o775
    assert _held(site, _times(site)) == _held(site, times)  # to the nanosecond
    assert not [a for a in site.archives() if "pre-restore" in json.dumps(
        json.loads(a.with_name(a.name.split(".tar.")[0] + ".json").read_text()))]


def test_an_empty_config_folder_is_a_fresh_install_too_and_no_means_nothing_changes(
        site: Site) -> None:
    site.spec("cfg", CONFIG)
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    before = tree_state(site.home)
    shutil.rmtree(site.home / "config")
    (site.home / "config").mkdir()
    code, out = _on_a_terminal(site, ["restore", "latest-config", "--no-service"], b"n\n")
    assert code == 2 and "nothing was changed" in out
    assert list((site.home / "config").iterdir()) == []
    proc = _cli(site, "restore", "latest-config", "--no-service", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "holds no settings.json" in proc.stdout
    assert _held(site, tree_state(site.home)) == _held(site, before)


def test_latest_names_pick_the_newest_local_backup_of_their_kind(site: Site) -> None:
    site.spec("cfg", CONFIG)
    site.spec("nights", "type: images\nfolders: {last: 1}\nservice: {pause: never}\n")
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    time.sleep(1.1)  # a second backup, a second later: names carry the second
    (site.home / "config" / "settings.json").touch()
    assert _cli(site, "run", "--quiet", "backup:cfg", "backup:nights").returncode == 0
    configs = sorted(a for a in site.archives() if a.name.startswith("allsky-config-"))
    [images] = [a for a in site.archives() if a.name.startswith("allsky-images-")]
    assert len(configs) == 2
    for name, want in (("latest-config", configs[-1]), ("latest-images", images)):
        proc = _cli(site, "restore", name, "--dry-run", "--no-service")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{name}: {want.name}" in proc.stdout and "Dry run" in proc.stdout
    # A config restore leaves an undo backup: it is newer, but never "the latest config".
    assert _cli(site, "restore", configs[0].name, "--yes", "--no-service").returncode == 0
    assert len([a for a in site.archives() if a.name.startswith("allsky-config-")]) == 3
    proc = _cli(site, "restore", "latest-config", "--dry-run", "--no-service")
    assert f"latest-config: {configs[-1].name}" in proc.stdout


def test_an_encrypted_cloud_copy_without_identity_says_so_and_exits_23(
        site: Site, s3_server, tmp_path: Path) -> None:  # noqa: F811
    make_bucket(s3_server.port, "allsky")
    identity = tmp_path / "identity.txt"
    made = _cli(site, "keygen", "--output", str(identity))
    assert made.returncode == 0, made.stderr
    endpoint = f"http://127.0.0.1:{s3_server.port}"
    site.spec("cfg", CONFIG + f"copies:\n  - name: b2\n    required: true\n    s3: {{bucket: allsky, "
                              f"prefix: pi, endpoint_url: \"{endpoint}\"}}\n    encrypt: "
                              f"{{recipients: [{made.stdout.strip()}]}}\n")
    assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    for spec in site.env.specs_dir.iterdir():  # a new card: no specs, no records
        spec.unlink()
    shutil.rmtree(site.env.backup_dir)
    url = f"s3://allsky/pi?endpoint_url={endpoint}"
    proc = _cli(site, "restore", "latest-config", "--from", url, "--yes", "--no-service")
    assert proc.returncode == 23, proc.stdout + proc.stderr
    assert "age-encrypted" in proc.stderr and "--identity" in proc.stderr
    assert "holds no backup" not in proc.stderr
    done = _cli(site, "restore", "latest-config", "--from", url, "--identity", str(identity),
                "--yes", "--no-service")
    assert done.returncode == 0, done.stdout + done.stderr
