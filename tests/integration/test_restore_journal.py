"""A restore killed half-way (SIGKILL at a counted step) is finished by the next command, any command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.restore.dirs import JOURNAL_NAME
from allsky_tasks.restore.journal import KILL_AFTER_ENV

from ..conftest import Site, backup
from ..helpers.service_fixture import STANDIN, kill_standins, standin_running, start_standin

FILES = 6000
MANY = "config/myFiles/many"


def _systemctl_shim(bin_dir: Path, service_dir: Path) -> None:
    """A `systemctl` on PATH that drives the stand-in service (restore uses systemctl's commands)."""
    bin_dir.mkdir()
    shim = bin_dir / "systemctl"
    run = f'"{sys.executable}" "{STANDIN}"'
    shim.write_text("#!/bin/sh\n"
                    "case \"$1\" in\n"
                    f"  start) exec {run} start --dir \"{service_dir}\" ;;\n"
                    f"  stop) exec {run} stop --dir \"{service_dir}\" ;;\n"
                    f"  is-active) exec {run} status --dir \"{service_dir}\" ;;\n"
                    "esac\nexit 2\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)


def _cli(site: Site, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root, env=env,
                          text=True, capture_output=True, timeout=600)


@pytest.fixture
def killed_restore(site: Site, tmp_path: Path, real_pause: None):  # type: ignore[no-untyped-def]
    """A config restore of 6000 files SIGKILLed after 3000 placed: mixed tree, service stopped."""
    many = site.home / MANY
    many.mkdir(parents=True)
    for i in range(FILES):
        (many / f"f{i:05d}.txt").write_text("backed-up\n")
    archive = backup(site, "mine", "type: config\nsections: {myfiles: true}\n")
    for i in range(FILES):
        (many / f"f{i:05d}.txt").write_text("changed later\n")
    service_dir = tmp_path / "service"
    service_dir.mkdir()
    _systemctl_shim(tmp_path / "bin", service_dir)
    start_standin(service_dir)
    env = site.environ()
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}"
    killed = _cli(site, {**env, KILL_AFTER_ENV: str(FILES // 2)}, "restore", archive.name,
                  "--yes", "--service-unit", "standin")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    contents = [(many / f"f{i:05d}.txt").read_text() for i in range(FILES)]
    assert 0 < contents.count("backed-up\n") < FILES  # really mixed
    assert not standin_running(service_dir)
    assert (site.env.backup_dir / ".allsky-tasks" / JOURNAL_NAME).exists()
    try:
        yield site, env, service_dir, many
    finally:
        kill_standins(service_dir)


def _assert_finished(site: Site, service_dir: Path, many: Path, out: str) -> None:
    assert "was interrupted after" in out and "finished it" in out, out
    assert "was left stopped by an interrupted restore" in out, out
    assert all((many / f"f{i:05d}.txt").read_text() == "backed-up\n" for i in range(FILES))
    assert standin_running(service_dir)
    assert not (site.env.backup_dir / ".allsky-tasks" / JOURNAL_NAME).exists()
    assert not [p for p in site.home.iterdir() if p.name.startswith(".allsky-restore-")]
    logs = [p.read_text() for p in (site.home / "config/logs").glob("backup-restore-*.log")]
    assert any("finished by the next command" in text for text in logs)


def test_next_list_finishes_the_placement_and_restarts_the_service(killed_restore) -> None:  # type: ignore[no-untyped-def]
    site, env, service_dir, many = killed_restore
    proc = _cli(site, env, "list")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_finished(site, service_dir, many, proc.stderr)


def test_next_doit_run_finishes_the_placement(killed_restore) -> None:  # type: ignore[no-untyped-def]
    site, env, service_dir, many = killed_restore
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(Path(__file__).parents[2] / "dodo.py"),
                           "backup:cfg"], cwd=site.root, env=env, text=True, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_finished(site, service_dir, many, proc.stdout)
