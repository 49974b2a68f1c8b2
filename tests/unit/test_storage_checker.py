"""Recheck finds good, corrupted and missing pieces with bounded parallelism; quick file check."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from ccbt_engine import merkle
from ccbt_engine.storage import checker
from ccbt_engine.storage.checker import quick_file_check, recheck
from ccbt_engine.storage.files import TorrentStorage
from tests.unit.test_storage_files import write_pieces
from tests.unit.test_storage_layout import build_torrent, sized


async def test_recheck_finds_corrupt_and_missing(tmp_path: Path) -> None:
    info, space = build_torrent(sized(100, 60, 90), 32)  # 250 bytes, 8 pieces
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    calls: list[tuple[int, int]] = []
    assert await recheck(st, progress=lambda d, t: calls.append((d, t))) == [True] * 8
    assert calls[-1] == (8, 8)  # progress comes per span of pieces, the last one says "all"
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    with (tmp_path / "t" / "f0").open("r+b") as fh:  # corrupt piece 1
        fh.seek(40)
        fh.write(b"\x00")
    (tmp_path / "t" / "f1").unlink()  # f1 = [100, 160): pieces 3 and 4
    await st.close()
    got = await recheck(st)
    assert got == [True, False, True, False, False, True, True, True]
    await st.close()
    assert not (tmp_path / "t" / "f1").exists()  # rechecking creates nothing


async def test_recheck_nothing_on_disk(tmp_path: Path) -> None:
    info, _ = build_torrent(sized(100, 0, 60), 32)
    st = TorrentStorage(info, tmp_path / "nowhere")
    assert await recheck(st) == [False] * info.num_pieces
    assert not (tmp_path / "nowhere").exists()


async def test_recheck_v2(tmp_path: Path) -> None:
    plen = merkle.BLOCK_SIZE
    info, space = build_torrent(sized(3 * plen + 5, 77), plen, version="v2")
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=plen)
    await st.flush()  # not hashed yet: recheck must flush and read back
    assert await recheck(st) == [True] * 5
    (tmp_path / "t" / "f1").write_bytes(b"x" * 77)
    assert await recheck(st, workers=1) == [True] * 4 + [False]
    await st.close()


@pytest.mark.parametrize("workers", [1, 2, 3])
async def test_recheck_bounded_in_flight(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checker, "SPAN_BYTES", 256)  # 4 pieces of 64 bytes per span: 16 spans
    info, space = build_torrent(sized(4000), 64)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=64)
    await st.flush()
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "spans": 0, "biggest": 0}
    original = st.read_span_into

    def counting(first: int, count: int, out: memoryview) -> int:
        with lock:
            state["now"] += 1
            state["spans"] += 1
            state["peak"] = max(state["peak"], state["now"])
            state["biggest"] = max(state["biggest"], count)
        try:
            time.sleep(0.001)  # worker thread: give the others a chance to overlap
            return original(first, count, out)
        finally:
            with lock:
                state["now"] -= 1

    st.read_span_into = counting  # type: ignore[method-assign]
    assert all(await recheck(st, workers=workers))
    assert 1 <= state["peak"] <= workers
    assert state["spans"] == 16 and state["biggest"] == 4  # 63 pieces: 15 spans of 4, one of 3
    await st.close()
    with pytest.raises(ValueError):
        await recheck(st, workers=0)


async def test_quick_file_check(tmp_path: Path) -> None:
    info, space = build_torrent(sized(10, 20, 5), 16, pad=True)
    st = TorrentStorage(info, tmp_path, preallocate="none")
    await write_pieces(st, space, pieces=[0])
    await st.flush()
    await st.close()
    got = await quick_file_check(info, tmp_path)
    assert [f.is_pad for f in info.files] == [False, True, False, True, False]
    assert got[1] is None and got[3] is None  # pads
    assert got[2] is None and got[4] is None  # not written yet
    assert got[0] is not None and got[0][0] == 10
    assert got[0][1] == (tmp_path / "t" / "f0").stat().st_mtime


async def test_recheck_small_spans_attribute_failures_per_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span that cannot be read (a file is missing) fails only the pieces of that file."""
    monkeypatch.setattr(checker, "SPAN_BYTES", 96)  # 3 pieces of 32 bytes per span
    info, space = build_torrent(sized(100, 60, 90), 32, pad=True)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    await st.flush()
    assert await recheck(st, workers=2) == [True] * info.num_pieces
    (tmp_path / "t" / "f2").unlink()
    await st.close()
    got = await recheck(st, workers=2)
    first, last = st.layout.file_piece_range(4)  # f2 (files: f0, pad, f1, pad, f2)
    assert [f.path[-1] for f in info.files][4] == "f2"
    assert got == [not first <= p <= last for p in range(info.num_pieces)]
    await st.close()


async def test_recheck_cancel_waits_for_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling stops the workers after their span; none is left reading afterwards."""
    monkeypatch.setattr(checker, "SPAN_BYTES", 64)
    info, space = build_torrent(sized(4000), 64)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=64)
    await st.flush()
    started = threading.Event()
    active = {"n": 0, "spans": 0}
    original = st.read_span_into

    lock = threading.Lock()

    def slow(first: int, count: int, out: memoryview) -> int:
        with lock:
            active["n"] += 1
            active["spans"] += 1
        started.set()
        time.sleep(0.01)  # worker thread, not the loop
        try:
            return original(first, count, out)
        finally:
            with lock:
                active["n"] -= 1

    st.read_span_into = slow  # type: ignore[method-assign]
    task = asyncio.create_task(recheck(st, workers=2))
    while not started.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert active["n"] == 0
    assert active["spans"] < info.num_pieces  # it did stop early
    await st.close()
