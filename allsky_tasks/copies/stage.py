"""The copy stage: one archive and its sidecar to one target, verified there, recorded.

Order at the target: the archive under a hidden name, made durable, read back (or hashed by
the server) and compared with the recorded size and SHA-256, renamed; then the sidecar the
same way. A copy that does not match is deleted and the run says so; the local archive is
never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..archive import authkey
from ..archive.authkey import AuthKey
from ..environment import STATE_DIRNAME
from ..errors import CopyError
from . import records
from .auth import tag_name
from .tagging import put_tag
from .target import TEMP_NAME, Encryptor, Progress, Target, target_from_spec
from .transfer import Payload, close_target, hash_file, hash_stream, target_hash, transfer

__all__ = ["Payload", "copy_archive", "hash_file", "hash_stream", "make_target", "transfer", "verify_copy"]


def make_target(item: Mapping[str, Any], home: Path, spec: str, state_dir: Path) -> Target:
    """The Target object for one copies item."""
    return target_from_spec(item, {"home": home, "spec": spec, "state_dir": state_dir})


def clean_stale(target: Target, present: list[str], keep: set[str]) -> list[str]:
    """Remove the leftovers of killed copies: our temp names for files this run will not write.

    Only names of our own pattern, never anything else; a temp of a file in `keep` (stored
    names this run copies there) stays, to be resumed. A target with its own kind of
    temporaries (S3's unfinished multipart uploads) has `clean_stale(keep)` itself.
    """
    own = getattr(target, "clean_stale", None)
    if own is not None:
        return list(own(keep))
    gone = []
    for name in present:
        match = TEMP_NAME.match(name)
        if match and match.group(1) not in keep:
            target.delete(name)
            gone.append(name)
    return gone


@contextmanager
def encrypted(source: Path, encryptor: Encryptor | None, work: Path,
              known: tuple[str, int] | None = None) -> Iterator[Payload]:
    """The payload for a local file: itself, or (with copies/encrypt.py) its ciphertext.

    With an Encryptor the ciphertext is written to a private temp file in the
    state folder first, hashed as it is written, and that file is what is sent, verified at
    the target (its SHA-256 and size) and recorded as stored*. The temp file is removed after.
    """
    if encryptor is None:
        # The archive's SHA-256 is known from verify: no extra local read; the target's hash
        # of the copy is compared with it, which also catches a local change since verify.
        sha, size = known if known is not None else hash_file(source)
        yield Payload(source, source.name, size, sha)
        return
    # The ciphertext (copies/encrypt.py) is hashed as it is written, and kept after a
    # failed copy so the next run sends the same bytes (an S3/SSH upload resumes); removed after.
    from .encrypt import sealed

    with sealed(source, encryptor, work) as (path, size, sha):
        yield Payload(path, source.name + encryptor.suffix, size, sha)


def copy_archive(target: Target, item: Mapping[str, Any], archive: Path, sidecar: Path | None,
                 sha256: str, spec: str, progress: Callable[[int], None],
                 encryptor: Encryptor | None = None, key: AuthKey | None = None,
                 keep: set[str] | None = None, cleaned: list[str] | None = None) -> dict[str, Any]:
    """Copy one verified archive (then its sidecar) to a target unless it is there; record it.

    The record is saved as soon as the archive verified at the target, so a failure with its
    authentication tag (copies/auth.py, put right after) or the sidecar does not send the
    archive again next time (and never mistakes it for a stranger's); until its tag is there,
    a restore refuses the copy. `key`: this device's authentication key (made on first use).
    With `keep` (the stored names this run copies to the target), stale temporaries of ours
    are removed first (see clean_stale) and their names added to `cleaned`.
    """
    key = key if key is not None else authkey.ensure()[0]
    backup_dir = archive.parent
    record = records.load(backup_dir, spec, target.name)
    if record.get("config") != item:
        record = {"spec": spec, "target": target.name, "copies": record["copies"]}
    record["config"], record["where"] = dict(item), target.describe()
    facts = records.local_facts(archive)
    if facts is None:
        raise CopyError(f"copy target {target.describe()}: the local archive {archive} is gone")
    work = backup_dir / STATE_DIRNAME / records.FOLDER / "work"
    stored = archive.name + (encryptor.suffix if encryptor is not None else "")
    started = time.monotonic()
    try:
        target.check_ready()
        present = {f.name: f.size for f in target.list_files()}
        if keep is not None:
            gone = clean_stale(target, list(present), keep)
            for name in gone:
                present.pop(name, None)
            if cleaned is not None:
                cleaned.extend(gone)
        entry = dict(record["copies"].get(archive.name) or {})
        if (entry.get("archiveVerifiedAt") and entry.get("sha256") == sha256
                and entry.get("stored") == stored
                and present.get(stored) == entry.get("storedSize")):
            entry["method"] = "already there"  # checked when it landed; not re-hashed
        elif stored in present and not entry:
            raise CopyError(f"copy target {target.describe()}: {stored} already exists there "
                            "and was not written by this tool; left alone",
                            hint="move it away at the target if it is not needed")
        else:
            with encrypted(archive, encryptor, work, (sha256, facts[0])) as payload:
                method = transfer(target, payload, progress)
            entry = {"spec": spec, "archive": archive.name, "sha256": sha256,
                     "stored": payload.stored, "storedSize": payload.size,
                     "storedSha256": payload.sha256, "encrypted": encryptor is not None,
                     "method": method, "copiedAt": records.now(),
                     "archiveVerifiedAt": records.now(), "ok": sidecar is None}
        entry.update(size=facts[0], localMtimeNs=facts[1], verifiedAt=entry["archiveVerifiedAt"])
        record["copies"][archive.name] = entry
        records.save(backup_dir, record)
        if entry.get("authKey") != key.fingerprint or tag_name(stored) not in present:
            # Over the size and SHA-256 verified there; a failure here is made good by the
            # next run ("already there" tags it), the copy itself is recorded above.
            entry["auth"] = put_tag(target, work, key, stored, entry["storedSize"],
                                    entry["storedSha256"])
            entry["authKey"] = key.fingerprint
            records.save(backup_dir, record)
        if sidecar is not None and sidecar.exists():
            with encrypted(sidecar, encryptor, work) as side_payload:
                transfer(target, side_payload, lambda n: None)
                entry.update(sidecar=side_payload.stored, sidecarSize=side_payload.size,
                             sidecarSha256=side_payload.sha256)
    finally:
        close_target(target)
    entry.update(ok=True, problem=None, seconds=round(time.monotonic() - started, 3))
    records.save(backup_dir, record)
    return entry


def verify_copy(target: Target, backup_dir: Path, archive_name: str,
                progress: Progress | None = None, item: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """Re-read one recorded copy at the target; record and return the result.

    `item`: the target's `copies:` configuration, so the record of that very target is used.
    """
    found = records.find_entry(backup_dir, target.name, archive_name, item)
    if found is None:  # a new card: no record, but the copied sidecar knows the SHA-256
        return _verify_by_sidecar(target, archive_name, progress)
    record, entry = found
    try:
        target.check_ready()
        sizes = {f.name: f.size for f in target.list_files()}
        stored = entry["stored"]
        if stored not in sizes:
            problem: str | None = f"{stored} is missing at the target"
            method = "listing"
        elif sizes[stored] != entry["storedSize"]:
            problem = f"{stored} is {sizes[stored]} bytes, recorded {entry['storedSize']}"
            method = "listing"
        else:
            sha, method = target_hash(target, stored, progress)
            problem = None if sha == entry["storedSha256"] else (
                f"{stored} has SHA-256 {sha[:16]}..., recorded {entry['storedSha256'][:16]}...")
    finally:
        close_target(target)
    entry.update(ok=problem is None, verifiedAt=records.now(), method=method,
                 problem=problem)
    records.save(backup_dir, record)
    return entry


def sidecar_sha256(target: Target, stored: str) -> str | None:
    """The archive SHA-256 in the sidecar copied beside `stored`, if there is one."""
    import json

    side = stored.split(".tar.")[0] + ".json"
    if stored.endswith(".age") or side not in {f.name for f in target.list_files()}:
        return None
    with target.open_read(side) as stream:
        raw = stream.read(64 << 20)
    try:
        return str(json.loads(raw)["allskyTasks"]["archive"]["sha256"])
    except (ValueError, KeyError, TypeError):
        return None


def _verify_by_sidecar(target: Target, archive_name: str, progress: Progress | None
                       ) -> dict[str, Any]:
    """Verify an unrecorded copy against its copied sidecar (nothing is recorded)."""
    try:
        target.check_ready()
        if archive_name not in {f.name for f in target.list_files()}:
            raise CopyError(f"copy target {target.describe()} holds no {archive_name}",
                            hint=f"see `allsky-tasks list --target {target.name}`")
        expected = sidecar_sha256(target, archive_name)
        if expected is None:
            raise CopyError(f"copy target {target.describe()}: no record and no sidecar to "
                            f"check {archive_name} against",
                            hint=f"`allsky-tasks restore {archive_name} --from {target.name} "
                                 "--dry-run` checks it completely")
        sha, method = target_hash(target, archive_name, progress)
    finally:
        close_target(target)
    problem = None if sha == expected else (
        f"{archive_name} has SHA-256 {sha[:16]}..., its sidecar says {expected[:16]}...")
    return {"archive": archive_name, "stored": archive_name, "storedSha256": sha,
            "ok": problem is None, "problem": problem, "method": f"{method} (vs the sidecar)"}
