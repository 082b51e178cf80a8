"""Copies to a mounted disk: a real tmpfs stands in for the USB disk, a plain folder for none."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from allsky_tasks.copies import records
from allsky_tasks.copies.mounts import PREFIXES_ENV
from tests.helpers.disks import tmpfs

from ..conftest import Site, last_read

SPEC = """description: Config with a USB copy
type: config
service: {{pause: never}}
retention: {{keep_last: 5}}
copies:
  - name: usb
    path: {path}
    required: {required}
{extra}"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _doit(site: Site, *args: str):
    import subprocess
    import sys

    from allsky_tasks.environment import PROJECT_DIR

    env = site.environ()
    env[PREFIXES_ENV] = str(site.root / "media")
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"),
                           *args], cwd=site.root, env=env, text=True, capture_output=True,
                          timeout=300)


def test_copy_to_mounted_disk_is_verified_and_second_run_moves_nothing(site: Site) -> None:
    with tmpfs(site.root / "media" / "usb") as usb:
        folder = usb / "allsky-copies"
        site.spec("cfg", SPEC.format(path=folder, required="true", extra=""))
        events = site.root / "events.jsonl"
        first = _cli(site, "run", "--events", str(events), "backup:cfg")
        assert first.returncode == 0, first.stdout + first.stderr
        [archive] = site.archives()
        assert "copy at usb: verified" in first.stdout  # the backup summary says where
        copy_events = [e for e in map(json.loads, events.read_text().splitlines())
                       if e["stage"] == "copy"]
        assert copy_events[0]["event"] == "start"
        assert copy_events[0]["total"] == archive.stat().st_size
        moved = [e for e in copy_events if e["event"] == "progress"]
        assert moved and moved[-1]["bytes"] == archive.stat().st_size and "rate" in moved[-1]
        assert moved[-1]["current"] == f"usb: {archive.name}"
        assert copy_events[-1]["event"] == "end"
        copy = folder / archive.name
        assert copy.read_bytes() == archive.read_bytes()
        assert (folder / archive.name.replace(".tar.zst", ".json")).exists()
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
        rec = records.load(site.env.backup_dir, "cfg", "usb")["copies"][archive.name]
        assert rec["ok"] is True and rec["sha256"] == _sha(archive)
        assert rec["storedSize"] == archive.stat().st_size and rec["method"] == "read back"
        second = _doit(site, "backup:cfg")
        assert second.returncode == 0
        assert "-- copy:cfg" in second.stdout, second.stdout
        # The copy vanished at the target: the cheap stat check notices, the copy moves again.
        copy.unlink()
        third = _doit(site, "backup:cfg")
        assert ".  copy:cfg" in third.stdout and copy.read_bytes() == archive.read_bytes()


def _cli(site: Site, *args: str):
    import subprocess
    import sys

    env = site.environ()
    env[PREFIXES_ENV] = str(site.root / "media")
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=env, text=True, capture_output=True, timeout=300)


def test_unmounted_target_fails_required_copy_and_keeps_local_archive(site: Site) -> None:
    folder = site.root / "media" / "usb" / "allsky-copies"  # the disk is not plugged in
    (site.root / "media" / "usb").mkdir(parents=True)
    site.spec("cfg", SPEC.format(path=folder, required="true", extra=""))
    events = site.root / "events.jsonl"
    run = _cli(site, "run", "--events", str(events), "backup:cfg")
    assert run.returncode == 22, run.stdout + run.stderr
    assert "copy to usb failed" in run.stdout + run.stderr
    errors = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(e["stage"] == "copy" and e["event"] == "error" for e in errors)
    assert "CopyError" in run.stdout + run.stderr and "usb" in run.stdout + run.stderr
    assert "not on a mounted disk" in run.stdout + run.stderr
    assert not folder.exists()  # nothing written into the empty mount point
    [archive] = site.archives()
    assert last_read(archive)["ok"] is True  # the local archive stays, verified


def test_optional_copy_failure_is_a_warning(site: Site) -> None:
    folder = site.root / "media" / "usb" / "allsky-copies"
    site.spec("cfg", SPEC.format(path=folder, required="false", extra=""))
    run = _doit(site, "backup:cfg")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "copy to usb failed" in run.stdout + run.stderr
    assert "copy at usb: MISSING (optional)" in run.stdout
    assert len(site.archives()) == 1


def test_unmounted_destination_is_refused_before_anything(site: Site, tmp_path: Path) -> None:
    dest = site.root / "media" / "usb" / "allskybackups"
    (site.root / "media" / "usb").mkdir(parents=True)
    site.spec("cfg", f"type: config\ndestination: {dest}\nservice: {{pause: always}}\n")
    assert _cli(site, "run", "backup:cfg").returncode == 24
    run = _doit(site, "backup:cfg")
    assert run.returncode != 0
    assert "DestinationError" in run.stdout + run.stderr and "not on a mounted disk" in run.stdout
    assert not dest.exists()
    assert "  stopped " not in run.stdout and "ServiceStopError" not in run.stdout


def test_full_disk_leaves_nothing_and_names_the_target(site: Site) -> None:
    (site.home / "config" / "big.bin").write_bytes(os.urandom(1_500_000))
    with tmpfs(site.root / "media" / "usb", "1m") as usb:
        site.spec("cfg", SPEC.format(path=usb, required="true",
                                     extra='include: ["config/big.bin"]\n'))
        run = _doit(site, "backup:cfg")
        assert run.returncode != 0
        out = run.stdout + run.stderr
        assert "CopyError" in out and "usb" in out and "No space left" in out, out
        assert list(usb.iterdir()) == []  # no partial file under any name
        [archive] = site.archives()
        assert archive.stat().st_size > 1_000_000


def test_verify_target_catches_a_flipped_byte(site: Site) -> None:
    from allsky_tasks.copies.stage import make_target, verify_copy

    with tmpfs(site.root / "media" / "usb") as usb:
        site.spec("cfg", SPEC.format(path=usb, required="true", extra=""))
        assert _doit(site, "backup:cfg").returncode == 0
        [archive] = site.archives()
        item = {"name": "usb", "path": str(usb), "required": True}
        target = make_target(item, site.home, "cfg", site.env.state_dir)
        assert verify_copy(target, site.env.backup_dir, archive.name)["ok"] is True
        copy = usb / archive.name
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0x01
        copy.write_bytes(bytes(data))
        entry = verify_copy(target, site.env.backup_dir, archive.name)
        assert entry["ok"] is False and "SHA-256" in entry["problem"]
        assert archive.read_bytes() != bytes(data)


def test_noop_rerun_with_copies_loads_no_copy_code(site: Site) -> None:
    import subprocess
    import sys

    from .test_noop import HEAVY

    folder = site.root / "copies"
    site.spec("cfg", SPEC.format(path=folder, required="true", extra="")
              .replace("required: true", "required: true\n    must_be_mounted: false"))
    assert _doit(site, "backup:cfg").returncode == 0
    heavy = HEAVY + ("allsky_tasks.copies.stage", "allsky_tasks.copies.path",
                     "allsky_tasks.copies.ssh", "allsky_tasks.copies.ssh_session", "allsky_tasks.copies.run")
    probe = ("import sys\nfrom allsky_tasks.cli import main\n"
             "code = main(['run', '--quiet', 'backup:cfg'])\n"
             f"print(code, *sorted(m for m in {heavy!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=site.root, env=site.environ(),
                          text=True, capture_output=True, timeout=120)
    assert proc.stdout.split() == ["0"], proc.stdout + proc.stderr


def test_prune_at_the_target_after_a_copy_keeps_newest_and_pinned(site: Site) -> None:
    import time

    folder = site.root / "copies"
    site.spec("cfg", SPEC.format(path=folder, required="true", extra="")
              .replace("required: true", "required: true\n    must_be_mounted: false\n"
                                         "    keep_last: 1"))
    names = []
    for i in range(3):
        (site.home / "config" / "uservariables.sh").write_text(f"# run {i}\n")
        (site.home / "env.json").write_text(f'{{"run": {i}}}')
        run = _doit(site, "backup:cfg")
        assert run.returncode == 0, run.stdout + run.stderr
        names.append(sorted(set(p.name for p in site.archives()) - set(names))[0])
        if i == 0:
            assert _cli(site, "pin", names[0]).returncode == 0
        time.sleep(1.1)  # archive names carry the second
    held = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tar.zst"))
    assert held == sorted([names[0], names[2]])  # pinned and newest; the middle one pruned
    tags = sorted(p.name for p in folder.iterdir() if p.name.endswith(".auth"))
    assert tags == [f"{n}.auth" for n in held]  # the pruned copy's tag went with it
    assert set(records.load(site.env.backup_dir, "cfg", "usb")["copies"]) == {names[0], names[2]}
    assert len(site.archives()) == 3  # the local archives are not the target's business


def test_two_specs_with_a_target_named_usb_keep_their_own_records(site: Site) -> None:
    """The docs name every disk `usb`: two specs doing so never mix their records, and a
    no-op run of each moves and reads nothing at either target."""
    folders = {"cfg": site.root / "copies-a", "cfg2": site.root / "copies-b"}
    for name, folder in folders.items():
        site.spec(name, SPEC.format(path=folder, required="true", extra="")
                  .replace("required: true", "required: true\n    must_be_mounted: false"))
    first = _doit(site, "backup:cfg", "backup:cfg2")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _doit(site, "backup:cfg", "backup:cfg2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "-- copy:cfg\n" in second.stdout and "-- copy:cfg2\n" in second.stdout, second.stdout
    for name, folder in folders.items():
        held = {p.name for p in folder.iterdir() if p.name.endswith(".tar.zst")}
        record = records.load(site.env.backup_dir, name, "usb")
        assert set(record["copies"]) == held and len(held) == 1
        assert record["config"]["path"] == str(folder)
    assert sorted(p.name for p in records.records_dir(site.env.backup_dir).glob("*.json")) == [
        "cfg.usb.json", "cfg2.usb.json"]
