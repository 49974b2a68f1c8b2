"""The download hot path: piece buffers in the write cache, one worker call per verified piece,
write back-pressure, spare buffers, and the connection's read pauses and small handshake buffers.

No timing here: what is checked is the shape of the work (how many buffers, copies and worker
round trips), which is what makes the path fast, and that bytes stay right while doing so.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from ccbt_engine.net.peer import HANDSHAKE_BUFFER, PeerConnection
from ccbt_engine.protocol.wire import (
    RECV_BUFFER_MAX,
    WireParser,
    encode_handshake,
    encode_piece,
)
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from ccbt_engine.strategy.picker import PiecePicker
from tests.unit.test_storage_files import disk_bytes, write_pieces
from tests.unit.test_storage_layout import build_torrent, sized

PIECE = 64
BLOCK = 16


def _storage(tmp_path: Path, sizes: tuple[int, ...] = (4 * PIECE,), **kw: Any) -> Any:
    info, space = build_torrent(sized(*sizes), PIECE)
    return TorrentStorage(info, tmp_path, **kw), space


def _blocks(space: bytes, piece: int) -> list[tuple[int, bytes]]:
    base = piece * PIECE
    return [(b, space[base + b : base + b + BLOCK]) for b in range(0, PIECE, BLOCK)]


class CountingRuns:
    """Counts the storage's executor round trips (and which functions they ran)."""

    def __init__(self, st: TorrentStorage) -> None:
        self.names: list[str] = []
        self._run = st._run

        async def run(fn: Callable[..., Any], *args: object) -> Any:
            self.names.append(getattr(fn, "__name__", repr(fn)))
            return await self._run(fn, *args)

        st._run = run  # type: ignore[method-assign]


class GatedWrites:
    """Makes ``_write_sync`` wait until released, to look at the storage mid-write."""

    def __init__(self, st: TorrentStorage) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.pieces: list[int] = []
        original = st._write_sync

        def gated(piece: int, blocks: Any) -> None:
            self.pieces.append(piece)
            self.entered.set()
            self.release.wait(5)
            original(piece, blocks)

        st._write_sync = gated  # type: ignore[method-assign]

    async def wait_entered(self) -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, self.entered.wait, 5)


# -- piece buffers --------------------------------------------------------------------------


async def test_blocks_are_copied_into_one_buffer_per_piece(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    receive_buffer = bytearray(space[:BLOCK])
    st.cache_block(0, 0, memoryview(receive_buffer))
    receive_buffer[:] = bytes(BLOCK)  # the connection reuses its buffer: the block was copied
    for begin, data in _blocks(space, 0)[1:]:
        st.cache_block(0, begin, data)
    views = st.cached_blocks(0)
    assert sorted(views) == [0, 16, 32, 48]
    owners = {id(memoryview(v).obj) for v in views.values()}
    assert len(owners) == 1  # every block is a view of the same piece buffer
    assert b"".join(bytes(views[b]) for b in sorted(views)) == space[:PIECE]
    assert st.cached_bytes == PIECE  # the whole buffer counts from the first block
    await st.close()


async def test_first_block_reserves_the_whole_piece_in_the_budget(tmp_path: Path) -> None:
    st, space = _storage(tmp_path, write_cache_bytes=PIECE)
    assert not st.cache_block(0, 0, space[:BLOCK])  # one piece: within budget
    assert st.cache_block(1, 0, space[PIECE : PIECE + BLOCK])  # a second buffer: over
    assert st.over_budget and st.cached_bytes == 2 * PIECE
    await st.discard_cache()
    assert st.cached_bytes == 0
    await st.close()


async def test_out_of_range_block_is_refused_before_any_buffer(tmp_path: Path) -> None:
    st, _ = _storage(tmp_path)
    with pytest.raises(ValueError):
        st.cache_block(0, PIECE - 8, bytes(BLOCK))
    with pytest.raises(IndexError):
        st.cache_block(99, 0, bytes(BLOCK))
    assert st.cached_bytes == 0
    await st.close()


async def test_verified_piece_costs_one_worker_call(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    runs = CountingRuns(st)
    assert await st.hash_piece(0)
    assert runs.names == ["_hash_write_sync"]  # hashed and written by the same call
    assert st.cached_bytes == 0
    await st.close()
    assert (tmp_path / "t" / "f0").read_bytes()[:PIECE] == space[:PIECE]


async def test_failed_piece_is_dropped_and_its_buffer_not_written(tmp_path: Path) -> None:
    st, space = _storage(tmp_path, preallocate="none")
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data if begin else b"X" * BLOCK)
    assert not await st.hash_piece(0)
    assert st.cached_bytes == 0
    assert not (tmp_path / "t" / "f0").exists()
    await st.close()


async def test_junk_pad_bytes_are_zeroed_before_hashing(tmp_path: Path) -> None:
    info, space = build_torrent(sized(40, 60), PIECE, pad=True)  # f0 padded to 64
    st = TorrentStorage(info, tmp_path)
    junk = bytearray(space)
    junk[40:64] = b"P" * 24
    await write_pieces(st, bytes(junk), block=BLOCK)
    assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
    await st.close()
    assert disk_bytes(info, tmp_path) == space


async def test_write_failure_keeps_the_piece_cached_and_counted(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    original = st._write_sync

    def failing(piece: int, blocks: Any) -> None:
        raise StorageError(28, "No space left on device", "f0", "write")

    st._write_sync = failing
    with pytest.raises(StorageError):
        await st.hash_piece(0)
    assert st.cached_bytes == PIECE
    st._write_sync = original
    assert await st.hash_piece(0)  # the same call, once there is room again
    assert st.cached_bytes == 0
    await st.close()
    assert (tmp_path / "t" / "f0").read_bytes()[:PIECE] == space[:PIECE]


# -- back-pressure --------------------------------------------------------------------------


async def test_piece_on_its_way_to_disk_counts_until_written(tmp_path: Path) -> None:
    st, space = _storage(tmp_path, write_cache_bytes=PIECE)
    gate = GatedWrites(st)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    hashing = asyncio.create_task(st.hash_piece(0))
    await gate.wait_entered()
    assert st.cached_bytes == PIECE  # left the cache, not the budget
    assert st.cache_block(1, 0, space[PIECE : PIECE + BLOCK])  # so a new piece is over it
    gate.release.set()
    assert await hashing
    assert st.cached_bytes == PIECE and not st.over_budget
    await st.discard_cache()
    await st.close()


async def test_relief_waits_for_pieces_in_flight_before_writing_partial_ones(
    tmp_path: Path,
) -> None:
    st, space = _storage(tmp_path, write_cache_bytes=PIECE)
    gate = GatedWrites(st)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    hashing = asyncio.create_task(st.hash_piece(0))
    await gate.wait_entered()
    st.cache_block(1, 0, space[PIECE : PIECE + BLOCK])  # partial: would need a read-back
    relief = asyncio.create_task(st.relieve_pressure())
    await asyncio.sleep(0.05)
    assert not relief.done()  # waiting for piece 0, not writing piece 1
    gate.release.set()
    await asyncio.wait_for(relief, 5)
    assert await hashing
    assert gate.pieces == [0]  # the partial piece stayed in memory
    assert st.cached_bytes == PIECE
    await st.discard_cache()
    await st.close()


async def test_relief_writes_partial_pieces_when_nothing_is_in_flight(tmp_path: Path) -> None:
    st, space = _storage(tmp_path, write_cache_bytes=PIECE)
    for piece in (0, 1, 2):
        st.cache_block(piece, 0, space[piece * PIECE : piece * PIECE + BLOCK])
    await st.relieve_pressure()
    assert st.cached_bytes <= PIECE
    for piece in (0, 1, 2):  # completing and verifying them still works (read back)
        for begin, data in _blocks(space, piece)[1:]:
            await st.write_block(piece, begin, data)
        assert await st.hash_piece(piece)
    await st.close()
    assert disk_bytes(st.info, tmp_path)[: 3 * PIECE] == space[: 3 * PIECE]


# -- spare buffers --------------------------------------------------------------------------


def _owner(st: TorrentStorage, piece: int) -> int:
    return id(memoryview(st.cached_blocks(piece)[0]).obj)


async def test_finished_piece_buffer_is_reused_for_the_next_piece(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    first = _owner(st, 0)
    assert await st.hash_piece(0)
    # the executor's worker thread drops its work item (holding views of the buffer) only after
    # the future's result is set, so the loop can get here first: wait for that, as the engine
    # does by trying a still-viewed spare again later
    for _ in range(1000):
        if sys.getrefcount(st._spare[0]) <= 2:  # the deque's reference and the argument
            break
        await asyncio.sleep(0.001)
    for begin, data in _blocks(space, 1):
        st.cache_block(1, begin, data)
    assert _owner(st, 1) == first  # no fresh megabyte to zero and fault in
    assert await st.hash_piece(1)
    await st.close()
    assert (tmp_path / "t" / "f0").read_bytes()[: 2 * PIECE] == space[: 2 * PIECE]


async def test_buffer_still_viewed_is_never_reused(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    evidence = st.cached_blocks(0)  # smart ban keeps these while it judges the piece
    assert await st.hash_piece(0)
    for begin, data in _blocks(space, 1):
        st.cache_block(1, begin, data)
    assert _owner(st, 1) != id(memoryview(evidence[0]).obj)
    assert bytes(evidence[0]) == space[:BLOCK]  # the evidence still shows piece 0
    assert await st.hash_piece(1)
    await st.close()


async def test_reused_buffer_never_leaks_old_bytes(tmp_path: Path) -> None:
    info, space = build_torrent(sized(2 * PIECE), PIECE)
    st = TorrentStorage(info, tmp_path, preallocate="none")
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    assert await st.hash_piece(0)
    st.cache_block(1, 0, space[PIECE : PIECE + BLOCK])  # reuses piece 0's buffer, 1 block
    await st.flush()  # a partial write: only the received block may reach the disk
    data = (tmp_path / "t" / "f0").read_bytes()
    assert data[PIECE : PIECE + BLOCK] == space[PIECE : PIECE + BLOCK]
    assert len(data) == PIECE + BLOCK  # nothing of piece 0's stale bytes after it
    await st.close()


async def test_flush_lets_go_of_spare_buffers(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    for begin, data in _blocks(space, 0):
        st.cache_block(0, begin, data)
    first = _owner(st, 0)
    assert await st.hash_piece(0)
    await st.flush()  # the torrent finished
    for begin, data in _blocks(space, 1):
        st.cache_block(1, begin, data)
    assert _owner(st, 1) != first
    await st.discard_cache()
    await st.close()


# -- the connection ------------------------------------------------------------------------


class PausableTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 6881) if name == "peername" else default

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        pass


INFO_HASH = bytes(range(20))
THEIR_ID = b"-CC0001-abcdefghijkl"
OUR_ID = b"-CC0001-ourselves-12"


class Handler:
    def __init__(self) -> None:
        self.blocks: list[tuple[int, int, bytes]] = []

    def on_peer_connected(self, conn: PeerConnection) -> str | None:
        return None

    def on_peer_event(self, conn: PeerConnection, event: Any) -> None:
        pass

    def on_peer_pieces(self, conn: PeerConnection, blocks: list[tuple[int, int, Any]]) -> None:
        self.blocks += [(index, begin, bytes(block)) for index, begin, block in blocks]

    def on_peer_batch_end(self, conn: PeerConnection) -> None:
        pass

    def on_peer_closed(self, conn: PeerConnection, reason: str) -> None:
        pass

    def on_peer_writable(self, conn: PeerConnection) -> None:
        pass


def _conn(handler: Handler, **kw: Any) -> tuple[PeerConnection, PausableTransport]:
    conn = PeerConnection(
        peer_id=OUR_ID,
        lookup=lambda ih: (handler, ih, 10),
        outgoing_info_hash=INFO_HASH,
        **kw,
    )
    transport = PausableTransport()
    conn.connection_made(transport)
    return conn, transport


def _read(conn: PeerConnection, data: bytes) -> None:
    off = 0
    while off < len(data):
        view = conn.get_buffer(-1)
        n = min(len(view), len(data) - off)
        view[:n] = data[off : off + n]
        conn.buffer_updated(n)
        off += n


async def test_read_pauses_are_counted_per_reason() -> None:
    conn, transport = _conn(Handler())
    conn.pause_reading("disk")
    conn.pause_reading()  # the rate limiter's
    conn.resume_reading()  # its timer fires: the disk still holds the connection
    assert not transport.reading and conn.reading_paused
    conn.resume_reading("disk")
    assert transport.reading and not conn.reading_paused


async def test_receive_buffer_stays_small_until_the_handshake() -> None:
    handler = Handler()
    conn, _ = _conn(handler)
    assert len(conn.get_buffer(-1)) <= HANDSHAKE_BUFFER  # a scan costs a few KiB
    assert conn.parser.recv_buffer_max == HANDSHAKE_BUFFER
    block = bytes(range(256)) * 64  # 16 KiB
    stream = encode_handshake(INFO_HASH, THEIR_ID)
    stream += b"".join(encode_piece(0, b, block) for b in range(0, 8 * len(block), len(block)))
    _read(conn, stream)
    assert conn.handler is handler
    assert conn.parser.recv_buffer_max == RECV_BUFFER_MAX
    assert conn.parser.receive_capacity > HANDSHAKE_BUFFER  # full reads made it grow
    assert [(i, b) for i, b, _ in handler.blocks] == [(0, b * 16384) for b in range(8)]
    assert all(data == block for _, _, data in handler.blocks)


async def test_encrypted_connection_starts_with_a_small_scratch_buffer() -> None:
    conn, _ = _conn(Handler(), encryption="forced")
    assert conn.mse_pending
    assert len(conn.get_buffer(-1)) == HANDSHAKE_BUFFER


def test_parser_read_ahead_bound_can_be_raised() -> None:
    p = WireParser(expect_handshake=False, num_pieces=4, recv_buffer_max=1024)
    assert len(p.get_buffer()) <= 1024
    with pytest.raises(ValueError):
        p.recv_buffer_max = 0
    p.recv_buffer_max = 1 << 16
    sizes = []
    for _ in range(8):
        view = p.get_buffer()
        sizes.append(len(view))
        view[:] = bytes(len(view))  # keep-alives (zero length prefixes), filling every read
        p.buffer_updated(len(view), _NullSink())
    assert max(sizes) > 1024 and max(sizes) <= 1 << 16


class _NullSink:
    def on_event(self, event: Any) -> bool:
        return False

    def on_piece(self, index: int, begin: int, block: memoryview) -> bool:
        return False


# -- the picker's one call per block ---------------------------------------------------------


def _picker_state(p: PiecePicker, peers: list[str]) -> tuple[object, ...]:
    blocks = tuple(
        tuple(p.is_block_received(i, b * 16384) for b in range(p.num_blocks(i)))
        for i in range(p.num_pieces)
    )
    return blocks, tuple(tuple(p.requests_of(peer)) for peer in peers)


@settings(max_examples=60, deadline=None)
@given(
    picks=hst.lists(hst.tuples(hst.integers(0, 2), hst.integers(1, 12)), max_size=6),
    deliveries=hst.lists(
        hst.tuples(
            hst.integers(0, 2),
            hst.integers(-1, 5),
            hst.sampled_from([-16384, 0, 16384, 32768, 49152, 65536, 100]),
        ),
        max_size=40,
    ),
    endgame=hst.booleans(),
)
def test_accept_block_is_the_three_calls_it_replaces(
    picks: list[tuple[int, int]], deliveries: list[tuple[int, int, int]], endgame: bool
) -> None:
    peers = ["a", "b", "c"]
    old, new = (PiecePicker(5, 65536, 4 * 65536 + 20000, rng=random.Random(7)) for _ in range(2))
    for p in (old, new):
        for peer in peers:
            p.peer_have_all(peer)
        for who, n in picks:
            p.pick(peers[who], n)
        if endgame:  # every block requested, then asked again of the others: cancels
            for peer in peers:
                p.pick(peer, 30)
    for who, piece, begin in deliveries:
        peer = peers[who]
        got = new.accept_block(peer, piece, begin)
        before = _picker_state(old, peers)
        cancels = (
            [] if old.is_block_received(piece, begin) else old.block_received(peer, piece, begin)
        )
        changed = _picker_state(old, peers) != before
        assert (got is not None) == changed
        if got is not None:
            complete, new_cancels = got
            assert list(new_cancels) == cancels
            assert complete == old.piece_complete(piece)
        assert _picker_state(new, peers) == _picker_state(old, peers)


def _no_interval_check(st: TorrentStorage) -> None:
    def refuse(*args: object) -> bool:
        raise AssertionError("completeness needed the interval merge")

    st._cache_covers = refuse  # type: ignore[method-assign]


async def test_grid_blocks_prove_a_piece_complete_without_merging(tmp_path: Path) -> None:
    plen = 4 * 16384
    info, space = build_torrent(sized(plen + 20000), plen)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=16384)  # the last piece ends in a short block
    _no_interval_check(st)
    assert await st.hash_piece(0) and await st.hash_piece(1)
    await st.close()
    assert disk_bytes(info, tmp_path) == space


async def test_off_grid_or_missing_blocks_fall_back_to_the_exact_check(tmp_path: Path) -> None:
    plen = 4 * 16384
    info, space = build_torrent(sized(2 * plen), plen)
    st = TorrentStorage(info, tmp_path)
    for begin in range(0, plen, 8192):  # 8 KiB blocks: off the grid
        st.cache_block(0, begin, space[begin : begin + 8192])
    for begin in range(0, plen - 16384, 16384):  # one block short of complete
        st.cache_block(1, begin, space[plen + begin : plen + begin + 16384])
    calls: list[int] = []
    exact = st._cache_covers

    def spy(piece: int, *args: Any) -> bool:
        calls.append(piece)
        return exact(piece, *args)

    st._cache_covers = spy  # type: ignore[method-assign]
    assert await st.hash_piece(0)
    assert not await st.hash_piece(1)  # never taken for complete: written, read back, fails
    assert calls == [0, 1]
    await st.close()
