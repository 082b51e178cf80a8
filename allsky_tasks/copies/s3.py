"""Copies in S3-compatible object storage (AWS, Backblaze B2, Wasabi, Cloudflare R2, MinIO) through boto3.

Credentials come only from the AWS chain (environment, ~/.aws, the spec's `profile`), never
from the spec. An object appears under its final key only when the store commits it: a single
PUT (up to MULTIPART_THRESHOLD) or a multipart upload completed after every part went up with
its own SHA-256, which the store checks. An interrupted multipart upload is resumed from the
parts the store lists; one that no longer matches the local file is aborted.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import CopyError
from .s3_multipart import put_multipart
from .target import OWN_NAME, Progress, RemoteFile, listed_name_ok

if TYPE_CHECKING:
    from botocore.response import StreamingBody

MULTIPART_THRESHOLD = 16 << 20  # single PUT (full-object SHA-256 at the store) below this
STALE_UPLOAD_DAYS = 7  # multipart uploads of ours older than this are given up and aborted


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

    def fail(self, what: str, exc: BaseException) -> CopyError:
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
            try:
                import boto3
            except ImportError:
                from ..environment import install_line

                raise CopyError(f"copy target {self.describe()}: S3 copies need boto3, which is "
                                "not installed", hint=f"install it: {install_line('cloud')}") from None
            from botocore import exceptions as bx
            from botocore.config import Config

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
                raise self.fail("connecting", exc) from None
        return self._client

    def call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """Call a client method; a botocore failure becomes a CopyError."""
        from botocore import exceptions as bx

        try:
            return fn(**kwargs)
        except (bx.BotoCoreError, bx.ClientError) as exc:
            raise self.fail(what, exc) from None

    def key(self, name: str) -> str:
        """The object key of a file name."""
        if not name or "/" in name or name in (".", ".."):
            raise CopyError(f"copy target {self.describe()}: refusing the object name {name!r}")
        return self.prefix + name

    # -- Target protocol --------------------------------------------------------------------

    def check_ready(self) -> None:
        """The bucket exists and the credentials may use it (HEAD bucket)."""
        self.call("checking the bucket", self.client.head_bucket, Bucket=self.bucket)

    def list_files(self) -> list[RemoteFile]:
        """Objects directly under the prefix (no deeper keys)."""
        out: list[RemoteFile] = []
        token: dict[str, str] = {}
        while True:
            page = self.call("listing", self.client.list_objects_v2, Bucket=self.bucket,
                              Prefix=self.prefix, **token)
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(self.prefix):]
                if listed_name_ok(rest):
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
            self.call(f"uploading {name}", self.client.put_object, Bucket=self.bucket, Key=key,
                       Body=io.BytesIO(data), ChecksumAlgorithm="SHA256", **extra)
            self.last_resumed_bytes = 0
            progress(size)
            return
        put_multipart(self, local, size, name, key, extra, progress)

    def uploads(self, key: str) -> Iterator[dict[str, Any]]:
        """The unfinished multipart uploads of exactly `key`."""
        page = self.call("listing unfinished uploads", self.client.list_multipart_uploads,
                          Bucket=self.bucket, Prefix=key)
        for upload in page.get("Uploads", []):
            if upload["Key"] == key:
                yield upload

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Give up one unfinished upload (its parts are dropped by the store)."""
        self.call(f"aborting an unfinished upload of {key}", self.client.abort_multipart_upload,
                   Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _abort_uploads(self, key: str) -> None:
        for upload in list(self.uploads(key)):
            self.abort_upload(key, upload["UploadId"])

    def remote_sha256(self, name: str) -> str | None:
        """The store's full-object SHA-256 (hex), or None for a composite (multipart) or no checksum."""
        head = self.call(f"reading the checksum of {name}", self.client.head_object,
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
        head = self.call(f"reading {name}", self.client.head_object, Bucket=self.bucket,
                          Key=self.key(name))
        return int(head["ContentLength"])

    def open_read(self, name: str) -> BinaryIO:
        """Stream the object back."""
        reply = self.call(f"reading {name}", self.client.get_object, Bucket=self.bucket,
                           Key=self.key(name))
        return _Body(reply["Body"], self, name)  # type: ignore[return-value]  # read-only: what readers use of a BinaryIO

    def delete(self, name: str) -> None:
        """Remove an object (and any unfinished upload of it)."""
        key = self.key(name)
        self._abort_uploads(key)
        self.call(f"deleting {name}", self.client.delete_object, Bucket=self.bucket, Key=key)

    def clean_stale(self, keep: set[str]) -> list[str]:
        """Abort our unfinished multipart uploads (a killed copy's parts) but those of `keep`."""
        own = re.compile(rf"^{OWN_NAME}$")
        page = self.call("listing unfinished uploads", self.client.list_multipart_uploads,
                          Bucket=self.bucket, Prefix=self.prefix)
        gone = []
        for upload in page.get("Uploads", []):
            name = upload["Key"][len(self.prefix):]
            if own.match(name) and name not in keep:
                self.abort_upload(upload["Key"], upload["UploadId"])
                gone.append(f"{name} (unfinished upload)")
        return gone

    def abort_stale_uploads(self, days: int = STALE_UPLOAD_DAYS, keep: str = "") -> list[str]:
        """Give up our unfinished uploads under the prefix older than `days` (but `keep`'s); return their keys.

        Only keys of our own names: another program's uploads in the same prefix are not ours.
        """
        import datetime as dt

        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        own = re.compile(rf"^{OWN_NAME}$")
        page = self.call("listing unfinished uploads", self.client.list_multipart_uploads,
                          Bucket=self.bucket, Prefix=self.prefix)
        gone = []
        for upload in page.get("Uploads", []):
            if (upload["Initiated"] < cutoff and upload["Key"] != keep
                    and own.match(upload["Key"][len(self.prefix):])):
                self.abort_upload(upload["Key"], upload["UploadId"])
                gone.append(upload["Key"])
        return gone


class _Body:
    """A read-only stream over an S3 body whose errors become CopyError naming the target."""

    def __init__(self, body: StreamingBody, target: S3Target, name: str) -> None:
        self._body, self._target, self._name = body, target, name

    def read(self, n: int = -1) -> bytes:
        from botocore import exceptions as bx

        try:
            return self._body.read(None if n is None or n < 0 else n)
        except (bx.BotoCoreError, OSError) as exc:
            raise self._target.fail(f"reading {self._name}", exc) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
