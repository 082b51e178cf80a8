"""S3 copy bench: our copy stage to moto's S3 server vs boto3's `upload_file` plus a read-back hash.

  ours:      copy_archive(S3Target) -- check the bucket, list, multipart upload with a SHA-256
             per part, verify (the store's full-object SHA-256, else stream back + hash), record
  reference: boto3 `upload_file` (what `aws s3 cp` does: managed transfer, threads) then
             get_object streamed through hashlib.sha256 (the verification `aws s3 cp` lacks)

Same file, same server, same run, alternating; the medians and their ratio are printed.
The target is ours <= 1.3 x reference. moto's server runs in its own process on 127.0.0.1.

Run: .venv/bin/python bench/bench_s3.py [--mb 128] [--reps 3]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from allsky_tasks.copies.s3 import S3Target  # noqa: E402
from allsky_tasks.copies.stage import copy_archive, hash_file  # noqa: E402
from tests.helpers.cloud_servers import moto_server  # noqa: E402

NAME = "allsky-images-backup-20260301-120000.tar.zst"
TARGET_RATIO = 1.3


def _make_archive(folder: Path, mb: int) -> Path:
    path = folder / NAME
    with open(path, "wb") as out:
        for _ in range(mb):
            out.write(os.urandom(1 << 20))  # incompressible, like an images archive
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=128, help="archive size in MiB (default 128)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3

    server = moto_server().start()
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
            work = Path(tmp)
            backups = work / "allskybackups"
            backups.mkdir()
            archive = _make_archive(backups, args.mb)
            sha = hash_file(archive)[0]
            item = {"name": "b2", "s3": {"bucket": "bench", "prefix": "ours", "endpoint_url": endpoint}}
            times: dict[str, list[float]] = {"ours": [], "ref": []}
            methods = set()
            for rep in range(args.reps):
                # ours: the whole copy stage; its record is removed so every rep copies again
                for rec in (backups / ".allsky-tasks").rglob("*.json"):
                    rec.unlink()
                client.delete_object(Bucket="bench", Key=f"ours/{NAME}")
                start = time.perf_counter()
                entry = copy_archive(S3Target(item, {}), item, archive, None, sha, "bench", lambda n: None)
                times["ours"].append(time.perf_counter() - start)
                assert entry["ok"] and entry["storedSha256"] == sha, entry
                methods.add(entry["method"])

                client.delete_object(Bucket="bench", Key=f"ref/{NAME}")
                start = time.perf_counter()
                client.upload_file(str(archive), "bench", f"ref/{NAME}")
                digest = hashlib.sha256()
                body = client.get_object(Bucket="bench", Key=f"ref/{NAME}")["Body"]
                for chunk in iter(functools.partial(body.read, 1 << 20), b""):
                    digest.update(chunk)
                times["ref"].append(time.perf_counter() - start)
                assert digest.hexdigest() == sha
                print(f"  rep {rep + 1}: ours {times['ours'][-1]:.2f} s, reference {times['ref'][-1]:.2f} s",
                      file=sys.stderr)
    finally:
        server.stop()
    ours, ref = statistics.median(times["ours"]), statistics.median(times["ref"])
    ratio = ours / ref
    print(f"S3 bench (moto server on 127.0.0.1), {args.mb} MiB incompressible archive, median of {args.reps}")
    print("| what | ours | reference | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| upload + verify to S3 ({', '.join(sorted(methods))}) | {ours:.2f} s | upload_file + "
          f"read-back sha256 {ref:.2f} s | {ratio:.2f}x | <= {TARGET_RATIO}x "
          f"{'ok' if ratio <= TARGET_RATIO else 'MISSED'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
