"""Hashing a piece on the loop as its blocks arrive (``TorrentStorage.hash_ahead``).

Whatever order, duplicates, resent or corrupt blocks come in, the verdict must be the one a
full hash of the piece's final bytes gives, and only verified bytes may reach the disk.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from ccbt_engine.storage import files
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from tests.unit.test_storage_files import disk_bytes
from tests.unit.test_storage_layout import build_torrent, sized

PIECE = 64
BLOCK = 16


def _storage(
    tmp_path: Path, *, pad: bool = False, queue: int = 0, executor: Executor | None = None
) -> tuple[TorrentStorage, bytes]:
    info, space = build_torrent(sized(100, 60) if pad else sized(160), PIECE, pad=pad)
    st = TorrentStorage(info, tmp_path, executor=executor)
    st.hash_ahead_queue = queue  # 0: always hash ahead
    return st, space


def _store(st: TorrentStorage, piece: int, begin: int, data: bytes) -> None:
    st.cache_block(piece, begin, memoryview(data))


async def test_in_order_blocks_are_hashed_on_the_loop_and_not_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st, space = _storage(tmp_path)
    for begin in range(0, PIECE, BLOCK):
        _store(st, 0, begin, space[begin : begin + BLOCK])
        st.hash_ahead(0)
    assert st.pieces_hashed_ahead == 1

    def no_second_hash(*_a: object) -> bool:
        raise AssertionError("the pool hashed a piece the loop had hashed")

    monkeypatch.setattr(files, "verify_piece", no_second_hash)
    assert await st.hash_piece(0)
    await st.flush()
    assert disk_bytes(st.info, tmp_path)[:PIECE] == space[:PIECE]
    await st.close()


def _loop_hashes_one_block_of_piece_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[TorrentStorage, bytes]:
    """Blocks 1..3 first, then block 0 makes piece 0 contiguous; a cap of one block per call
    leaves the loop with 16 of its 64 bytes hashed."""
    monkeypatch.setattr(files, "HASH_AHEAD_MAX", BLOCK)
    st, space = _storage(tmp_path)
    for begin in (16, 32, 48, 0):
        _store(st, 0, begin, space[begin : begin + BLOCK])
        st.hash_ahead(0)
    return st, space


async def test_the_pool_hashes_on_from_where_the_loop_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the loop hashed one cap's worth and leaves the rest to the pool, which must not start over
    st, space = _loop_hashes_one_block_of_piece_0(tmp_path, monkeypatch)
    buf = st._cache[0]
    assert buf.sha is not None and buf.hashed == BLOCK
    monkeypatch.setattr(files, "verify_piece", lambda *_a: pytest.fail("hashed from 0 again"))
    assert await st.hash_piece(0)
    await st.close()
    assert disk_bytes(st.info, tmp_path)[:PIECE] == space[:PIECE]


async def test_a_failed_write_is_retried_without_hashing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the pool finished the loop's hash, then the write failed (disk full): the piece goes back
    # to the cache, and the retry must find the same digest, not one fed the tail twice
    st, space = _loop_hashes_one_block_of_piece_0(tmp_path, monkeypatch)
    write = st._write_sync
    calls: list[int] = []

    def full_once(piece: int, runs: object) -> None:
        calls.append(piece)
        if len(calls) == 1:
            raise StorageError(errno.ENOSPC, "No space left on device", tmp_path, "write")
        write(piece, runs)  # type: ignore[arg-type]

    monkeypatch.setattr(st, "_write_sync", full_once)
    with pytest.raises(StorageError):
        await st.hash_piece(0)
    assert await st.hash_piece(0)
    await st.close()
    assert disk_bytes(st.info, tmp_path)[:PIECE] == space[:PIECE]


async def test_a_corrupt_block_fails_and_nothing_is_written(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    for begin in range(0, PIECE, BLOCK):
        data = space[begin : begin + BLOCK]
        _store(st, 1, begin, b"x" * BLOCK if begin == 32 else data)
        st.hash_ahead(1)
    assert st.pieces_hashed_ahead == 1
    assert not await st.hash_piece(1)
    await st.close()
    path = st.file_path(0)
    assert not path.exists() or b"x" * BLOCK not in path.read_bytes()  # never written


async def test_a_resent_block_after_hashing_falls_back_to_a_full_hash(tmp_path: Path) -> None:
    st, space = _storage(tmp_path)
    _store(st, 0, 0, b"y" * BLOCK)
    st.hash_ahead(0)  # hashed the wrong bytes...
    _store(st, 0, 0, space[:BLOCK])  # ...which a second peer's copy replaces
    for begin in range(BLOCK, PIECE, BLOCK):
        _store(st, 0, begin, space[begin : begin + BLOCK])
        st.hash_ahead(0)
    assert st.pieces_hashed_ahead == 0
    assert await st.hash_piece(0)  # the pool hashed the final bytes
    await st.close()


async def test_the_pool_hashes_while_it_keeps_up(tmp_path: Path) -> None:
    with ThreadPoolExecutor(1) as pool:
        st, space = _storage(tmp_path, queue=files.HASH_AHEAD_QUEUE, executor=pool)
        for begin in range(0, PIECE, BLOCK):
            _store(st, 0, begin, space[begin : begin + BLOCK])
            st.hash_ahead(0)
        assert st.pieces_hashed_ahead == 0  # no job waits for the pool: it hashes this piece
        release = threading.Event()
        pool.submit(release.wait)  # the pool's one thread is busy...
        pool.submit(release.wait)  # ...and a job waits for it: the pool is behind
        for begin in range(0, PIECE, BLOCK):
            _store(st, 1, begin, space[PIECE + begin : PIECE + begin + BLOCK])
            st.hash_ahead(1)
        assert st.pieces_hashed_ahead == 1
        release.set()
        assert await st.hash_piece(0) and await st.hash_piece(1)
        await st.close()


async def test_torrents_with_pad_bytes_are_hashed_by_the_pool(tmp_path: Path) -> None:
    st, space = _storage(tmp_path, pad=True)
    for begin in range(0, PIECE, BLOCK):
        _store(st, 0, begin, space[begin : begin + BLOCK])
        st.hash_ahead(0)
    assert st.pieces_hashed_ahead == 0  # pad bytes must be zeroed before hashing
    assert await st.hash_piece(0)
    await st.close()


@settings(max_examples=60, deadline=None)
@given(
    order=hst.permutations(range(PIECE // BLOCK)),
    extra=hst.lists(
        hst.tuples(hst.integers(0, PIECE // BLOCK - 1), hst.sampled_from(["same", "bad"])),
        max_size=4,
    ),
    calls=hst.lists(hst.booleans(), min_size=PIECE // BLOCK + 4, max_size=PIECE // BLOCK + 4),
    seed=hst.integers(0, 1000),
    cap=hst.sampled_from([BLOCK, 2 * BLOCK, 1 << 20]),
)
def test_verdict_equals_a_full_hash_of_the_final_bytes(
    tmp_path_factory: pytest.TempPathFactory,
    order: list[int],
    extra: list[tuple[int, str]],
    calls: list[bool],
    seed: int,
    cap: int,
) -> None:
    """Blocks in any order, repeated (same bytes or corrupt ones), hash_ahead called after any
    of them, capped at any size: the piece passes exactly when SHA-1 of its final bytes is the
    expected one."""
    root = tmp_path_factory.mktemp("ha")
    saved, files.HASH_AHEAD_MAX = files.HASH_AHEAD_MAX, cap

    async def main() -> None:
        st, space = _storage(root)
        sends = [(i, "good") for i in order]
        rng = random.Random(seed)
        for item in extra:
            sends.insert(rng.randrange(len(sends) + 1), item)
        final = bytearray(space[:PIECE])
        for n, (i, kind) in enumerate(sends):
            data = space[i * BLOCK : (i + 1) * BLOCK] if kind != "bad" else b"z" * BLOCK
            _store(st, 0, i * BLOCK, data)
            final[i * BLOCK : (i + 1) * BLOCK] = data
            if calls[n % len(calls)]:
                st.hash_ahead(0)
        st.hash_ahead(0)
        expected = hashlib.sha1(final).digest() == st.info.piece_hashes[0]
        assert await st.hash_piece(0) is expected
        await st.close()

    try:
        asyncio.run(main())
    finally:
        files.HASH_AHEAD_MAX = saved
