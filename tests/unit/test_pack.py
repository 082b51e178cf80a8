"""Pack: round trips through GNU tar, Allsky's layout, bad files, full disks."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from allsky_tasks.archive.manifest import sidecar_path
from allsky_tasks.archive.verify import verify
from allsky_tasks.backup.pack import archive_name, pack
from allsky_tasks.backup.scan import read_rows, scan
from allsky_tasks.errors import PackError
from allsky_tasks.spec.load import load_spec

from ..conftest import Site, archive_metadata, backup, gnu_tar_extract, make_site, read_members, tree_state

ALL_SECTIONS = ("type: config\nsections: {modules: true, databases: true, cameras: true, "
                "uservariables: true, remote: true, ssl: true, myfiles: true, darks: true}\n")


def _oddities(home: Path) -> None:
    """Things real installs have that naive backups get wrong."""
    extra = home / "config" / "myFiles" / "extra"
    extra.mkdir()
    os.chmod(extra, 0o2775)  # setgid folder, as Allsky's installer makes for www-data
    (extra / "naïve file (1).txt").write_text("odd name\n")
    (extra / "tab\tand spaces .json").write_text("{}\n")
    os.symlink("naïve file (1).txt", extra / "relative-link")
    os.symlink("/etc/hostname", extra / "absolute-link")
    (home / "config" / "myFiles" / "modules" / "__pycache__" / "x.pyc").write_bytes(b"junk")


def _expected(home: Path, roots: list[str]) -> dict[str, tuple]:
    """The home's state restricted to archived roots, without __pycache__."""
    state = tree_state(home)
    keep = {}
    for rel, value in state.items():
        if "__pycache__" in rel.split("/"):
            continue
        if any(rel == r or rel.startswith(r + "/") for r in roots):
            keep[rel] = value
    return keep


def test_round_trip_config_all_sections_is_identical(site: Site, tmp_path: Path) -> None:
    _oddities(site.home)
    archive = backup(site, "all", ALL_SECTIONS)
    out = tmp_path / "out"
    gnu_tar_extract(archive, out)
    meta = json.loads((out / "metadata.json").read_text())
    roots = sorted({row["path"].split("/")[0] if row["path"] == "env.json" else row["path"]
                    for row in meta["allskyTasks"]["manifest"] if row["type"] != "file"
                    or "/" not in row["path"].removeprefix("config/")} | {"env.json"})
    got = {k: v for k, v in tree_state(out).items() if k != "metadata.json"}
    # The live settings.json is stored under its camera-specific name.
    settings = site.home / "config" / "settings.json"
    assert got["config/settings_RPi_HQ.json"][3] == settings.read_bytes()
    assert "config/settings.json" not in got and "config/cc.json" not in got
    assert not any("__pycache__" in k for k in got)
    want = _expected(site.home, [r for r in roots if r not in ("config", "config/overlay")])
    db = "config/myFiles/allsky.db"
    for rel, value in want.items():
        if rel == db or rel.endswith("absolute-link"):
            continue  # the db is compared by content below; the link is left out on purpose
        assert got.get(rel) == value, rel
    assert got["config/myFiles/extra"][1] == 0o2775
    # A link out of the home would make the archive unrestorable: left out, with a warning.
    assert "config/myFiles/extra/absolute-link" not in got
    assert any("absolute-link: symlink to '/etc/hostname' leads outside" in w
               for w in meta["allskyTasks"]["warnings"])
    con = sqlite3.connect(out / db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    src = sqlite3.connect(site.home / db)
    query = "SELECT count(*) FROM allsky_camera"
    assert con.execute(query).fetchone() == src.execute(query).fetchone()
    assert meta["allskyTasks"]["databases"][0]["method"] == "sqlite-backup-api"


def test_round_trip_images_on_symlinked_storage(tmp_path: Path) -> None:
    site = make_site(tmp_path, images_elsewhere=tmp_path / "usb" / "images")
    assert (site.home / "images").is_symlink()
    archive = backup(site, "imgs", "type: images\nfolders: all\nformat: allsky\n")
    out = tmp_path / "out"
    gnu_tar_extract(archive, out)
    got = tree_state(out / "images")
    want = tree_state(tmp_path / "usb" / "images")
    assert got == want and len(got) > 20


def test_selected_folders_only(site: Site, tmp_path: Path) -> None:
    first, *_rest, last = site.tree.nights
    archive = backup(site, "two", f"type: images\nfolders: ['{first}', '{last}']\n")
    tops = {n.split("/")[1] for n in read_members(archive) if n.startswith("images/")}
    assert tops == {first, last}
    meta = json.loads(sidecar_path(archive).read_text())
    assert meta["imageBackupAll"] is False
    assert meta["imageTargets"] == [f"images/{first}", f"images/{last}"]


def test_archive_and_sidecar_are_not_world_readable(site: Site) -> None:
    archive = backup(site, "quick", "type: config\n")
    for path in (archive, sidecar_path(archive)):
        assert path.stat().st_mode & 0o007 == 0, path


def test_archive_name_never_overwrites(tmp_path: Path) -> None:
    from datetime import datetime

    now = datetime(2026, 11, 26, 6, 0, 4)
    first = archive_name(tmp_path, "config", ".tar.zst", now)
    assert first.name == "allsky-config-backup-20261126-060004.tar.zst"
    first.write_bytes(b"x")
    second = archive_name(tmp_path, "config", ".tar.zst", now)
    assert second.name == "allsky-config-backup-20261126-060004-1.tar.zst"
    (tmp_path / "allsky-config-backup-20261126-060004-1.json").write_text("{}")
    assert archive_name(tmp_path, "config", ".tar.zst", now).name.endswith("-2.tar.zst")
    # A .tar.gz of the same second would share the sidecar name: it gets a new stem too.
    (tmp_path / "allsky-images-backup-20261126-060004.tar.zst").write_bytes(b"x")
    gz = archive_name(tmp_path, "images", ".tar.gz", now)
    assert gz.name == "allsky-images-backup-20261126-060004-1.tar.gz"


def _scan_then(site: Site, name: str, text: str, between) -> Path:  # noqa: ANN001
    """Scan, run `between` (the world changing), then pack."""
    spec = load_spec(site.spec(name, text), site.env)
    rows = site.root / f"{name}.jsonl"
    with rows.open("w") as out:
        summary = scan(spec, out)
    between()
    spec.destination.mkdir(parents=True, exist_ok=True)
    work = site.root / f"work-{name}"
    work.mkdir()
    return Path(pack(spec, summary, read_rows(rows), work).archive)


def _no_partial_files(folder: Path) -> None:
    """Nothing half-written may remain visible or hidden."""
    leftovers = [p.name for p in folder.iterdir() if p.name != ".allsky-tasks.lock"]
    assert leftovers == [], leftovers


def test_vanished_file_fails_and_leaves_nothing(site: Site) -> None:
    victim = site.home / "config" / "overlay" / "fonts" / "MyFont.ttf"
    with pytest.raises(PackError, match=r"MyFont\.ttf: vanished"):
        _scan_then(site, "quick", "type: config\n", victim.unlink)
    _no_partial_files(site.env.backup_dir)


def test_vanished_file_warns_when_spec_says_warn(site: Site) -> None:
    victim = site.home / "config" / "overlay" / "fonts" / "MyFont.ttf"
    archive = _scan_then(site, "quick", "type: config\non_file_error: warn\n", victim.unlink)
    meta = archive_metadata(archive)
    assert "config/overlay/fonts/MyFont.ttf" not in read_members(archive)
    assert any("MyFont.ttf: vanished" in w for w in meta["allskyTasks"]["warnings"])


def _as_nobody(fn) -> int:  # noqa: ANN001
    """Run fn in a child process with the rights of user nobody; return its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = fn()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def open_root():  # noqa: ANN201
    """A folder user nobody can reach (pytest's tmp_path sits below a 0700 folder)."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="allsky-nobody-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_unreadable_file_fails_with_its_name_and_no_archive(open_root: Path) -> None:
    site = make_site(open_root)
    subprocess.run(["chown", "-R", "65534:65534", str(open_root)], check=True)
    secret = site.home / "config" / "overlay" / "config" / "fields.json"
    os.chown(secret, 0, 0)
    os.chmod(secret, 0o600)
    report = site.root / "report.txt"
    spec = load_spec(site.spec("quick", "type: config\n"), site.env)  # as root: reads the schema
    site.env.backup_dir.mkdir()
    os.chown(site.env.backup_dir, 65534, 65534)

    def child() -> int:
        try:
            rows = site.root / "rows.jsonl"
            with rows.open("w") as out:
                summary = scan(spec, out)
            work = site.root / "work"
            work.mkdir()
            pack(spec, summary, read_rows(rows), work)
        except PackError as e:
            report.write_text(str(e))
            return 0
        except BaseException as e:  # noqa: BLE001 - tell the parent what went wrong
            report.write_text(f"unexpected {type(e).__name__}: {e}")
            return 2
        return 1

    code = _as_nobody(child)
    assert code == 0, report.read_text() if report.exists() else code
    assert "fields.json: Permission denied, while opening it to pack" in report.read_text()
    _no_partial_files(site.env.backup_dir)


def _start_appender(path: Path, chunk: int) -> subprocess.Popen:
    """A real process appending to `path` as fast as it can; returns once it is writing."""
    size = path.stat().st_size
    proc = subprocess.Popen(["python3", "-c", (
        "import sys\nf=open(sys.argv[1],'ab',buffering=0)\n"
        f"while True: f.write(b'x'*{chunk})\n"), str(path)])
    while path.stat().st_size == size:
        assert proc.poll() is None, "appender died"
    return proc


def test_file_growing_while_packed_is_never_silently_truncated(site: Site) -> None:
    big = site.home / "darks" / "growing.raw"
    big.write_bytes(os.urandom(32 << 20))  # above the whole-read limit: streamed
    writer = _start_appender(big, 512)
    try:
        with pytest.raises(PackError, match=r"growing\.raw: (changed while being packed|kept "
                                             r"changing)"):
            backup(site, "darks", "type: config\nsections: {darks: true}\n")
    finally:
        writer.kill()
        writer.wait()
    _no_partial_files(site.env.backup_dir)


def test_small_file_changing_is_archived_consistently_or_reported(site: Site) -> None:
    busy = site.home / "config" / "myFiles" / "busy.log"
    busy.write_bytes(b"start\n")
    writer = _start_appender(busy, 1)
    try:
        archive = backup(site, "myfiles", "type: config\nsections: {myfiles: true}\n"
                                          "on_file_error: warn\n")
    finally:
        writer.kill()
        writer.wait()
    meta = json.loads(sidecar_path(archive).read_text())
    rows = {r["path"]: r for r in meta["allskyTasks"]["manifest"]}
    row = rows.get("config/myFiles/busy.log")
    if row is None:  # it never held still for a whole read: left out, and said so
        assert any("busy.log: kept changing" in w for w in meta["allskyTasks"]["warnings"])
    else:  # a whole read that held still: a true prefix of the append-only file
        prefix = busy.read_bytes()[: row["size"]]
        assert row["sha256"] == hashlib.sha256(prefix).hexdigest()
    assert verify(archive, meta)["ok"]


@pytest.fixture
def tiny_disk(tmp_path: Path):  # noqa: ANN201
    """A 256 KiB tmpfs mounted for the test (root only)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_fails_cleanly(site: Site, tiny_disk: Path) -> None:
    text = f"type: images\nfolders: all\ndestination: {tiny_disk}\n"
    with pytest.raises(PackError, match="No space left on device") as info:
        backup(site, "imgs", text)
    assert "free some space" in str(info.value)
    assert [p.name for p in tiny_disk.iterdir()] == []


# --- pack never writes an archive its own verify/restore refuses, under any name ---

def _pack_with_extra_rows(site: Site, text: str, extra: list[list[object]]) -> Path:
    """Scan, append rows the walk would never make (a bug, a tampered state folder), pack."""
    spec = load_spec(site.spec("odd", text), site.env)
    rows = site.root / "odd.jsonl"
    with rows.open("w") as out:
        summary = scan(spec, out)
        for row in extra:
            out.write(json.dumps(row) + "\n")
    spec.destination.mkdir(parents=True, exist_ok=True)
    work = site.root / "work-odd"
    work.mkdir()
    return Path(pack(spec, summary, read_rows(rows), work).archive)


def _bad_rows(site: Site) -> list[list[object]]:
    font = str(site.home / "config" / "overlay" / "fonts" / "MyFont.ttf")
    return [["config/evil", "/nowhere", "symlink", 0, 0o777, 0, 0, 0, "../../etc", "core"],
            ["config/alias", "/nowhere", "symlink", 0, 0o777, 0, 0, 0, "overlay", "core"],
            ["config/alias/MyFont.ttf", font, "file", 1, 0o644, 0, 0, 0, "", "core"],
            ["images/x.jpg", font, "file", 1, 0o644, 0, 0, 0, "", "core"]]


def test_pack_leaves_out_members_restore_would_refuse(site: Site) -> None:
    from allsky_tasks.archive.safety import validate_archive

    archive = _pack_with_extra_rows(site, "type: config\non_file_error: warn\n", _bad_rows(site))
    names = {m.path for m in validate_archive(archive).entries}
    assert "config/alias" in names
    assert not {"config/evil", "config/alias/MyFont.ttf", "images/x.jpg"} & names
    warnings = archive_metadata(archive)["allskyTasks"]["warnings"]
    assert any("restore would refuse it" in w and "points outside" in w for w in warnings)
    assert any("restore would refuse it" in w and "below 'config/alias'" in w for w in warnings)


def test_pack_fails_before_the_name_when_the_spec_says_fail(site: Site) -> None:
    with pytest.raises(PackError, match="restore would refuse it"):
        _pack_with_extra_rows(site, "type: config\n", _bad_rows(site))
    _no_partial_files(site.env.backup_dir)


def test_a_link_chain_leading_outside_keeps_no_archive(site: Site) -> None:
    first, second = site.tree.nights[0], site.tree.nights[1]
    rows = [[f"images/{first}/next", "/nowhere", "symlink", 0, 0o777, 0, 0, 0, "hop", first],
            [f"images/{first}/hop", "/nowhere", "symlink", 0, 0o777, 0, 0, 0, f"../{second}", first]]
    with pytest.raises(PackError, match="restore would refuse the archive, so it was not kept"):
        _pack_with_extra_rows(site, f"type: images\nfolders: [{first}]\non_file_error: warn\n", rows)
    _no_partial_files(site.env.backup_dir)
