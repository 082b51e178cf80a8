"""Shared fixtures: real demo Allsky trees, environments, spec files and doit runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from allsky_tasks.demo import DemoTree, make_demo_tree
from allsky_tasks.environment import PROJECT_DIR, Environment

# The real-server fixtures (sshd, s3_server, s3_env), for every test that names one.
pytest_plugins = ["tests.helpers.sshd", "tests.helpers.cloud_servers"]

SHIPPED_SPECS = PROJECT_DIR / "backup_specs"
DATA = Path(__file__).parent / "data"


@dataclass
class Site:
    """A demo install plus where its specs and backups go."""

    tree: DemoTree
    env: Environment
    root: Path

    @property
    def home(self) -> Path:
        """The Allsky home."""
        return self.tree.home

    def environ(self) -> dict[str, str]:
        """Process environment pointing the tool at this site."""
        env = dict(os.environ)
        env.update(ALLSKY_HOME=str(self.env.home), ALLSKY_BACKUP_DIR=str(self.env.backup_dir),
                   ALLSKY_SPECS_DIR=str(self.env.specs_dir))
        env.pop("ALLSKY_IMAGES", None)
        return env

    def spec(self, name: str, text: str) -> Path:
        """Write a spec file into this site's specs folder."""
        path = self.env.specs_dir / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def doit(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run doit on the project's dodo.py in a child process, as an operator would."""
        proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"),
                               *args], cwd=self.root, env=self.environ(), text=True,
                              capture_output=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"doit {args} failed ({proc.returncode}):\n{proc.stdout}\n"
                                 f"{proc.stderr}")
        return proc

    def archives(self) -> list[Path]:
        """Finished archives in the backup folder, sorted."""
        folder = self.env.backup_dir
        return sorted(p for p in folder.glob("allsky-*-backup-*.tar.*")) if folder.exists() else []


def make_site(root: Path, **tree_kwargs: object) -> Site:
    """A small demo tree (fast) with empty specs and backup folders."""
    kwargs: dict = {"nights": 3, "frames_per_night": 3, "frame_size": (160, 120)}
    kwargs.update(tree_kwargs)
    tree = make_demo_tree(root / "allsky", **kwargs)
    specs = root / "specs"
    specs.mkdir()
    env = Environment(home=tree.home, images=None, backup_dir=root / "allskybackups",
                      specs_dir=specs)
    return Site(tree=tree, env=env, root=root)


@pytest.fixture(autouse=True)
def _default_backup_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process commands never touch the real ~/allskybackups (records of outside files).

    The test machine has no Allsky service: it says so (ALLSKY_SERVICE_PAUSE=never, as
    demo.sh does). Tests of the pause drive a stand-in service and take `real_pause`.
    """
    monkeypatch.setenv("ALLSKY_BACKUP_DIR", str(tmp_path / "default-allskybackups"))
    # This device's authentication key: one per test, never the real ~/allsky-tasks-auth.key.
    monkeypatch.setenv("ALLSKY_TASKS_AUTH_KEY", str(tmp_path / "auth.key"))
    monkeypatch.setenv("ALLSKY_SERVICE_PAUSE", "never")


@pytest.fixture
def real_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs pause their (stand-in) service as they say: no machine-wide `never`."""
    monkeypatch.delenv("ALLSKY_SERVICE_PAUSE", raising=False)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """A fresh demo Allsky site in tmp_path; in-process commands see its backup folder as the default."""
    made = make_site(tmp_path)
    monkeypatch.setenv("ALLSKY_BACKUP_DIR", str(made.env.backup_dir))
    return made


def backup(site: Site, name: str, text: str) -> Path:
    """validate -> scan -> pack -> manifest in-process; returns the archive path."""
    from allsky_tasks.archive.manifest import write_sidecar_from
    from allsky_tasks.backup.pack import pack
    from allsky_tasks.backup.scan import read_rows, scan
    from allsky_tasks.spec.load import load_spec

    spec = load_spec(site.spec(name, text), site.env)
    work = site.root / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    rows = work / "scan.jsonl"
    with rows.open("w", encoding="utf-8") as out:
        summary = scan(spec, out)
    spec.destination.mkdir(parents=True, exist_ok=True)
    result = pack(spec, summary, read_rows(rows), work)
    (spec.destination / ".allsky-tasks").mkdir(exist_ok=True)  # a folder of ours, as doit's
    # The sidecar exactly as the manifest task writes it (streamed layout).
    write_sidecar_from(Path(result.archive), Path(result.metadata), {"archive": {
        "name": Path(result.archive).name, "sizeBytes": result.size, "sha256": result.sha256,
        "metadataSha256": result.metadata_sha256}})
    return Path(result.archive)


def last_read(archive: Path) -> dict | None:
    """Our verification record of this very file (None: never read, or changed since)."""
    from allsky_tasks.archive.records import STATE, RecordStore

    return RecordStore(archive.parent / STATE).get(archive)


def gnu_tar_extract(archive: Path, target: Path) -> None:
    """Extract with GNU tar (an independent reader), keeping modes and mtimes."""
    target.mkdir(parents=True, exist_ok=True)
    flag = "--zstd" if archive.name.endswith(".zst") else "-z"
    subprocess.run(["tar", flag, "-xpf", str(archive), "-C", str(target)], check=True)


def tree_state(root: Path, follow_root: bool = True) -> dict[str, tuple]:
    """(kind, mode, mtime, content-or-link) of every path below root, for comparisons."""
    import stat as st_mod

    out: dict[str, tuple] = {}
    base = root.resolve() if follow_root else root
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(base).as_posix()
            info = path.lstat()
            if st_mod.S_ISLNK(info.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif st_mod.S_ISDIR(info.st_mode):
                out[rel] = ("dir", st_mod.S_IMODE(info.st_mode), int(info.st_mtime))
            else:
                out[rel] = ("file", st_mod.S_IMODE(info.st_mode), int(info.st_mtime),
                            path.read_bytes())
    return out


def read_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    """Every member header of a .tar.zst or .tar.gz, in order (keys keep archive order)."""
    from allsky_tasks.archive.io import open_decompressed

    out: dict[str, tarfile.TarInfo] = {}
    with archive.open("rb") as raw, tarfile.open(fileobj=open_decompressed(archive, raw), mode="r|") as tar:
        for info in tar:
            out[info.name] = info
    return out


def archive_metadata(archive: Path) -> dict:
    """metadata.json read from inside the archive."""
    import json

    from allsky_tasks.archive.io import open_decompressed

    with archive.open("rb") as raw, tarfile.open(fileobj=open_decompressed(archive, raw), mode="r|") as tar:
        for info in tar:
            if info.name == "metadata.json":
                return json.load(tar.extractfile(info))
    raise AssertionError(f"{archive}: no metadata.json")


@pytest.fixture
def svc(tmp_path: Path, real_pause: None) -> Iterator[Path]:
    """A folder for stand-in services; every daemon started there is killed afterwards."""
    from .helpers.service_fixture import kill_standins

    folder = tmp_path / "svc"
    folder.mkdir()
    yield folder
    kill_standins(folder)
