"""S3Target against moto's standalone S3 server, through boto3 over real HTTP."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from allsky_tasks.copies import s3 as s3mod
from allsky_tasks.copies import s3_multipart
from allsky_tasks.copies.s3 import S3Target
from allsky_tasks.copies.s3_multipart import part_size
from allsky_tasks.copies.target import target_from_spec
from allsky_tasks.errors import CopyError
from tests.helpers.cloud_servers import make_bucket, moto_server

pytest.importorskip("boto3", reason="the Python package boto3 is not installed")


def target(port: int, bucket: str = "allsky", prefix: str = "pi/backups", **more: object) -> S3Target:
    item = {"name": "cloud", "s3": {"bucket": bucket, "prefix": prefix,
                                    "endpoint_url": f"http://127.0.0.1:{port}", **more}}
    return target_from_spec(item, {})  # type: ignore[return-value]


def blob(tmp_path: Path, size: int, name: str = "a.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def upload(t: S3Target, path: Path, name: str | None = None) -> list[int]:
    moved: list[int] = []
    with open(path, "rb") as fh:
        t.put(fh, path.stat().st_size, name or path.name, moved.append)
    return moved


def read_back(t: S3Target, name: str) -> bytes:
    with t.open_read(name) as fh:
        return fh.read()


def test_part_size_grows_to_stay_under_10000_parts() -> None:
    assert part_size(1) == 8 << 20
    assert part_size(200 << 30) * 10_000 >= 200 << 30
    assert part_size(200 << 30) % (1 << 20) == 0


def test_small_put_lists_hashes_reads_back_and_deletes(s3_server, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    make_bucket(s3_server.port, "allsky")
    t = target(s3_server.port)
    t.check_ready()
    src = blob(tmp_path, 300_000)
    assert sum(upload(t, src)) == 300_000
    files = t.list_files()
    assert [(f.name, f.size) for f in files] == [("a.bin", 300_000)]
    # A single PUT carries a full-object SHA-256 that the store reports back.
    assert t.remote_sha256("a.bin") == hashlib.sha256(src.read_bytes()).hexdigest()
    assert read_back(t, "a.bin") == src.read_bytes()
    t.delete("a.bin")
    assert t.list_files() == []


def test_multipart_upload_has_no_full_checksum_so_it_is_read_back(s3_server, tmp_path: Path,  # noqa: F811 - pytest fixture
                                                                   monkeypatch) -> None:
    make_bucket(s3_server.port, "allsky")
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_multipart, "MIN_PART", 5 << 20)
    t = target(s3_server.port, prefix="")
    src = blob(tmp_path, (11 << 20) + 123)
    assert sum(upload(t, src)) == src.stat().st_size
    assert t.remote_sha256("a.bin") is None  # composite: verification streams it back
    assert hashlib.sha256(read_back(t, "a.bin")).digest() == hashlib.sha256(src.read_bytes()).digest()
    assert [f.name for f in t.list_files()] == ["a.bin"]


def test_keys_only_directly_under_the_prefix_are_listed(s3_server, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    import boto3

    make_bucket(s3_server.port, "allsky")
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
    c.put_object(Bucket="allsky", Key="pi/backups/deeper/x", Body=b"x")
    c.put_object(Bucket="allsky", Key="pi/other", Body=b"x")
    t = target(s3_server.port)
    upload(t, blob(tmp_path, 10))
    assert [f.name for f in t.list_files()] == ["a.bin"]
    with pytest.raises(CopyError, match="refusing the object name"):
        t.open_read("../other")


def test_missing_bucket_is_named(s3_server, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    t = target(s3_server.port, bucket="no-such-bucket")
    with pytest.raises(CopyError,
                       match=r"(?s)cloud \(s3://no-such-bucket/pi/backups/.*does not exist.*create the bucket"):
        t.check_ready()
    with pytest.raises(CopyError, match="cloud.*NoSuchBucket"):
        upload(t, blob(tmp_path, 100))


def test_wrong_credentials_are_named(s3_env, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    server = moto_server(auth=True).start()
    try:
        t = target(server.port)
        with pytest.raises(CopyError) as err:
            t.check_ready()
        assert "cloud (s3://allsky/pi/backups/" in str(err.value)
        assert "credentials" in str(err.value)
        with pytest.raises(CopyError, match="(?s)InvalidAccessKeyId.*credentials"):
            upload(t, blob(tmp_path, 100))
    finally:
        server.stop()


def test_profile_from_the_aws_chain_is_used_and_a_missing_one_named(s3_server, tmp_path: Path,  # noqa: F811 - pytest fixture
                                                                   monkeypatch) -> None:
    make_bucket(s3_server.port, "allsky")
    (tmp_path / "aws-credentials").write_text("[backup]\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    target(s3_server.port, profile="backup").check_ready()
    with pytest.raises(CopyError, match="profile 'other'"):
        target(s3_server.port, profile="other").check_ready()
    with pytest.raises(CopyError, match="AWS_ACCESS_KEY_ID"):
        target(s3_server.port).check_ready()  # no credentials anywhere in the chain


def test_server_stopped_mid_upload_then_next_run_copies_it(s3_env, tmp_path: Path, monkeypatch) -> None:  # noqa: F811 - pytest fixture
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_multipart, "MIN_PART", 5 << 20)
    server = moto_server().start()
    src = blob(tmp_path, 16 << 20)
    before = src.read_bytes()
    try:
        make_bucket(server.port, "allsky")
        t = target(server.port)
        moved: list[int] = []

        def stop_after_first_part(n: int) -> None:
            moved.append(n)
            if len(moved) == 1:
                server.stop()

        with open(src, "rb") as fh, pytest.raises(CopyError) as err:
            t.put(fh, src.stat().st_size, "a.bin", stop_after_first_part)
        assert "cloud (s3://allsky/pi/backups/" in str(err.value)
        assert src.read_bytes() == before  # the local file is untouched
        # moto keeps its state in memory, so the restarted store starts empty: the next run
        # copies the whole file again, and nothing half-written is visible.
        server.proc = None
        server.start()
        make_bucket(server.port, "allsky")
        t = target(server.port)
        assert t.list_files() == []
        upload(t, src)
        assert read_back(t, "a.bin") == before
    finally:
        server.stop()


CHILD = textwrap.dedent("""
    import os, sys, time
    from allsky_tasks.copies import s3, s3_multipart
    s3.MULTIPART_THRESHOLD = 1 << 20
    s3_multipart.MIN_PART = 5 << 20
    port, path, marker = sys.argv[1:4]
    t = s3.S3Target({"name": "cloud", "s3": {"bucket": "allsky", "prefix": "p",
                     "endpoint_url": f"http://127.0.0.1:{port}"}}, {})
    seen = []
    def progress(n):
        seen.append(n)
        if len(seen) == 2:
            open(marker, "w").close()
            time.sleep(600)
    with open(path, "rb") as fh:
        t.put(fh, os.path.getsize(path), "a.bin", progress)
""")


def test_killed_upload_resumes_from_the_parts_the_store_lists(s3_server, tmp_path: Path,  # noqa: F811 - pytest fixture
                                                              monkeypatch) -> None:
    import boto3

    make_bucket(s3_server.port, "allsky")
    src = blob(tmp_path, (40 << 20) + 7)  # 9 parts: at most 2 + 4 in flight are up at the kill
    marker = tmp_path / "two-parts-up"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(s3_server.port), str(src), str(marker)],
                             cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
    uploads = c.list_multipart_uploads(Bucket="allsky")["Uploads"]
    assert len(uploads) == 1
    t = target(s3_server.port, prefix="p")
    assert t.list_files() == []  # nothing under the final name
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_multipart, "MIN_PART", 5 << 20)
    upload(t, src)
    # The parts stored before the kill (2 reported, maybe more in flight) were not sent again.
    assert 10 << 20 <= t.last_resumed_bytes < src.stat().st_size
    assert read_back(t, "a.bin") == src.read_bytes()
    assert c.list_multipart_uploads(Bucket="allsky").get("Uploads", []) == []


def test_an_unfinished_upload_of_other_bytes_is_aborted_not_reused(s3_server, tmp_path: Path,  # noqa: F811 - pytest fixture
                                                                   monkeypatch) -> None:
    import boto3

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_multipart, "MIN_PART", 5 << 20)
    make_bucket(s3_server.port, "allsky")
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
    uid = c.create_multipart_upload(Bucket="allsky", Key="p/a.bin")["UploadId"]
    c.upload_part(Bucket="allsky", Key="p/a.bin", UploadId=uid, PartNumber=1, Body=os.urandom(5 << 20))
    t = target(s3_server.port, prefix="p")
    src = blob(tmp_path, 12 << 20)
    upload(t, src)
    assert t.last_resumed_bytes == 0
    assert read_back(t, "a.bin") == src.read_bytes()
    assert c.list_multipart_uploads(Bucket="allsky").get("Uploads", []) == []


def test_tampered_object_is_seen_by_its_hash(s3_server, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    import boto3

    make_bucket(s3_server.port, "allsky")
    t = target(s3_server.port)
    src = blob(tmp_path, 5000)
    upload(t, src)
    data = bytearray(src.read_bytes())
    data[100] ^= 1
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}").put_object(
        Bucket="allsky", Key="pi/backups/a.bin", Body=io.BytesIO(bytes(data)))
    remote = t.remote_sha256("a.bin")
    assert remote != hashlib.sha256(src.read_bytes()).hexdigest()
    assert hashlib.sha256(read_back(t, "a.bin")).hexdigest() != hashlib.sha256(src.read_bytes()).hexdigest()


def test_stale_unfinished_uploads_under_the_prefix_are_given_up(s3_server) -> None:  # noqa: F811 - pytest fixture
    import boto3

    make_bucket(s3_server.port, "allsky")
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
    c.create_multipart_upload(Bucket="allsky", Key="pi/backups/allsky-images-backup-20000101-000000.tar.zst")
    c.create_multipart_upload(Bucket="allsky", Key="pi/backups/old.tar.zst")
    c.create_multipart_upload(Bucket="allsky", Key="elsewhere/keep.tar.zst")
    t = target(s3_server.port)
    assert t.abort_stale_uploads(days=0) == ["pi/backups/allsky-images-backup-20000101-000000.tar.zst"]
    left = sorted(u["Key"] for u in c.list_multipart_uploads(Bucket="allsky").get("Uploads", []))
    assert left == ["elsewhere/keep.tar.zst", "pi/backups/old.tar.zst"]  # not ours: left alone


def test_a_self_hosted_endpoint_by_host_name_uses_path_style(s3_server, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    make_bucket(s3_server.port, "allsky")
    item = {"name": "minio", "s3": {"bucket": "allsky", "endpoint_url": f"http://localhost:{s3_server.port}"}}
    t = target_from_spec(item, {})
    t.check_ready()  # bucket.localhost would not resolve: the bucket goes in the path
    src = blob(tmp_path, 1000)
    upload(t, src)
    assert read_back(t, "a.bin") == src.read_bytes()


def test_an_interrupted_encrypted_copy_resumes_with_the_same_ciphertext(s3_server, tmp_path: Path,  # noqa: F811 - pytest fixture
                                                                        monkeypatch) -> None:
    from allsky_tasks.copies.encrypt import AgeEncryptor, keygen
    from allsky_tasks.copies.stage import copy_archive, hash_file

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_multipart, "MIN_PART", 5 << 20)
    make_bucket(s3_server.port, "allsky")
    backups = tmp_path / "allskybackups"
    backups.mkdir()
    archive = blob(backups, 40 << 20, "allsky-images-backup-20260301-120000.tar.zst")
    sha = hash_file(archive)[0]
    enc = AgeEncryptor([keygen(tmp_path / "id.txt")])
    item = {"name": "cloud", "s3": {"bucket": "allsky", "endpoint_url": f"http://127.0.0.1:{s3_server.port}"},
            "encrypt": {"recipients": enc.recipients}}

    class Gone(Exception):
        pass

    calls: list[int] = []

    def cut_after_two_parts(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise Gone("the run was stopped")

    with pytest.raises(Gone):
        copy_archive(S3Target(item, {}), item, archive, None, sha, "x", cut_after_two_parts, enc)
    class Remembering(S3Target):
        """The real target, remembering each put's resumed bytes (its tag is put after it)."""

        resumed: dict[str, int] = {}

        def put(self, local, size, name, progress) -> None:  # type: ignore[no-untyped-def]
            super().put(local, size, name, progress)
            self.resumed[name] = self.last_resumed_bytes

    t = Remembering(item, {})
    assert t.list_files() == []  # nothing under the final name
    entry = copy_archive(t, item, archive, None, sha, "x", lambda n: None, enc)
    assert entry["ok"] and entry["stored"] == archive.name + ".age"
    assert t.resumed[archive.name + ".age"] >= 10 << 20  # the parts sent before the stop were kept
    assert hashlib.sha256(read_back(t, archive.name + ".age")).hexdigest() == entry["storedSha256"]
    assert not any((backups / ".allsky-tasks").rglob("*.age"))  # the kept ciphertext is gone


def test_prune_at_the_bucket_removes_older_encrypted_copies_and_keeps_foreign_objects(
        s3_server, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    import boto3

    from allsky_tasks.copies.encrypt import AgeEncryptor, keygen
    from allsky_tasks.copies.prune import prune_target
    from allsky_tasks.copies.stage import copy_archive, hash_file

    make_bucket(s3_server.port, "allsky")
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
    c.put_object(Bucket="allsky", Key="pi/backups/notes.txt", Body=b"the operator's own file")
    backups = tmp_path / "allskybackups"
    backups.mkdir()
    enc = AgeEncryptor([keygen(tmp_path / "id.txt")])
    item = {"name": "cloud", "s3": {"bucket": "allsky", "prefix": "pi/backups",
                                    "endpoint_url": f"http://127.0.0.1:{s3_server.port}"},
            "encrypt": {"recipients": enc.recipients}}
    for day in ("01", "02", "03"):
        archive = blob(backups, 5000, f"allsky-config-backup-202603{day}-120000.tar.zst")
        copy_archive(S3Target(item, {}), item, archive, None, hash_file(archive)[0], "cfg", lambda n: None, enc)
    t = S3Target(item, {})
    assert prune_target(t, backups, "cfg", 2) == ["allsky-config-backup-20260301-120000.tar.zst"]
    assert sorted(f.name for f in t.list_files()) == [  # each kept copy with its tag
        "allsky-config-backup-20260302-120000.tar.zst.age", "allsky-config-backup-20260302-120000.tar.zst.age.auth",
        "allsky-config-backup-20260303-120000.tar.zst.age", "allsky-config-backup-20260303-120000.tar.zst.age.auth",
        "notes.txt"]


def test_storage_class_from_the_spec_is_applied(s3_server, tmp_path: Path, monkeypatch) -> None:  # noqa: F811 - pytest fixture
    import boto3

    make_bucket(s3_server.port, "allsky")
    c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_server.port}")
    t = target(s3_server.port, prefix="", storage_class="STANDARD_IA")
    upload(t, blob(tmp_path, 1000, "small"))
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 1 << 20)
    monkeypatch.setattr(s3_multipart, "MIN_PART", 5 << 20)
    upload(t, blob(tmp_path, 6 << 20, "large"))
    for key in ("small", "large"):
        assert c.head_object(Bucket="allsky", Key=key).get("StorageClass") == "STANDARD_IA", key


def test_without_boto3_an_s3_copy_says_the_line_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from allsky_tasks.errors import CopyError

    monkeypatch.setitem(sys.modules, "boto3", None)  # as in a venv made without the cloud extra
    t = target(9, "allsky")
    with pytest.raises(CopyError, match="S3 copies need boto3") as info:
        t.client  # noqa: B018 - the client is made on first use
    assert "scripts/bootstrap.sh cloud" in str(info.value)
