"""The tool as the normal Allsky user: a real non-root user, real sudo with a rule written by
the test, the real stand-in service; and root runs leaving files owned by the Allsky user."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site, make_site
from ..helpers.service_fixture import STANDIN, kill_standins, standin_running, start_standin, started_pids


def _reachable(path: str) -> bool:
    """Whether any user can run this file (every folder on its way is world-searchable)."""
    real = Path(os.path.realpath(path))
    return all(os.stat(p).st_mode & 0o001 for p in real.parents) and bool(
        os.stat(real).st_mode & 0o001)


PROJECT = Path(__file__).resolve().parents[2]
# Where the test user sees the project: the checkout itself, or a bind mount of it when the
# checkout sits below a folder other users cannot enter (a `mktemp -d` clone is mode 0700).
_VIEW: dict[str, Path] = {}


def _seen(path: str) -> str:
    """`path` as the test user reaches it (through the bind mount when there is one)."""
    view = _VIEW.get("project")
    if view is not None and Path(path).is_relative_to(PROJECT):
        return str(view / Path(path).relative_to(PROJECT))
    return path


def _python() -> tuple[str, dict[str, str]]:
    """An interpreter the test user can run, and the environment that finds our packages.

    pyenv keeps its interpreters below /root; then Debian's python3 of the same version runs
    the venv's packages.
    """
    if _reachable(sys.executable) and "project" not in _VIEW:
        return sys.executable, {}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(candidate) and _reachable(candidate):
            paths = [_seen(str(PROJECT)), _seen(sysconfig.get_paths()["purelib"]),
                     _seen(sysconfig.get_paths()["platlib"])]
            return candidate, {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    pytest.skip(f"no {version} other users can run")


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd")
                                or not shutil.which("sudo"),
                                reason="needs root, useradd and sudo (apt-get install sudo)")


@pytest.fixture
def allsky_user() -> Iterator[pwd.struct_passwd]:
    """A real user without sudo rights, removed afterwards."""
    name = f"atest{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def shared(real_pause: None) -> Iterator[Path]:
    """A folder other users can reach (pytest's tmp_path is root-only); specs pause as they say."""
    folder = Path(tempfile.mkdtemp(prefix="allsky-user-", dir="/tmp"))
    folder.chmod(0o755)
    if not _reachable(str(PROJECT)):  # e.g. a clone in a root-only temp folder
        view = folder / "project"
        view.mkdir()
        subprocess.run(["mount", "--bind", str(PROJECT), str(view)], check=True)
        _VIEW["project"] = view
    try:
        yield folder
    finally:
        kill_standins(folder / "svc")
        view = _VIEW.pop("project", None)
        if view is not None:
            subprocess.run(["umount", "-l", str(view)], check=False)
        if view is None or not os.path.ismount(view):  # never delete through the bind mount
            shutil.rmtree(folder, ignore_errors=True)


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            os.chown(Path(dirpath) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _site_for(shared: Path, user: pwd.struct_passwd) -> tuple[Site, Path]:
    site = make_site(shared / "site")
    _chown_tree(shared / "site", user)
    svc = shared / "svc"
    svc.mkdir()
    start_standin(svc)  # the service runs as root, as allsky.service does
    service = {"pause": "always", "unit": "standin", "timeout": 20, "commands": {
        a: _standin_argv(svc, a) for a in ("stop", "start", "status")}}
    site.spec("db", "type: config\nsections: {databases: true}\n"
                    f"service: {json.dumps(service)}\n")
    os.chown(site.env.specs_dir / "db.yaml", user.pw_uid, user.pw_gid)
    return site, svc


def _run_as(user: pwd.struct_passwd, site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    python, extra = _python()
    env = {**site.environ(), **extra, "HOME": str(site.root), "USER": user.pw_name,
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("ALLSKY_TASKS_AUTH_KEY", None)  # the user's own key, in its HOME
    return subprocess.run([python, "-m", "allsky_tasks", "run", *args], cwd=site.root,
                          env=env, text=True, capture_output=True, timeout=300,
                          user=user.pw_uid, group=user.pw_gid, extra_groups=[])


def _standin_argv(svc: Path, action: str) -> list[str]:
    """The stand-in's command with an interpreter the user can run."""
    return [_python()[0], _seen(str(STANDIN)), action, "--dir", str(svc)]


def _standin_command(svc: Path, action: str) -> str:
    return " ".join(_standin_argv(svc, action))


def test_without_a_sudoers_rule_it_fails_before_stopping_with_the_fix(
        allsky_user: pwd.struct_passwd, shared: Path) -> None:
    site, svc = _site_for(shared, allsky_user)
    proc = _run_as(allsky_user, site, "backup:db")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 15, out
    assert standin_running(svc) and len(started_pids(svc)) == 1  # never stopped
    assert site.archives() == []
    assert f"{allsky_user.pw_name} ALL=(root) NOPASSWD: {_standin_command(svc, 'stop')}, " \
           f"{_standin_command(svc, 'start')}" in out
    assert "pause: never" in out and "is not allowed without a password" in out
    assert not (site.env.state_dir / "service-paused.json").exists()


def test_with_the_sudoers_rule_the_user_pauses_and_restarts_the_service(
        allsky_user: pwd.struct_passwd, shared: Path) -> None:
    site, svc = _site_for(shared, allsky_user)
    rule = Path(f"/etc/sudoers.d/allsky-tasks-test-{allsky_user.pw_name}")
    # Only the stand-in's stop and start, exactly the line the tool prints.
    rule.write_text(f"{allsky_user.pw_name} ALL=(root) NOPASSWD: "
                    f"{_standin_command(svc, 'stop')}, {_standin_command(svc, 'start')}\n")
    rule.chmod(0o440)
    try:
        assert subprocess.run(["visudo", "-cf", str(rule)], capture_output=True).returncode == 0
        proc = _run_as(allsky_user, site, "backup:db")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        rule.unlink()
    (archive,) = site.archives()
    assert archive.stat().st_uid == allsky_user.pw_uid  # written by the user itself
    service = json.loads(sidecar_path(archive).read_text())["allskyTasks"]["service"]
    assert service["stopped"] and service["restarted"]
    pids = started_pids(svc)
    assert len(pids) == 2 and standin_running(svc)  # stopped once, started again (as root)
    assert Path(f"/proc/{pids[-1]}").stat().st_uid == 0


def test_root_runs_leave_the_files_to_the_allsky_user(allsky_user: pwd.struct_passwd,
                                                      shared: Path) -> None:
    site = make_site(shared / "site")
    _chown_tree(shared / "site", allsky_user)
    site.spec("cfg", "type: config\n")
    proc = subprocess.run([sys.executable, "-m", "allsky_tasks", "run", "--quiet", "backup:cfg"],
                          cwd=site.root, env=site.environ(), text=True, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = site.archives()
    mine = [site.env.backup_dir, archive, sidecar_path(archive), site.env.state_dir,
            *site.env.state_dir.rglob("*")]
    assert [p for p in mine if p.lstat().st_uid != allsky_user.pw_uid] == []
    # ... so the user's own next run can rewrite its state.
    assert _run_as(allsky_user, site, "--quiet", "backup:cfg").returncode == 0


def test_root_inventory_commands_leave_sidecars_to_the_allsky_user(
        allsky_user: pwd.struct_passwd, shared: Path) -> None:
    site = make_site(shared / "site")
    _chown_tree(shared / "site", allsky_user)
    site.spec("cfg", "type: config\n")
    assert _run_as(allsky_user, site, "--quiet", "backup:cfg").returncode == 0
    (archive,) = site.archives()
    for command in (["pin", archive.name], ["verify", archive.name], ["list"]):
        proc = subprocess.run([sys.executable, "-m", "allsky_tasks", *command], cwd=site.root,
                              env=site.environ(), text=True, capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert sidecar_path(archive).lstat().st_uid == allsky_user.pw_uid, command
        mine = [p for p in site.env.state_dir.rglob("*") if p.lstat().st_uid != allsky_user.pw_uid]
        assert mine == [], command
    pins = json.loads((site.env.state_dir / "pins.json").read_text())["pins"]
    assert pins[archive.name]["pinned"] is True
