"""S3 multipart uploads: parts sent in parallel with their own SHA-256, resumed from those the store lists."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, BinaryIO, Protocol

from ..errors import CopyError
from .target import Progress

__all__ = ["MAX_PARTS", "MIN_PART", "UPLOAD_THREADS", "MultipartStore", "b64", "part_size", "put_multipart"]

MIN_PART = 8 << 20
MAX_PARTS = 10_000
UPLOAD_THREADS = 4  # parts in flight at once (hides per-request latency; 32 MiB of memory)


class MultipartStore(Protocol):
    """What an upload needs of its bucket (the S3 target is one): named here so this module needs no target."""

    bucket: str
    last_resumed_bytes: int  # set by the upload: bytes the store held already

    @property
    def client(self) -> Any: ...

    def describe(self) -> str: ...

    def call(self, what: str, fn: Any, **kwargs: Any) -> Any: ...

    def fail(self, what: str, exc: BaseException) -> CopyError: ...

    def uploads(self, key: str) -> Iterator[dict[str, Any]]: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...


def part_size(size: int) -> int:
    """Part size for an object of `size` bytes: 8 MiB, or larger whole MiB to stay under 10,000 parts."""
    need = -(-size // MAX_PARTS)
    return max(MIN_PART, -(-need // (1 << 20)) * (1 << 20))


def b64(digest: bytes) -> str:
    """Base64 text of a digest, as S3 checksum headers carry it."""
    return base64.b64encode(digest).decode("ascii")


def put_multipart(target: MultipartStore, local: BinaryIO, size: int, name: str, key: str,
                  extra: dict[str, str], progress: Progress) -> None:
    """Upload `local` as a multipart upload of `key`, resuming an unfinished one whose parts match."""
    psize = part_size(size)
    count = -(-size // psize)
    upload_id, done = _resumable(target, local, key, psize, size)
    if upload_id is None:
        done = {}
        upload_id = target.call(f"starting the upload of {name}", target.client.create_multipart_upload,
                                Bucket=target.bucket, Key=key, ChecksumAlgorithm="SHA256",
                                **extra)["UploadId"]
    target.last_resumed_bytes = sum(min(psize, size - (n - 1) * psize) for n in done)
    parts: dict[int, dict[str, Any]] = dict(done)
    for number in sorted(done):
        progress(min(psize, size - (number - 1) * psize))
    todo = [n for n in range(1, count + 1) if n not in done]

    def send(number: int) -> tuple[dict[str, Any], int]:
        offset = (number - 1) * psize
        length = min(psize, size - offset)
        data = os.pread(local.fileno(), length, offset)  # positional: safe across threads
        if len(data) != length:
            raise CopyError(f"copy target {target.describe()}: {name} is shorter than {size} bytes")
        # botocore hashes the part as it sends it (SHA-256 in the trailer, one pass, no
        # second hash for signing) and the store checks it before it keeps the part.
        reply = target.call(f"uploading part {number}/{count} of {name}", target.client.upload_part,
                            Bucket=target.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                            Body=io.BytesIO(data), ChecksumAlgorithm="SHA256")
        checksum = reply.get("ChecksumSHA256") or b64(hashlib.sha256(data).digest())
        return {"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": checksum}, length

    # A few parts in flight overlap hashing, reading and the network; memory stays at
    # UPLOAD_THREADS parts (32 MiB by default). Progress is reported from this thread only.
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="s3-part") as pool:
        flying: set[Future[tuple[dict[str, Any], int]]] = set()
        try:
            for number in todo:
                if len(flying) >= UPLOAD_THREADS:
                    finished, flying = wait(flying, return_when=FIRST_COMPLETED)
                    _collect(finished, parts, progress)
                flying.add(pool.submit(send, number))
            _collect(flying, parts, progress)
            flying = set()
        finally:
            for future in flying:
                future.cancel()
    ordered = [parts[n] for n in range(1, count + 1)]
    from botocore.exceptions import BotoCoreError, ClientError

    what = f"completing the upload of {name}"
    try:
        target.client.complete_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": ordered})
    except ClientError as exc:
        # The store refused the parts: that upload cannot be resumed, so give it up and no
        # hidden parts linger. (A lost connection keeps it: the next run completes it.)
        with contextlib.suppress(CopyError):
            target.abort_upload(key, upload_id)
        raise target.fail(what, exc) from None
    except BotoCoreError as exc:
        raise target.fail(what, exc) from None

def _collect(futures: Any, parts: dict[int, dict[str, Any]], progress: Progress) -> None:
    """Record finished parts (in part order) and report their bytes; the first failure is raised."""
    for future in sorted(futures, key=lambda f: f.result()[0]["PartNumber"] if not f.exception() else 0):
        part, length = future.result()
        parts[part["PartNumber"]] = part
        progress(length)

def _resumable(target: MultipartStore, local: BinaryIO, key: str, psize: int,
               size: int) -> tuple[str | None, dict[int, dict[str, Any]]]:
    """An unfinished upload of `key` whose stored parts match the local bytes; others are aborted."""
    best: tuple[str | None, dict[int, dict[str, Any]]] = (None, {})
    for upload in list(target.uploads(key)):
        uid = upload["UploadId"]
        parts = target.call("listing uploaded parts", target.client.list_parts, Bucket=target.bucket,
                           Key=key, UploadId=uid).get("Parts", [])
        done = _matching_parts(local, parts, psize, size)
        if best[0] is None and done is not None:
            best = (uid, done)
        else:
            target.abort_upload(key, uid)  # given up: another layout, other bytes, or a duplicate
    return best

def _matching_parts(local: BinaryIO, parts: list[dict[str, Any]], psize: int,
                    size: int) -> dict[int, dict[str, Any]] | None:
    """Stored parts that hold exactly the local bytes at their offsets, or None if any differs."""
    done: dict[int, dict[str, Any]] = {}
    for part in parts:
        number, length = int(part["PartNumber"]), int(part["Size"])
        offset = (number - 1) * psize
        if offset >= size or length != min(psize, size - offset):
            return None
        local.seek(offset)
        data = local.read(length)
        sha = b64(hashlib.sha256(data).digest())
        if part.get("ChecksumSHA256"):
            if part["ChecksumSHA256"] != sha:
                return None
        elif part.get("ETag", "").strip('"') != hashlib.md5(data, usedforsecurity=False).hexdigest():
            return None
        done[number] = {"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": sha}
    local.seek(0)
    return done
