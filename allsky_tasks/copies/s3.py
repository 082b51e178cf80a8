"""Copies in S3-compatible object storage (AWS, Backblaze B2, Wasabi, Cloudflare R2, MinIO) through boto3.

Credentials come only from the AWS chain (environment, ~/.aws, the spec's `profile`), never
from the spec. An object appears under its final key only when the store commits it: a single
PUT (up to MULTIPART_THRESHOLD) or a multipart upload completed after every part went up with
its own SHA-256, which the store checks. An interrupted multipart upload is resumed from the
parts the store lists; one that no longer matches the local file is aborted.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, BinaryIO, Iterator, Mapping

from ..errors import CopyError
from .target import Progress, RemoteFile

MULTIPART_THRESHOLD = 16 << 20  # single PUT (full-object SHA-256 at the store) below this
MIN_PART = 8 << 20
MAX_PARTS = 10_000
UPLOAD_THREADS = 4  # parts in flight at once (hides per-request latency; 32 MiB of memory)
STALE_UPLOAD_DAYS = 7  # multipart uploads of ours older than this are given up and aborted


def part_size(size: int) -> int:
    """Part size for an object of `size` bytes: 8 MiB, or larger whole MiB to stay under 10,000 parts."""
    need = -(-size // MAX_PARTS)
    return max(MIN_PART, -(-need // (1 << 20)) * (1 << 20))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class S3Target:
    """An S3 bucket and prefix; settings from the spec, credentials from the AWS chain."""

    def __init__(self, item: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> None:
        cfg = item["s3"] if isinstance(item.get("s3"), Mapping) else item
        self.name: str = str(item.get("name") or "s3")
        self.bucket: str = str(cfg.get("bucket") or "")
        if not self.bucket:
            raise CopyError(f"copy target {self.name}: s3 needs a bucket", hint="add `bucket:` to the target")
        prefix = str(cfg.get("prefix") or "").strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url: str | None = cfg.get("endpoint_url") or None
        self.region: str | None = cfg.get("region") or None
        self.storage_class: str | None = cfg.get("storage_class") or None
        self.profile: str | None = cfg.get("profile") or None
        self._client: Any = None
        self.last_resumed_bytes = 0  # bytes of the last put already at the store (resumed parts)

    # -- plumbing ---------------------------------------------------------------------------

    def describe(self) -> str:
        """`name (s3://bucket/prefix at endpoint)`."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.name} (s3://{self.bucket}/{self.prefix}{where})"

    def _fail(self, what: str, exc: BaseException) -> CopyError:
        """Turn a boto3/botocore exception into a CopyError naming the target and the likely fix."""
        from botocore import exceptions as bx

        code = ""
        if isinstance(exc, bx.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            detail = {"404": f"NoSuchBucket: the bucket {self.bucket!r} does not exist",
                      "403": "AccessDenied: the credentials were refused"}.get(
                code if what.startswith("check") else "", f"{code}: {err.get('Message', '')}".rstrip(": "))
        else:
            detail = str(exc) or type(exc).__name__
        hint = None
        if code in ("NoSuchBucket",) or (code == "404" and what.startswith("check")):
            hint = f"create the bucket {self.bucket!r} or fix `bucket:`"
        elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                      "InvalidToken", "ExpiredToken"):
            hint = ("check the credentials in the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    f"~/.aws/credentials{', profile ' + repr(self.profile) if self.profile else ''}) "
                    "and that they may write this bucket")
        elif isinstance(exc, bx.NoCredentialsError):
            hint = ("set credentials for the AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                    "~/.aws/credentials (a spec never holds them)")
        elif isinstance(exc, bx.ProfileNotFound):
            hint = f"add the profile {self.profile!r} to ~/.aws/config or ~/.aws/credentials"
        elif isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                              bx.ReadTimeoutError, bx.ConnectTimeoutError)):
            hint = "the store is unreachable; the next run resumes the upload"
        return CopyError(f"copy target {self.describe()}: {what} failed: {detail}", hint=hint)

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (boto3 loads only when a spec uses s3)."""
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore import exceptions as bx

            try:
                session = boto3.session.Session(profile_name=self.profile)
                self._client = session.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                    config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                  connect_timeout=10, read_timeout=120,
                                  request_checksum_calculation="when_required",
                                  response_checksum_validation="when_required",
                                  # MinIO, NAS and other self-hosted stores answer on one host
                                  # name: path-style works on every S3-compatible store.
                                  s3={"addressing_style": "path"} if self.endpoint_url else None))
            except (bx.BotoCoreError, ValueError) as exc:
                raise self._fail("connecting", exc) from None
        return self._client

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore import exceptions as bx

        try:
            return fn(**kwargs)
        except (bx.BotoCoreError, bx.ClientError) as exc:
            raise self._fail(what, exc) from None

    def key(self, name: str) -> str:
        """The object key of a file name."""
        if not name or "/" in name or name in (".", ".."):
            raise CopyError(f"copy target {self.describe()}: refusing the object name {name!r}")
        return self.prefix + name

    # -- Target protocol --------------------------------------------------------------------

    def check_ready(self) -> None:
        """The bucket exists and the credentials may use it (HEAD bucket)."""
        self._call("checking the bucket", self.client.head_bucket, Bucket=self.bucket)

    def list_files(self) -> list[RemoteFile]:
        """Objects directly under the prefix (no deeper keys)."""
        out: list[RemoteFile] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("listing", self.client.list_objects_v2, Bucket=self.bucket,
                              Prefix=self.prefix, **token)
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(self.prefix):]
                if rest and "/" not in rest:
                    out.append(RemoteFile(rest, int(obj["Size"])))
            if not page.get("IsTruncated"):
                return out
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def put(self, local: BinaryIO, size: int, name: str, progress: Progress) -> None:
        """Upload `size` bytes from `local` (seekable, at 0) under `name`; resume a matching multipart upload."""
        key = self.key(name)
        extra = {"StorageClass": self.storage_class} if self.storage_class else {}
        self.abort_stale_uploads(keep=key)  # e.g. of an archive pruned before its upload finished
        if size <= MULTIPART_THRESHOLD:
            self._abort_uploads(key)
            data = local.read(size)
            if len(data) != size:
                raise CopyError(f"copy target {self.describe()}: {name} is shorter than {size} bytes")
            # botocore computes the SHA-256 from these bytes and sends it; the store checks and keeps it.
            self._call(f"uploading {name}", self.client.put_object, Bucket=self.bucket, Key=key,
                       Body=io.BytesIO(data), ChecksumAlgorithm="SHA256", **extra)
            self.last_resumed_bytes = 0
            progress(size)
            return
        self._put_multipart(local, size, name, key, extra, progress)

    def _put_multipart(self, local: BinaryIO, size: int, name: str, key: str,
                       extra: dict[str, str], progress: Progress) -> None:
        psize = part_size(size)
        count = -(-size // psize)
        upload_id, done = self._resumable(local, key, psize, size)
        if upload_id is None:
            done = {}
            upload_id = self._call(f"starting the upload of {name}", self.client.create_multipart_upload,
                                   Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256",
                                   **extra)["UploadId"]
        self.last_resumed_bytes = sum(min(psize, size - (n - 1) * psize) for n in done)
        parts: dict[int, dict[str, Any]] = dict(done)
        for number in sorted(done):
            progress(min(psize, size - (number - 1) * psize))
        todo = [n for n in range(1, count + 1) if n not in done]

        def send(number: int) -> tuple[dict[str, Any], int]:
            offset = (number - 1) * psize
            length = min(psize, size - offset)
            data = os.pread(local.fileno(), length, offset)  # positional: safe across threads
            if len(data) != length:
                raise CopyError(f"copy target {self.describe()}: {name} is shorter than {size} bytes")
            # botocore hashes the part as it sends it (SHA-256 in the trailer, one pass, no
            # second hash for signing) and the store checks it before it keeps the part.
            reply = self._call(f"uploading part {number}/{count} of {name}", self.client.upload_part,
                               Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                               Body=io.BytesIO(data), ChecksumAlgorithm="SHA256")
            checksum = reply.get("ChecksumSHA256") or _b64(hashlib.sha256(data).digest())
            return {"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": checksum}, length

        # A few parts in flight overlap hashing, reading and the network; memory stays at
        # UPLOAD_THREADS parts (32 MiB by default). Progress is reported from this thread only.
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="s3-part") as pool:
            flying: set[Future] = set()
            try:
                for number in todo:
                    if len(flying) >= UPLOAD_THREADS:
                        finished, flying = wait(flying, return_when=FIRST_COMPLETED)
                        self._collect(finished, parts, progress)
                    flying.add(pool.submit(send, number))
                self._collect(flying, parts, progress)
                flying = set()
            finally:
                for future in flying:
                    future.cancel()
        ordered = [parts[n] for n in range(1, count + 1)]
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"completing the upload of {name}"
        try:
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": ordered})
        except ClientError as exc:
            # The store refused the parts: that upload cannot be resumed, so give it up and no
            # hidden parts linger. (A lost connection keeps it: the next run completes it.)
            try:
                self._abort(key, upload_id)
            except CopyError:
                pass
            raise self._fail(what, exc) from None
        except BotoCoreError as exc:
            raise self._fail(what, exc) from None

    @staticmethod
    def _collect(futures: Any, parts: dict[int, dict[str, Any]], progress: Progress) -> None:
        """Record finished parts (in part order) and report their bytes; the first failure is raised."""
        for future in sorted(futures, key=lambda f: f.result()[0]["PartNumber"] if not f.exception() else 0):
            part, length = future.result()
            parts[part["PartNumber"]] = part
            progress(length)

    def _uploads(self, key: str) -> Iterator[dict[str, Any]]:
        page = self._call("listing unfinished uploads", self.client.list_multipart_uploads,
                          Bucket=self.bucket, Prefix=key)
        for upload in page.get("Uploads", []):
            if upload["Key"] == key:
                yield upload

    def _abort(self, key: str, upload_id: str) -> None:
        self._call(f"aborting an unfinished upload of {key}", self.client.abort_multipart_upload,
                   Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _abort_uploads(self, key: str) -> None:
        for upload in list(self._uploads(key)):
            self._abort(key, upload["UploadId"])

    def _resumable(self, local: BinaryIO, key: str, psize: int,
                   size: int) -> tuple[str | None, dict[int, dict[str, Any]]]:
        """An unfinished upload of `key` whose stored parts match the local bytes; others are aborted."""
        best: tuple[str | None, dict[int, dict[str, Any]]] = (None, {})
        for upload in list(self._uploads(key)):
            uid = upload["UploadId"]
            parts = self._call("listing uploaded parts", self.client.list_parts, Bucket=self.bucket,
                               Key=key, UploadId=uid).get("Parts", [])
            done = self._matching_parts(local, parts, psize, size)
            if best[0] is None and done is not None:
                best = (uid, done)
            else:
                self._abort(key, uid)  # given up: another layout, other bytes, or a duplicate
        return best

    @staticmethod
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
            sha = _b64(hashlib.sha256(data).digest())
            if part.get("ChecksumSHA256"):
                if part["ChecksumSHA256"] != sha:
                    return None
            elif part.get("ETag", "").strip('"') != hashlib.md5(data, usedforsecurity=False).hexdigest():
                return None
            done[number] = {"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": sha}
        local.seek(0)
        return done

    def remote_sha256(self, name: str) -> str | None:
        """The store's full-object SHA-256 (hex), or None for a composite (multipart) or no checksum."""
        head = self._call(f"reading the checksum of {name}", self.client.head_object,
                          Bucket=self.bucket, Key=self.key(name), ChecksumMode="ENABLED")
        value = head.get("ChecksumSHA256")
        # A multipart object (ETag "...-N") has a composite checksum unless the store says otherwise.
        multipart = "-" in str(head.get("ETag", ""))
        kind = head.get("ChecksumType") or ("COMPOSITE" if multipart else "FULL_OBJECT")
        if not value or "-" in value or kind != "FULL_OBJECT":
            return None
        return base64.b64decode(value).hex()

    def size(self, name: str) -> int:
        """The stored object's size in bytes."""
        head = self._call(f"reading {name}", self.client.head_object, Bucket=self.bucket,
                          Key=self.key(name))
        return int(head["ContentLength"])

    def open_read(self, name: str) -> BinaryIO:
        """Stream the object back."""
        reply = self._call(f"reading {name}", self.client.get_object, Bucket=self.bucket,
                           Key=self.key(name))
        return _Body(reply["Body"], self, name)  # type: ignore[return-value]

    def delete(self, name: str) -> None:
        """Remove an object (and any unfinished upload of it)."""
        key = self.key(name)
        self._abort_uploads(key)
        self._call(f"deleting {name}", self.client.delete_object, Bucket=self.bucket, Key=key)

    def abort_stale_uploads(self, days: int = STALE_UPLOAD_DAYS, keep: str = "") -> list[str]:
        """Give up unfinished uploads under the prefix older than `days` (but `keep`'s); return their keys."""
        import datetime as dt

        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        page = self._call("listing unfinished uploads", self.client.list_multipart_uploads,
                          Bucket=self.bucket, Prefix=self.prefix)
        gone = []
        for upload in page.get("Uploads", []):
            if (upload["Initiated"] < cutoff and upload["Key"] != keep
                    and "/" not in upload["Key"][len(self.prefix):]):
                self._abort(upload["Key"], upload["UploadId"])
                gone.append(upload["Key"])
        return gone


class _Body:
    """A read-only stream over an S3 body whose errors become CopyError naming the target."""

    def __init__(self, body: Any, target: S3Target, name: str) -> None:
        self._body, self._target, self._name = body, target, name

    def read(self, n: int = -1) -> bytes:
        from botocore import exceptions as bx

        try:
            return self._body.read(None if n is None or n < 0 else n)
        except (bx.BotoCoreError, OSError) as exc:
            raise self._target._fail(f"reading {self._name}", exc) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> "_Body":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
