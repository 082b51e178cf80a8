"""doit re-reads archives: when they changed on disk, and on the spec's verify.every schedule."""

from __future__ import annotations

import json
import os
from pathlib import Path

from allsky_tasks.archive.records import STATE, RecordStore, identity

from ..conftest import Site, last_read

SPEC = "type: config\nsections: {databases: true}\nverify: {every: 7d, max_duration: 10m}\n"


def _flip(path: Path, keep_mtime: bool = False) -> None:
    """Flip one byte in place (same file, same size), as a bad card or stick would."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(st.st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x08]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_byte_flipped_in_place_is_caught_by_the_next_verify(site: Site) -> None:
    site.spec("cfg", SPEC)
    site.doit("backup:cfg", check=True)
    (archive,) = site.archives()
    assert last_read(archive)["ok"] is True
    again = site.doit("verify:cfg", check=True)
    assert "-- verify:cfg" in again.stdout  # nothing changed, nothing due: not re-read
    _flip(archive, keep_mtime=True)  # even with the mtime set back: ctime moved
    run = site.doit("verify:cfg")
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "[VerifyError]" in out and archive.name in out
    assert f"of the file's {archive.stat().st_size} bytes" in out
    assert last_read(archive)["ok"] is False
    still = site.doit("verify:cfg")  # and on every run after, until it is dealt with
    assert still.returncode != 0 and "has not changed since" in still.stdout + still.stderr


def test_bit_rot_is_caught_by_the_nightly_run_once_every_has_passed(site: Site) -> None:
    site.spec("cfg", SPEC)
    site.doit("backup:cfg", check=True)
    first = site.archives()[0]
    (site.home / "env.json").write_text('{"changed": 1}\n')  # a second archive of the spec
    site.doit("backup:cfg", check=True)
    assert len(site.archives()) == 2
    older, newer = first, next(p for p in site.archives() if p != first)
    store = RecordStore(first.parent / STATE)
    _flip(older)
    # Bit rot changes no stat field: make the record speak for the damaged file's identity.
    records = store.load()
    store.put(older, {**records[older.name], "identity": identity(older.stat())})
    quiet = site.doit()
    assert quiet.returncode == 0 and "-- verify:cfg" in quiet.stdout
    for path in (older, newer):  # 8 days later: both are due, the whole history is re-read
        rec = store.load()[path.name]
        store.put(path, {**rec, "epoch": rec["epoch"] - 8 * 86400})
    nightly = site.doit()
    out = nightly.stdout + nightly.stderr
    assert nightly.returncode != 0 and older.name in out and "[VerifyError]" in out
    assert last_read(older)["ok"] is False and last_read(newer)["ok"] is True
    assert json.loads((site.env.state_dir / "specs" / "cfg" / "verify.json").read_text()
                      )["failed"][0]["archive"] == str(older)


def test_strangers_in_the_destination_are_read_once_and_never_blamed_on_the_spec(
        site: Site) -> None:
    from allsky_tasks.archive.manifest import sidecar_path
    from allsky_tasks.inventory.listing import load_record

    from ..unit.test_scrub import HOSTILE, _hostile

    site.spec("cfg", SPEC)
    site.doit("backup:cfg", check=True)
    (ours,) = site.archives()
    dest = ours.parent
    allsky_side = json.dumps({"backupFile": ours.name, "backupType": "config"}) + "\n"
    sidecar_path(ours).write_text(allsky_side)  # as after Allsky's own Upload
    hostile = _hostile(dest, "20260101-000003", HOSTILE["20260101-000003"])
    sidecar_path(hostile).write_text(json.dumps({"backupType": "config"}))
    (dest / STATE / "verify.json").unlink()  # nothing read yet: content must decide
    (site.home / "env.json").write_text('{"changed": 2}\n')
    run = site.doit("backup:cfg")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert hostile.name in out and "/etc/shadow" in out  # named as a warning
    assert last_read(hostile)["ok"] is False and last_read(hostile)["spec"] is None
    record = load_record(ours)  # recognised as ours by its content, whatever the sidecar says
    assert (record.kind, record.spec, record.verified) == ("ours", "cfg", True)
    assert sidecar_path(ours).read_text() == allsky_side
