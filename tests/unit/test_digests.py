"""Member digests: rows keep their order whichever thread hashes them; errors come back."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from allsky_tasks.archive.verify import verify
from allsky_tasks.backup import digests
from allsky_tasks.backup.digests import THREAD_MAX, THREAD_MIN, DigestPipeline, member_digests

from ..conftest import backup, gnu_tar_extract, make_site, tree_state


class _Sink:
    """Records rows with the thread that sank them; can hold the thread at a given row."""

    def __init__(self, hold_at: int | None = None) -> None:
        self.rows: list[tuple[int, str, str]] = []
        self.hold_at, self.held, self.release = hold_at, threading.Event(), threading.Event()

    def __call__(self, row: dict) -> None:
        if row["n"] == self.hold_at:
            self.held.set()
            assert self.release.wait(30)
        self.rows.append((row["n"], row.get("sha256", ""), threading.current_thread().name))


def _data(n: int, size: int) -> bytes:
    """Distinct contents per row."""
    return n.to_bytes(4, "big") * (size // 4)


def test_rows_keep_their_order_and_digests_across_both_paths() -> None:
    sizes = [None, 100, THREAD_MIN, 10, THREAD_MAX, THREAD_MAX + 4, None, 4096, THREAD_MIN * 2]
    sink = _Sink()
    with member_digests(sink, threaded=True) as pipeline:
        for n, size in enumerate(sizes * 20):
            data = None if size is None else _data(n, size)
            pipeline.add({"n": n, **({"sha256": ""} if data else {})}, data)
    assert [r[0] for r in sink.rows] == list(range(len(sizes) * 20))
    for n, digest, _thread in sink.rows:
        size = sizes[n % len(sizes)]
        want = "" if size is None else hashlib.sha256(_data(n, size)).hexdigest()
        assert digest == want, n
    threads = {r[2] for r in sink.rows}
    assert threads == {"MainThread", "member-digests"}  # both paths really ran


def test_small_rows_wait_behind_a_row_still_being_hashed() -> None:
    sink = _Sink(hold_at=0)
    pipeline = DigestPipeline(sink, threaded=True)
    pipeline.add({"n": 0, "sha256": ""}, _data(0, THREAD_MIN))  # goes to the thread, held
    assert sink.held.wait(30)
    for n in range(1, 6):  # small and data-less rows would go inline, but must not overtake
        pipeline.add({"n": n}, None if n % 2 else b"x")
    assert sink.rows == []
    sink.release.set()
    pipeline.close()
    assert [r[0] for r in sink.rows] == [0, 1, 2, 3, 4, 5]
    assert {r[2] for r in sink.rows} == {"member-digests"}


def test_sink_error_on_the_thread_reaches_the_caller_and_the_thread_ends() -> None:
    def sink(row: dict) -> None:
        raise OSError(28, "No space left on device")

    pipeline = DigestPipeline(sink, threaded=True)
    with pytest.raises(OSError, match="No space left"):
        for n in range(100):
            pipeline.add({"n": n, "sha256": ""}, os.urandom(THREAD_MIN))
        pipeline.close()
    pipeline.close(raise_error=False)
    assert not pipeline._worker.alive


def test_a_failure_inside_the_block_is_the_one_reported() -> None:
    sink = _Sink()
    with pytest.raises(KeyboardInterrupt), member_digests(sink, threaded=True) as pipeline:
        pipeline.add({"n": 0, "sha256": ""}, _data(0, THREAD_MIN))
        raise KeyboardInterrupt
    assert not pipeline._worker.alive


def test_unthreaded_pipeline_hashes_everything_inline_in_order() -> None:
    sink = _Sink()
    with member_digests(sink, threaded=False) as pipeline:
        for n in range(10):
            pipeline.add({"n": n, "sha256": ""}, _data(n, THREAD_MIN))
    assert [r[0] for r in sink.rows] == list(range(10))
    assert {r[2] for r in sink.rows} == {"MainThread"}
    assert sink.rows[3][1] == hashlib.sha256(_data(3, THREAD_MIN)).hexdigest()


def test_pack_with_threaded_digests_verifies_and_round_trips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digests, "THREADED", True)  # as on a 4-core Pi
    site = make_site(tmp_path, nights=2, frames_per_night=3, frame_size=(480, 360))
    assert any(THREAD_MIN <= p.stat().st_size <= THREAD_MAX
               for p in site.tree.images.rglob("*.jpg"))
    archive = backup(site, "imgs", "type: images\nfolders: all\n")
    sidecar = json.loads(archive.with_name(archive.name.removesuffix(".tar.zst") + ".json")
                         .read_text())
    assert verify(archive, sidecar)["ok"]  # every digest, in archive order
    gnu_tar_extract(archive, tmp_path / "out")
    assert tree_state(tmp_path / "out" / "images") == tree_state(site.tree.images)
