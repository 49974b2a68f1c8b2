"""The upload path: the bounded read cache, batched storage reads, batched serving of requests.

Storage tests drive ``TorrentStorage.read_blocks`` / ``cached_reads`` / ``prefetch`` directly and
count the worker-thread reads. Torrent tests put a ccbt seeder on loopback and talk to it with a
raw peer-wire client, so every message the seeder sends (PIECE, REJECT) can be asserted on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.api import Session, TorrentHandle
from ccbt_engine.config import update_settings
from ccbt_engine.create import create_torrent
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.protocol import wire
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from ccbt_engine.storage.readcache import CHUNK, ReadCache, ReadCachePool, chunk_span
from ccbt_engine.strategy.ratelimit import TokenBucket
from ccbt_engine.strategy.upload import (
    BLOCK,
    MAX_UPLOAD_BATCH,
    batch_bytes,
    peek_batch,
    take_batch,
)
from tests.engine_settings import loopback_settings
from tests.unit.test_storage_files import write_pieces
from tests.unit.test_storage_layout import build_torrent, sized

pytestmark = pytest.mark.timeout(60)

KIB = 1024
MIB = 1024 * KIB


# --------------------------------------------------------------------------------------------
# pure parts: chunk spans, the cache, batches
# --------------------------------------------------------------------------------------------


def test_chunk_span() -> None:
    assert chunk_span(64 * KIB, 16 * KIB, 16 * KIB) == (0, 64 * KIB)  # small piece: whole piece
    assert chunk_span(4 * MIB, CHUNK + 5, 100) == (CHUNK, CHUNK)
    assert chunk_span(CHUNK + 10, CHUNK, 10) == (CHUNK, 10)  # short last chunk
    assert chunk_span(4 * MIB, CHUNK - 10, 20) is None  # crosses a chunk boundary


def test_read_cache_evicts_least_recently_used_and_keeps_newest() -> None:
    cache = ReadCache(max_bytes=300)
    cache.put((0, 0), bytes(100))
    cache.put((1, 0), bytes(100))
    cache.put((2, 0), bytes(100))
    assert cache.get((0, 0)) is not None  # 0 is now the most recently used
    cache.put((3, 0), bytes(100))  # over budget: 1 (least recently used) goes
    assert (1, 0) not in cache and (0, 0) in cache and cache.nbytes == 300
    cache.put((4, 0), bytes(1000))  # alone over budget: kept, everything else goes
    assert len(cache) == 1 and cache.get((4, 0)) is not None and cache.nbytes == 1000
    cache.put((5, 0), bytes(10))
    cache.put((5, CHUNK), bytes(10))
    cache.discard_piece(5)
    assert (5, 0) not in cache and (5, CHUNK) not in cache
    assert cache.get((9, 9)) is None and cache.misses == 1
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0
    off = ReadCache(max_bytes=0)
    off.put((0, 0), b"x")
    assert len(off) == 0
    with pytest.raises(ValueError):
        ReadCache(max_bytes=-1)


def test_caches_of_one_pool_share_its_budget_and_lru() -> None:
    pool = ReadCachePool(max_bytes=300)
    a, b = pool.cache(), pool.cache()
    a.put((0, 0), bytes(100))
    b.put((0, 0), bytes(100))  # same key, other torrent: a separate chunk
    assert a.get((0, 0)) is not None and b.get((0, 0)) is not None
    assert a.nbytes == b.nbytes == 100 and pool.nbytes == 200
    a.put((1, 0), bytes(100))
    b.put((1, 0), bytes(100))  # over the shared budget: the least recently used (a's 0) goes
    assert (0, 0) not in a and (0, 0) in b and pool.nbytes == 300
    b.clear()  # one torrent's clear leaves the other's chunks alone
    assert len(b) == 0 and len(a) == 1 and pool.nbytes == 100
    a.put((2, 0), bytes(100))
    a.put((2, CHUNK), bytes(100))
    a.discard_piece(2)
    assert len(a) == 1 and (1, 0) in a
    assert a.max_bytes == b.max_bytes == 300


def test_pool_resize_applies_at_once() -> None:
    pool = ReadCachePool(max_bytes=1000)
    cache = pool.cache()
    for piece in range(5):
        cache.put((piece, 0), bytes(100))
    pool.resize(250)  # oldest first
    assert [(p, 0) in cache for p in range(5)] == [False, False, False, True, True]
    pool.resize(0)  # off: nothing kept, nothing stored
    cache.put((9, 0), bytes(10))
    assert pool.nbytes == 0 and len(pool) == 0
    pool.resize(100)
    cache.put((9, 0), bytes(10))
    assert (9, 0) in cache
    with pytest.raises(ValueError):
        pool.resize(-1)


def _reqs(*specs: tuple[int, int, int]) -> deque[wire.Request]:
    return deque(wire.Request(*s) for s in specs)


def test_take_and_peek_batch() -> None:
    q = _reqs(*((0, b * BLOCK, BLOCK) for b in range(10)))
    assert peek_batch(q, 3 * BLOCK) == list(q)[:3]
    assert len(q) == 10  # peek leaves the queue alone
    batch = take_batch(q, 3 * BLOCK + 1)
    assert [r.begin for r in batch] == [0, BLOCK, 2 * BLOCK]
    assert len(q) == 7
    # a request bigger than the cap still goes (alone): never stall the queue
    big = _reqs((1, 0, 4 * BLOCK), (1, 4 * BLOCK, BLOCK))
    assert take_batch(big, BLOCK) == [wire.Request(1, 0, 4 * BLOCK)]
    assert take_batch(deque(), BLOCK) == []


def test_batch_bytes_follows_the_slowest_limit() -> None:
    assert batch_bytes([TokenBucket(0), TokenBucket(0)]) == MAX_UPLOAD_BATCH
    assert batch_bytes([TokenBucket(0), TokenBucket(800 * KIB)]) == 100 * KIB
    assert batch_bytes([TokenBucket(8 * MIB), TokenBucket(1 * MIB)]) == 128 * KIB
    assert batch_bytes([TokenBucket(10 * KIB)]) == BLOCK  # never less than one block
    assert batch_bytes([TokenBucket(1024 * MIB)]) == MAX_UPLOAD_BATCH


# --------------------------------------------------------------------------------------------
# storage: read_blocks / cached_reads / prefetch
# --------------------------------------------------------------------------------------------


class CountingReads:
    """Wraps ``_read_chunks_sync`` of one storage: how many worker calls, which spans."""

    def __init__(self, st: TorrentStorage) -> None:
        self.calls: list[list[tuple[int, int, int]]] = []
        self._orig = st._read_chunks_sync
        st._read_chunks_sync = self  # type: ignore[method-assign]

    def __call__(self, spans: list[tuple[int, int, int]]) -> list[bytearray]:
        self.calls.append(list(spans))
        return self._orig(spans)


async def _written(tmp_path: Path, sizes: tuple[int, ...], plen: int, pad: bool = False) -> Any:
    info, space = build_torrent(sized(*sizes), plen, pad=pad)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=4096)
    await st.flush()
    return st, space


async def test_read_blocks_one_worker_call_per_batch_then_cache(tmp_path: Path) -> None:
    st, space = await _written(tmp_path, (50_000, 30_000, 70_000), 32 * KIB, pad=True)
    info = st.info
    reads = CountingReads(st)
    # every block of pieces 0..2, across file boundaries and pad bytes
    reqs = [
        (p, b, min(4096, info.piece_size(p) - b))
        for p in range(3)
        for b in range(0, info.piece_size(p), 4096)
    ]
    got = await st.read_blocks(reqs)
    assert len(reads.calls) == 1 and len(reads.calls[0]) == 3  # one call, three pieces
    for (p, b, n), view in zip(reqs, got, strict=True):
        start = p * info.piece_length + b
        assert bytes(view) == space[start : start + n]
    again = st.cached_reads(reqs[:5])  # served from memory, no await, no worker
    assert again is not None and [bytes(v) for v in again] == [bytes(v) for v in got[:5]]
    assert st.cached_reads([(3, 0, 10)]) is None  # not read yet
    assert len(reads.calls) == 1
    with pytest.raises(ValueError):
        st.cached_reads([(0, 32 * KIB - 10, 20)])  # outside the piece: a caller bug, not "miss"
    with pytest.raises(IndexError):
        st.cached_reads([(info.num_pieces, 0, 10)])
    await st.close()
    assert st.read_cache.nbytes == 0  # close forgets cached reads


async def test_read_cache_stays_within_its_budget(tmp_path: Path) -> None:
    st, space = await _written(tmp_path, (300_000,), 16 * KIB)
    st.read_cache = ReadCache(max_bytes=64 * KIB)
    for p in range(st.info.num_pieces):
        [view] = await st.read_blocks([(p, 100, 200)])
        assert bytes(view) == space[p * 16 * KIB + 100 : p * 16 * KIB + 300]
        assert st.read_cache.nbytes <= 64 * KIB
    assert len(st.read_cache) == 4
    await st.close()


async def test_big_piece_reads_one_chunk_not_the_piece(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 5000)
    info, space = build_torrent([(("big.bin",), data)], 4 * CHUNK)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=256 * KIB, shuffle=False)
    await st.flush()
    reads = CountingReads(st)
    [view] = await st.read_blocks([(0, CHUNK + 16 * KIB, 16 * KIB)])
    assert bytes(view) == data[CHUNK + 16 * KIB : CHUNK + 32 * KIB]
    assert reads.calls == [[(0, CHUNK, CHUNK)]]
    [tail] = await st.read_blocks([(0, 2 * CHUNK, 5000)])  # short last chunk
    assert bytes(tail) == data[2 * CHUNK :]
    assert reads.calls[-1] == [(0, 2 * CHUNK, 5000)]
    # a range across a chunk boundary is served, without the cache
    [odd] = await st.read_blocks([(0, CHUNK - 100, 200)])
    assert bytes(odd) == data[CHUNK - 100 : CHUNK + 100]
    assert len(reads.calls) == 2 and st.cached_reads([(0, CHUNK - 100, 200)]) is None
    await st.close()


async def test_concurrent_readers_share_one_read(tmp_path: Path) -> None:
    st, space = await _written(tmp_path, (100_000,), 32 * KIB)
    reads = CountingReads(st)
    a, b = await asyncio.gather(
        st.read_blocks([(1, 0, 100)]), st.read_blocks([(1, 100, 100), (1, 0, 10)])
    )
    base = 32 * KIB
    assert bytes(a[0]) == space[base : base + 100]
    assert [bytes(v) for v in b] == [space[base + 100 : base + 200], space[base : base + 10]]
    assert len(reads.calls) == 1
    await st.close()


async def test_invalidation_during_a_read_keeps_it_out_of_the_cache(tmp_path: Path) -> None:
    st, _ = await _written(tmp_path, (100_000,), 32 * KIB)
    task = asyncio.create_task(st.read_blocks([(0, 0, 100)]))
    await asyncio.sleep(0)  # the read is on its worker thread now
    st.invalidate_read_cache()
    await task
    assert st.cached_reads([(0, 0, 100)]) is None
    await st.read_blocks([(0, 0, 100)])
    assert st.cached_reads([(0, 0, 100)]) is not None
    st.invalidate_read_cache(0)
    assert st.cached_reads([(0, 0, 100)]) is None
    await st.close()


async def test_piece_with_cached_writes_is_read_through_the_write_cache(tmp_path: Path) -> None:
    st, space = await _written(tmp_path, (100_000,), 32 * KIB)
    await st.write_block(2, 0, b"\xee" * 10)  # not flushed: only the write cache has it
    reads = CountingReads(st)
    [view] = await st.read_blocks([(2, 0, 20)])
    assert bytes(view) == b"\xee" * 10 + space[64 * KIB + 10 : 64 * KIB + 20]
    assert reads.calls == [] and len(st.read_cache) == 0  # read_block path, nothing cached
    await st.discard_cache()
    await st.close()


async def test_missing_file_raises_for_every_waiter(tmp_path: Path) -> None:
    info, _ = build_torrent(sized(100_000), 32 * KIB)
    st = TorrentStorage(info, tmp_path / "nothing-here")
    results = await asyncio.gather(
        st.read_blocks([(0, 0, 10)]), st.read_blocks([(0, 10, 10)]), return_exceptions=True
    )
    assert all(isinstance(r, StorageError) for r in results)
    assert len(st.read_cache) == 0 and not st._reading
    with pytest.raises(ValueError):
        await st.read_blocks([(0, 32 * KIB - 1, 2)])  # outside the piece: a caller bug
    await st.close()


async def test_prefetch_fills_the_cache_and_close_stops_it(tmp_path: Path) -> None:
    st, space = await _written(tmp_path, (200_000,), 32 * KIB)
    reads = CountingReads(st)
    st.prefetch([(0, 0, 10), (0, 20, 10), (1, 0, 10)])
    st.prefetch([(0, 0, 10)])  # already in flight: nothing new
    for _ in range(200):
        if st.cached_reads([(0, 0, 10), (1, 0, 10)]) is not None:
            break
        await asyncio.sleep(0.01)
    got = st.cached_reads([(0, 0, 10), (1, 5, 5)])
    assert got is not None and bytes(got[1]) == space[32 * KIB + 5 : 32 * KIB + 10]
    assert len(reads.calls) == 1
    st.prefetch([(4, 0, 10)])
    await st.close()  # cancels or finishes the read-ahead: no task left behind
    assert not st._prefetching


# --------------------------------------------------------------------------------------------
# the torrent: a raw wire peer against a ccbt seeder
# --------------------------------------------------------------------------------------------


class RawPeer:
    """A minimal peer-wire client (fast extension on) that records what the seeder sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = wire.WireParser(expect_handshake=True)
        self.events: list[wire.Event] = []
        #: when each event arrived (monotonic), parallel to ``events``
        self.times: list[float] = []

    @classmethod
    async def connect(cls, port: int, info_hash: bytes, num_pieces: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = cls(reader, writer)
        peer.parser.set_num_pieces(num_pieces)
        writer.write(wire.encode_handshake(info_hash, os.urandom(20), fast=True, extended=False))
        return peer

    def send(self, *messages: bytes) -> None:
        self.writer.write(b"".join(messages))

    async def until(self, pred: Any, timeout: float = 20.0) -> None:
        """Read until ``pred(self.events)`` holds."""
        deadline = time.monotonic() + timeout
        while not pred(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out; events so far: {self.events[-5:]}")
            data = await asyncio.wait_for(self.reader.read(256 * KIB), left)
            if not data:
                pytest.fail("the seeder closed the connection")
            new = self.parser.feed(data)
            self.events += new
            self.times += [time.monotonic()] * len(new)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def unchoked(self) -> None:
        self.send(wire.encode_interested())
        await self.until(lambda ev: any(isinstance(e, wire.Unchoke) for e in ev))

    async def close(self) -> None:
        self.writer.close()
        await asyncio.gather(self.writer.wait_closed(), return_exceptions=True)


@pytest.fixture
async def seeder() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


async def _seed(
    session: Session, folder: Path, size: int, piece: int, corrupt: int | None = None
) -> tuple[TorrentHandle, bytes, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path = folder / "f.bin"
    path.write_bytes(data)
    torrent = create_torrent(path, piece_length=piece, version="v1", workers=1)
    if corrupt is not None:
        broken = bytearray(data)
        broken[corrupt * piece] ^= 0xFF
        path.write_bytes(bytes(broken))
    handle = await session.add_torrent(torrent, folder)
    return handle, data, parse_torrent(torrent).info


async def test_batched_upload_serves_every_block_with_few_reads(
    seeder: Session, tmp_path: Path
) -> None:
    handle, data, info = await _seed(seeder, tmp_path / "src", 512 * KIB, 64 * KIB)
    assert handle.status().state == "seeding"
    storage = handle._t.storage
    reads = CountingReads(storage)
    hops = {"n": 0}
    run = storage._run

    async def counting_run(fn: Any, *args: object) -> Any:
        hops["n"] += 1
        return await run(fn, *args)

    storage._run = counting_run  # type: ignore[method-assign]
    peer = await RawPeer.connect(seeder.listen_port, info.info_hash, info.num_pieces)
    await peer.unchoked()
    reqs = [(p, b, BLOCK) for p in range(8) for b in range(0, 64 * KIB, BLOCK)]
    peer.send(*(wire.encode_request(*r) for r in reqs))
    await peer.until(lambda ev: sum(isinstance(e, wire.Piece) for e in ev) >= len(reqs))
    pieces = peer.of(wire.Piece)
    assert sorted((p.index, p.begin) for p in pieces) == [(p, b) for p, b, _ in reqs]
    for p in pieces:
        start = p.index * 64 * KIB + p.begin
        assert bytes(p.data) == data[start : start + BLOCK]
    # 32 blocks cost at most one worker read per piece (read-ahead included), not one each
    assert 1 <= sum(len(c) for c in reads.calls) <= info.num_pieces
    assert 1 <= hops["n"] <= info.num_pieces  # executor round trips: not one per block
    await peer.close()


async def test_request_for_a_piece_we_lack_is_rejected(seeder: Session, tmp_path: Path) -> None:
    handle, _, info = await _seed(seeder, tmp_path / "src", 256 * KIB, 64 * KIB, corrupt=2)
    assert handle.status().pieces_have == info.num_pieces - 1
    peer = await RawPeer.connect(seeder.listen_port, info.info_hash, info.num_pieces)
    await peer.unchoked()
    peer.send(wire.encode_request(2, 0, BLOCK), wire.encode_request(1, 0, BLOCK))
    await peer.until(lambda ev: peer.of(wire.RejectRequest) and peer.of(wire.Piece))
    assert peer.of(wire.RejectRequest) == [wire.RejectRequest(2, 0, BLOCK)]
    assert [(p.index, p.begin) for p in peer.of(wire.Piece)] == [(1, 0)]
    await peer.close()


async def test_cancel_of_a_queued_request_rejects_it_and_sends_nothing(
    seeder: Session, tmp_path: Path
) -> None:
    handle, _, info = await _seed(seeder, tmp_path / "src", 256 * KIB, 64 * KIB)
    # 64 KiB/s: one block per batch after the 64 KiB burst, so later requests wait queued
    handle.set_limits(upload=64 * KIB)
    peer = await RawPeer.connect(seeder.listen_port, info.info_hash, info.num_pieces)
    await peer.unchoked()
    reqs = [(p, b, BLOCK) for p in range(3) for b in range(0, 64 * KIB, BLOCK)]  # 12 blocks
    cancelled = reqs[-4:]
    peer.send(*(wire.encode_request(*r) for r in reqs))
    peer.send(*(wire.encode_cancel(*r) for r in cancelled))
    await peer.until(
        lambda ev: len(peer.of(wire.Piece)) + len(peer.of(wire.RejectRequest)) >= len(reqs)
    )
    served = {(p.index, p.begin) for p in peer.of(wire.Piece)}
    rejected = {(r.index, r.begin) for r in peer.of(wire.RejectRequest)}
    assert rejected == {(p, b) for p, b, _ in cancelled}
    assert served == {(p, b) for p, b, _ in reqs[:-4]}
    await asyncio.sleep(0.3)  # nothing more arrives for the cancelled ones
    peer.events += peer.parser.feed(await _drain(peer))
    assert {(p.index, p.begin) for p in peer.of(wire.Piece)} == served
    await peer.close()


async def _drain(peer: RawPeer) -> bytes:
    try:
        return await asyncio.wait_for(peer.reader.read(256 * KIB), 0.2)
    except TimeoutError:
        return b""


async def test_upload_limit_is_respected_with_batches(seeder: Session, tmp_path: Path) -> None:
    handle, _, info = await _seed(seeder, tmp_path / "src", 384 * KIB, 64 * KIB)
    handle.set_limits(upload=128 * KIB)
    peer = await RawPeer.connect(seeder.listen_port, info.info_hash, info.num_pieces)
    await peer.unchoked()
    reqs = [(p, b, BLOCK) for p in range(6) for b in range(0, 64 * KIB, BLOCK)]  # 384 KiB
    start = time.monotonic()
    peer.send(*(wire.encode_request(*r) for r in reqs))
    await peer.until(lambda ev: len(peer.of(wire.Piece)) >= len(reqs), timeout=30)
    elapsed = time.monotonic() - start
    # one second of burst (128 KiB), then 256 KiB at 128 KiB/s: at least 2 s; load only slows
    assert elapsed >= 1.7, f"384 KiB at 128 KiB/s took only {elapsed:.2f}s"
    # paced, not one big batch after a long sleep: blocks keep arriving over those seconds
    arrivals = [
        t for t, e in zip(peer.times, peer.events, strict=True) if isinstance(e, wire.Piece)
    ]
    assert arrivals[-1] - arrivals[0] >= 1.2
    second_half = [t for t in arrivals if t >= arrivals[-1] - 1.0]
    assert len(second_half) <= 17, "far more than 1 s of the limit arrived within one second"
    assert handle.status().uploaded >= 384 * KIB
    await peer.close()


async def test_read_cache_mb_sizes_the_session_pool_live(tmp_path: Path) -> None:
    settings = loopback_settings(disk={"read_cache_mb": 1})
    async with Session(settings, listen_port=0) as session:
        one, _, _ = await _seed(session, tmp_path / "a", 256 * KIB, 64 * KIB)
        two, _, _ = await _seed(session, tmp_path / "b", 256 * KIB, 32 * KIB)
        pool = session._core.read_cache
        assert pool.max_bytes == 1 * MIB
        assert one._t.storage.read_cache.pool is pool is two._t.storage.read_cache.pool
        await one._t.storage.read_blocks([(p, 0, BLOCK) for p in range(4)])
        await two._t.storage.read_blocks([(p, 0, BLOCK) for p in range(8)])
        assert pool.nbytes == 512 * KIB  # both torrents' chunks, one budget
        changed = await session.apply_settings(
            update_settings(session.settings, {"disk.read_cache_mb": 0})
        )
        assert "disk.read_cache_mb" in changed
        assert pool.max_bytes == 0 and pool.nbytes == 0
        await one._t.storage.read_blocks([(0, 0, BLOCK)])  # still served, just not cached
        assert pool.nbytes == 0
