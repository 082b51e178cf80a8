"""The schedule as an operator installs it: a real non-root user with a login shell and a venv of
its own, `allsky-tasks schedule install` from that shell going through a real sudo, and the job
it wrote run as that user, exactly as the timer or cron would."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from allsky_tasks.schedule.installed import from_cron, from_units
from allsky_tasks.schedule.trial import job_command, job_environment

from ..conftest import make_site
from .test_allsky_user import _chown_tree, _reachable, _seen, shared  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd")
                                or not shutil.which("sudo") or not shutil.which("su"),
                                reason="needs root, useradd, su and sudo")
PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
SPEC = "type: config\nsections: {modules: true}\nservice: {pause: never}\n"


@dataclass
class Operator:
    """A login user with passwordless sudo (as Raspberry Pi OS's first user), a venv, a site."""

    pw: pwd.struct_passwd
    home: Path
    venv: Path
    sysroot: Path  # root-owned stand-in for / (the schedule's /etc goes below it)

    def login(self, command: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        """`command` in a login shell of the user (reads ~/.profile, as after ssh pi@...)."""
        return subprocess.run(["su", "-", self.pw.pw_name, "-c", command], text=True,
                              capture_output=True, timeout=timeout, cwd="/")

    @property
    def state(self) -> Path:
        return self.home / "allskybackups" / ".allsky-tasks"


def _venv(folder: Path) -> Path:
    """A real venv for the user: Debian's interpreter, our packages through a .pth file, and the
    `allsky-tasks` script as pip writes it."""
    if not os.access(PYTHON, os.X_OK):
        pytest.skip(f"no {PYTHON}")
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next((folder / "lib").glob("python3*/site-packages"))
    paths = [_seen(str(Path(__file__).resolve().parents[2])),
             _seen(sysconfig.get_paths()["purelib"]), _seen(sysconfig.get_paths()["platlib"])]
    (site / "allsky_tasks_test.pth").write_text("\n".join(dict.fromkeys(paths)) + "\n")
    script = folder / "bin" / "allsky-tasks"
    script.write_text(f"#!{folder}/bin/python\nimport sys\nfrom allsky_tasks.cli import main\n"
                      "sys.exit(main())\n")
    script.chmod(0o755)
    return folder


@pytest.fixture
def operator(shared: Path) -> Iterator[Operator]:  # noqa: F811 - pytest fixture
    name = f"aop{uuid.uuid4().hex[:6]}"
    home = shared / "home" / name
    home.parent.mkdir()
    subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/bash", name], check=True)
    rule = Path(f"/etc/sudoers.d/allsky-tasks-test-{name}")
    try:
        pw = pwd.getpwnam(name)
        rule.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n")
        rule.chmod(0o440)
        venv = _venv(shared / "venv")
        make_site(home)  # ~/allsky, ~/allskybackups (made by the first run)
        (home / "specs").rmdir()
        specs = home / "allsky-backup-specs"
        specs.mkdir()
        (specs / "cfg.yaml").write_text(SPEC)
        with (home / ".profile").open("a") as f:  # the README's two exports
            f.write(f'\nexport PATH="{venv}/bin:$PATH"\nexport ALLSKY_SPECS_DIR=~/allsky-backup-specs\n')
        _chown_tree(home, pw)
        sysroot = shared / "sysroot"
        sysroot.mkdir(mode=0o755)
        yield Operator(pw, home, venv, sysroot)
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", name], check=False)


def _as_user(op: Operator, argv: list[str], env: dict[str, str], cwd: str
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, text=True, capture_output=True, timeout=600,
                          user=op.pw.pw_uid, group=op.pw.pw_gid,
                          extra_groups=os.getgrouplist(op.pw.pw_name, op.pw.pw_gid))


def test_install_from_a_login_shell_goes_through_sudo_and_the_job_runs_as_the_user(
        operator: Operator) -> None:
    op = operator
    proc = op.login(f"allsky-tasks schedule install --root {op.sysroot} --backend systemd "
                    "--at 11:15")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # It said how it asked sudo: the venv's interpreter by its absolute path.
    assert f"sudo {op.venv}/bin/python -m allsky_tasks schedule install" in proc.stderr
    units = op.sysroot / "etc" / "systemd" / "system"
    service, timer = (units / "allsky-tasks.service"), (units / "allsky-tasks.timer")
    assert service.stat().st_uid == 0  # written by root
    job = from_units(service.read_text(), timer.read_text(), [str(service)])
    assert job.user == op.pw.pw_name and job.at == "11:15"
    assert job.environment == {"ALLSKY_HOME": str(op.home / "allsky"),
                               "ALLSKY_SPECS_DIR": str(op.home / "allsky-backup-specs"),
                               "ALLSKY_BACKUP_DIR": str(op.home / "allskybackups")}
    assert job.argv[:3] == [f"{op.venv}/bin/python", "-m", "allsky_tasks"]
    # The job's own command line, as systemd starts it: that user, that environment, cwd /.
    argv, cwd = job_command(job)
    run = _as_user(op, argv, job_environment(job, op.pw), cwd)
    assert run.returncode == 0, run.stdout + run.stderr
    record = json.loads((op.state / "runs" / "cfg.json").read_text())
    assert record["result"] == "ok"
    assert [p.name for p in (op.home / "allskybackups").glob("allsky-config-*.tar.zst")]
    # show (as the user) prints what the job runs with.
    show = op.login(f"allsky-tasks schedule show --root {op.sysroot}")
    assert show.returncode == 0, show.stderr
    assert f"ALLSKY_HOME={op.home / 'allsky'}" in show.stdout
    assert f"ALLSKY_SPECS_DIR={op.home / 'allsky-backup-specs'}" in show.stdout
    assert "last run of cfg: ok" in show.stdout and "PROBLEM" not in show.stdout
    # schedule test: the same job once more, run by the tool itself, with its outcome.
    test = op.login(f"allsky-tasks schedule test --root {op.sysroot}")
    assert test.returncode == 0, test.stdout + test.stderr
    assert "exit 0 (ok)" in test.stdout and "cfg: ok" in test.stdout


def test_cron_line_written_through_sudo_runs_as_the_user(operator: Operator) -> None:
    op = operator
    proc = op.login(f"allsky-tasks schedule install --root {op.sysroot} --backend cron --spec cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cron = op.sysroot / "etc" / "cron.d" / "allsky-tasks"
    job = from_cron(cron.read_text(), [str(cron)])
    assert job.user == op.pw.pw_name
    assert job.environment["ALLSKY_HOME"] == str(op.home / "allsky")
    argv, _ = job_command(job)  # /bin/sh -c '<the line>', as cron runs it, from the home
    run = _as_user(op, argv, job_environment(job, op.pw), str(op.home))
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((op.state / "runs" / "cfg.json").read_text())["result"] == "ok"


def test_sudo_of_the_venv_script_resolves_the_user_s_paths_not_root_s(operator: Operator) -> None:
    op = operator
    # The form the old docs gave: sudo resets HOME to /root and drops ALLSKY_SPECS_DIR.
    proc = op.login(f"sudo {op.venv}/bin/allsky-tasks schedule install --root {op.sysroot} "
                    "--backend systemd")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (op.sysroot / "etc/systemd/system/allsky-tasks.service").read_text()
    assert f"\nUser={op.pw.pw_name}\n" in text and "/root" not in text
    assert f'Environment="ALLSKY_HOME={op.home / "allsky"}"' in text
    assert f'Environment="ALLSKY_SPECS_DIR={op.home / "allsky-backup-specs"}"' in text


def test_a_job_that_would_fail_every_night_is_refused_and_nothing_is_written(
        operator: Operator) -> None:
    op = operator
    root_only = op.sysroot / "root-backups"
    root_only.mkdir(mode=0o700)
    for env, says in ((f"ALLSKY_BACKUP_DIR={root_only}", "cannot be written by this user"),
                      (f"ALLSKY_SPECS_DIR={op.home}/gone", "does not exist"),
                      ("ALLSKY_HOME=/root/allsky", "ALLSKY_HOME /root/allsky")):
        proc = op.login(f"{env} allsky-tasks schedule install --root {op.sysroot}")
        assert proc.returncode == 25, proc.stdout + proc.stderr
        assert says in proc.stderr and "nothing was written" in proc.stderr
        assert not (op.sysroot / "etc").exists()
    # Root installing for the user with an interpreter the user cannot run (a venv below /root).
    proc = subprocess.run([sys.executable, "-m", "allsky_tasks", "schedule", "install", "--root",
                           str(op.sysroot), "--user", op.pw.pw_name, "--home",
                           str(op.home / "allsky"), "--specs-dir",
                           str(op.home / "allsky-backup-specs")],
                          env={**os.environ, "ALLSKY_BACKUP_DIR": str(op.home / "allskybackups")},
                          text=True, capture_output=True, timeout=300)
    if not _reachable(sys.executable):  # pyenv below /root, as on this test machine
        assert proc.returncode == 25 and f"cannot run allsky-tasks as {op.pw.pw_name}" in proc.stderr
        assert not (op.sysroot / "etc").exists()


def test_a_value_with_a_newline_never_reaches_root_s_files(operator: Operator) -> None:
    op = operator
    evil = str(op.home / "allsky") + "\nExecStartPre=+/bin/touch /tmp/owned"
    for backend in ("systemd", "cron"):
        proc = subprocess.run([sys.executable, "-m", "allsky_tasks", "schedule", "install",
                               "--root", str(op.sysroot), "--backend", backend, "--user",
                               op.pw.pw_name, "--home", evil],
                              text=True, capture_output=True, timeout=300)
        assert proc.returncode == 25, proc.stdout + proc.stderr
        assert "control character" in proc.stderr and "Traceback" not in proc.stderr
        assert not (op.sysroot / "etc").exists()
