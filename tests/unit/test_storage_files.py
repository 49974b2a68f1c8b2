"""TorrentStorage: block I/O across files, hashing, cache, priorities, errors, containment."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import pickle
import random
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from ccbt_engine import merkle
from ccbt_engine.metainfo import FileEntry, TorrentInfo
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from ccbt_engine.storage.layout import PieceLayout
from tests.unit.test_storage_layout import build_torrent, sized

MiB = 1024 * 1024


async def write_pieces(
    st: TorrentStorage,
    space: bytes,
    pieces: list[int] | None = None,
    block: int = 7,
    shuffle: bool = True,
) -> None:
    """Write ``pieces`` of ``space`` in blocks of ``block`` bytes, in random order."""
    info = st.info
    todo = []
    for p in range(info.num_pieces) if pieces is None else pieces:
        base = p * info.piece_length
        for b in range(0, info.piece_size(p), block):
            n = min(block, info.piece_size(p) - b)
            todo.append((p, b, space[base + b : base + b + n]))
    if shuffle:
        random.Random(4).shuffle(todo)
    for p, b, d in todo:
        await st.write_block(p, b, memoryview(d))


def disk_bytes(info: TorrentInfo, root: Path) -> bytes:
    """The piece space as found on disk (pad bytes as zeros)."""
    out = bytearray()
    for f in info.files:
        out += bytes(f.length) if f.is_pad else root.joinpath(*f.path).read_bytes()
    return bytes(out)


async def test_round_trip_across_file_boundaries(tmp_path: Path) -> None:
    info, space = build_torrent(sized(10, 5, 30, 1, 0, 17), 16)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    assert st.cached_bytes == len(space)
    for p in range(info.num_pieces):
        assert await st.read_piece(p) == space[p * 16 : p * 16 + info.piece_size(p)]  # cache
        assert await st.hash_piece(p)
    assert st.cached_bytes == 0
    await st.create_empty_files()
    await st.close()
    assert disk_bytes(info, tmp_path) == space
    assert (tmp_path / "t" / "f4").stat().st_size == 0
    for p in range(info.num_pieces):  # from disk now
        assert await st.read_block(p, 3, 9) == space[p * 16 + 3 : p * 16 + 12]
    await st.close()


async def test_pad_bytes_are_zero_and_never_on_disk(tmp_path: Path) -> None:
    info, space = build_torrent(sized(10, 20), 16, pad=True)
    st = TorrentStorage(info, tmp_path, preallocate="none")
    garbage = bytearray(space)
    garbage[10:16] = b"PADPAD"  # a peer sending junk as pad bytes
    await write_pieces(st, bytes(garbage))
    assert await st.read_block(0, 8, 8) == space[8:16]
    assert await st.hash_piece(0) and await st.hash_piece(1) and await st.hash_piece(2)
    await st.close()
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["f0", "f1"]
    assert not (tmp_path / ".pad").exists()
    assert await st.read_piece(0) == space[:16]


@pytest.mark.parametrize("version", ["v2", "hybrid"])
async def test_v2_and_hybrid_hashing(tmp_path: Path, version: str) -> None:
    plen = merkle.BLOCK_SIZE * 2
    files = sized(3 * plen + 1000, 100, 0, plen, 2 * merkle.BLOCK_SIZE + 5)
    info, space = build_torrent(files, plen, version=version)  # type: ignore[arg-type]
    assert bool(info.piece_hashes) == (version == "hybrid")
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space, block=merkle.BLOCK_SIZE)
    assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
    await st.create_empty_files()
    await st.close()
    assert disk_bytes(info, tmp_path) == space
    # corrupt one byte of the big file's last piece and of the small file, on disk
    big, small = tmp_path / "t" / "f0", tmp_path / "t" / "f1"
    with big.open("r+b") as fh:
        fh.seek(3 * plen + 999)
        fh.write(b"\xff")
    small.write_bytes(b"\x00" + small.read_bytes()[1:])
    results = [await st.hash_piece(p) for p in range(info.num_pieces)]
    assert results == [True, True, True, False, False, True, True, True]
    await st.close()


async def test_v2_missing_piece_layer_is_not_verified(tmp_path: Path) -> None:
    plen = merkle.BLOCK_SIZE
    info, space = build_torrent(sized(3 * plen), plen, version="v2")
    bare = TorrentInfo(**{f: getattr(info, f) for f in info.__slots__ if f != "piece_layers"})
    st = TorrentStorage(bare, tmp_path)
    await write_pieces(st, space, block=plen)
    assert not await st.hash_piece(0)
    await st.close()


async def test_failed_piece_from_cache_never_reaches_disk(tmp_path: Path) -> None:
    info, space = build_torrent(sized(64), 32)
    st = TorrentStorage(info, tmp_path, preallocate="none")
    bad = bytearray(space)
    bad[3] ^= 1
    await write_pieces(st, bytes(bad), pieces=[0])
    assert not await st.hash_piece(0)
    assert st.cached_bytes == 0
    assert not (tmp_path / "t" / "f0").exists()
    await write_pieces(st, space, pieces=[0])
    assert await st.hash_piece(0)
    assert (tmp_path / "t" / "f0").read_bytes() == space[:32]
    await st.close()


async def test_cache_pressure_writes_behind(tmp_path: Path) -> None:
    info, space = build_torrent(sized(5000, 3000), 256)
    st = TorrentStorage(info, tmp_path, write_cache_bytes=1000)
    await write_pieces(st, space, block=64)
    assert st.cached_bytes <= 1000 + 64
    assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
    await st.close()
    assert disk_bytes(info, tmp_path) == space


@pytest.mark.parametrize("mode", ["none", "sparse", "full"])
async def test_preallocation_modes(tmp_path: Path, mode: str) -> None:
    info, space = build_torrent(sized(64 * 1024, 1000), 16 * 1024)
    st = TorrentStorage(info, tmp_path, preallocate=mode)  # type: ignore[arg-type]
    await write_pieces(st, space, pieces=[0], block=16 * 1024)
    await st.flush()
    f0 = (tmp_path / "t" / "f0").stat()
    assert f0.st_size == (16 * 1024 if mode == "none" else 64 * 1024)
    if mode == "full":
        assert f0.st_blocks * 512 >= 64 * 1024
    assert not (tmp_path / "t" / "f1").exists()  # never touched yet
    await st.close()


async def test_skipped_file_never_on_disk_boundary_bytes_in_part_file(tmp_path: Path) -> None:
    # pieces of 64: A [0,100) B [100,400) C [400,500)
    info, space = build_torrent(sized(100, 300, 100), 64)
    lay = PieceLayout(info)
    prios = [1, 0, 1]
    st = TorrentStorage(info, tmp_path, preallocate="sparse")
    st.set_file_priorities(prios)
    wanted = [p for p, pr in enumerate(lay.piece_priorities(prios)) if pr]
    assert wanted == [0, 1, 6, 7]  # 1 and 6 are boundary pieces shared with B
    await write_pieces(st, space, pieces=wanted)
    assert all([await st.hash_piece(p) for p in wanted])
    await st.close()
    parts = tmp_path / f".{info.info_hash.hex()}.parts"
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["f0", "f2"]
    assert parts.is_file()
    assert (tmp_path / "t" / "f0").read_bytes() == space[:100]
    assert (tmp_path / "t" / "f2").read_bytes() == space[400:]

    # a restarted session finds the boundary bytes again (recheck and seeding)
    st = TorrentStorage(info, tmp_path)
    st.set_file_priorities(prios)
    assert await st.read_piece(1) == space[64:128]
    assert [await st.check_piece(p) for p in wanted] == [True] * 4
    assert not await st.check_piece(3)

    # un-skip B: its boundary bytes move into B, the rest downloads, the part file goes away
    st.set_file_priorities([1, 1, 1])
    await write_pieces(st, space, pieces=[2, 3, 4, 5])
    assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
    await st.close()
    assert disk_bytes(info, tmp_path) == space
    assert not parts.exists()


async def test_unskip_exports_on_flush_and_reskip_keeps_part(tmp_path: Path) -> None:
    info, space = build_torrent(sized(100, 300, 100), 64)
    st = TorrentStorage(info, tmp_path)
    st.set_file_priorities([1, 0, 1])
    await write_pieces(st, space, pieces=[0, 1, 6, 7])
    await st.flush()
    st.set_file_priorities([1, 1, 1])
    st.set_file_priorities([1, 0, 1])  # changed their mind before anything moved
    await st.flush()
    assert not (tmp_path / "t" / "f1").exists()
    assert await st.hash_piece(1) and await st.hash_piece(6)
    st.set_file_priorities([0, 1, 0])  # now only B: A's and C's data stay in their files
    await st.flush()
    b = (tmp_path / "t" / "f1").read_bytes()
    assert b[:28] == space[100:128] and b[284:] == space[384:400]
    assert await st.hash_piece(1) and await st.hash_piece(6)
    assert await st.read_piece(7) == space[448:]
    await st.delete_files()
    assert list(tmp_path.iterdir()) == []


async def test_skipped_file_already_on_disk_stays_in_use(tmp_path: Path) -> None:
    info, space = build_torrent(sized(100, 300, 100), 64)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
    st.set_file_priorities([1, 0, 1])
    await write_pieces(st, space, pieces=[1])
    assert await st.hash_piece(1)
    await st.close()
    assert not (tmp_path / f".{info.info_hash.hex()}.parts").exists()
    assert disk_bytes(info, tmp_path) == space


async def test_fully_skipped_file_is_never_created(tmp_path: Path) -> None:
    info, space = build_torrent(sized(64, 128, 64), 64)
    st = TorrentStorage(info, tmp_path)
    st.set_file_priorities([1, 0, 1])
    wanted = [p for p, pr in enumerate(st.layout.piece_priorities([1, 0, 1])) if pr]
    assert wanted == [0, 3]
    await write_pieces(st, space, pieces=wanted)
    assert await st.hash_piece(0) and await st.hash_piece(3)
    await st.create_empty_files()
    await st.close()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["f0", "f2", "t"]  # no part file
    with pytest.raises(ValueError):
        st.set_file_priorities([1, 0])


async def test_error_is_clear_and_retryable(tmp_path: Path) -> None:
    info, space = build_torrent(sized(40, 40), 32)
    (tmp_path / "t").write_bytes(b"I am a file where a folder should be")
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    with pytest.raises(StorageError) as caught:
        await st.hash_piece(0)
    err = caught.value
    assert err.operation == "open"
    assert err.errno in (errno.EEXIST, errno.ENOTDIR)
    assert err.path == str(tmp_path / "t" / "f0")
    assert str(err).endswith(f"while opening {tmp_path / 't' / 'f0'}")
    assert st.cached_bytes == len(space)  # nothing lost
    (tmp_path / "t").unlink()  # the user fixes it
    assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
    await st.close()
    assert disk_bytes(info, tmp_path) == space


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("mode", ["sparse", "full"])
async def test_disk_full_then_retry(tiny_tmpfs: Path, mode: str) -> None:
    plen = 256 * 1024
    info, space = build_torrent(sized(2 * MiB), plen)
    st = TorrentStorage(info, tiny_tmpfs, preallocate=mode)  # type: ignore[arg-type]
    await write_pieces(st, space, block=64 * 1024, shuffle=False)
    with pytest.raises(StorageError) as caught:
        for p in range(info.num_pieces):
            assert await st.hash_piece(p)
    err = caught.value
    assert err.errno == errno.ENOSPC
    assert err.operation == ("allocate" if mode == "full" else "write")
    verb = "allocating" if mode == "full" else "writing"
    assert str(err) == f"No space left on device while {verb} {tiny_tmpfs / 't' / 'f0'}"
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_tmpfs)], check=True)
    for p in range(info.num_pieces):  # the very same storage carries on
        assert await st.hash_piece(p)
    await st.close()
    assert disk_bytes(info, tiny_tmpfs) == space


async def test_path_outside_save_folder_refused(tmp_path: Path) -> None:
    evil = TorrentInfo(
        name="x",
        piece_length=16,
        files=(FileEntry(("..", "escaped"), 16, 0),),
        total_length=16,
        private=False,
        info_hash_v1=b"\x01" * 20,
        info_hash_v2=None,
        raw_info=b"",
        piece_hashes=(b"\x00" * 20,),
    )
    save = tmp_path / "save"
    st = TorrentStorage(evil, save)
    await st.write_block(0, 0, b"A" * 16)
    with pytest.raises(StorageError) as caught:
        await st.flush()
    assert caught.value.errno == errno.EPERM and "outside the download folder" in str(caught.value)
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(StorageError):  # reads too (a fresh storage: no cached copy)
        await TorrentStorage(evil, save).read_block(0, 0, 4)


async def test_symlink_out_of_save_folder_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    save = tmp_path / "save"
    save.mkdir()
    (save / "t").symlink_to(outside)
    info, space = build_torrent(sized(16), 16)
    st = TorrentStorage(info, save)
    await write_pieces(st, space)
    with pytest.raises(StorageError):
        await st.hash_piece(0)
    assert list(outside.iterdir()) == []


async def test_handle_pool_is_bounded(tmp_path: Path) -> None:
    info, space = build_torrent(sized(*([10, 3, 0, 25] * 75)), 64)
    assert len(info.files) == 300
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
    st = TorrentStorage(info, tmp_path, max_open_files=8, executor=pool, write_cache_bytes=500)
    await write_pieces(st, space, block=16)
    oks = await asyncio.gather(*(st.hash_piece(p) for p in range(info.num_pieces)))
    assert all(oks)
    reads = await asyncio.gather(*(st.read_piece(p) for p in range(info.num_pieces)))
    assert b"".join(reads) == space
    assert st.file_pool.peak <= 8
    assert 0 < st.file_pool.open_count <= 8
    await st.close()
    assert st.file_pool.open_count == 0
    pool.shutdown()


async def test_missing_file_read_is_storage_error(tmp_path: Path) -> None:
    info, space = build_torrent(sized(20, 20), 16)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    await st.flush()
    await st.close()
    (tmp_path / "t" / "f1").unlink()
    assert await st.read_block(0, 0, 16) == space[:16]
    with pytest.raises(StorageError) as caught:
        await st.read_block(1, 0, 16)
    assert caught.value.errno == errno.ENOENT and caught.value.operation == "open"
    with pytest.raises(StorageError):
        await st.hash_piece(2)
    await st.close()


async def test_short_file_read_is_storage_error(tmp_path: Path) -> None:
    info, space = build_torrent(sized(40), 16)
    st = TorrentStorage(info, tmp_path, preallocate="none")
    await write_pieces(st, space)
    await st.close()
    os.truncate(tmp_path / "t" / "f0", 20)
    with pytest.raises(StorageError) as caught:
        await st.read_block(1, 0, 16)
    assert caught.value.operation == "read" and "shorter" in str(caught.value)
    await st.close()


async def test_delete_files_removes_only_what_it_made(tmp_path: Path) -> None:
    files = [(("t", "a", "x"), b"1" * 20), (("t", "b", "c", "y"), b"2" * 20), (("t", "z"), b"3")]
    info, space = build_torrent(files, 16)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    await st.flush()
    (tmp_path / "t" / "a" / "users-notes.txt").write_text("keep me")
    (tmp_path / "unrelated").write_text("keep")
    await st.delete_files()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "t",
        "t/a",
        "t/a/users-notes.txt",
        "unrelated",
    ]
    await st.delete_files()  # already gone: fine


async def test_read_only_handle_upgraded_for_writing(tmp_path: Path) -> None:
    info, space = build_torrent(sized(32), 16)
    st = TorrentStorage(info, tmp_path)
    await write_pieces(st, space)
    await st.flush()
    await st.close()
    assert await st.read_block(0, 0, 16) == space[:16]  # opens read-only
    await st.write_block(1, 0, b"Z" * 16)
    await st.flush()  # needs a writable descriptor now
    await st.close()
    assert (tmp_path / "t" / "f0").read_bytes() == space[:16] + b"Z" * 16


async def test_bad_arguments(tmp_path: Path) -> None:
    info, _ = build_torrent(sized(20), 16)
    st = TorrentStorage(info, tmp_path)
    with pytest.raises(IndexError):
        await st.write_block(5, 0, b"x")
    with pytest.raises(ValueError):
        await st.write_block(1, 2, b"xxx")
    with pytest.raises(ValueError):
        await st.read_block(0, 10, 7)
    with pytest.raises(ValueError):
        TorrentStorage(info, tmp_path, preallocate="bogus")  # type: ignore[arg-type]


def test_file_progress(tmp_path: Path) -> None:
    info, _ = build_torrent(sized(10, 40, 0, 14), 16)  # 64 bytes: 4 pieces
    st = TorrentStorage(info, tmp_path)
    assert st.file_progress([False] * 4) == [0, 0, 0, 0]
    assert st.file_progress([True] * 4) == [10, 40, 0, 14]
    assert st.file_progress([True, False, True, False]) == [10, 6 + 16, 0, 0]
    assert st.file_progress([False, True, False, True]) == [0, 16 + 2, 0, 14]


@pytest.mark.parametrize("has_pread", [True, False])
async def test_fallback_positional_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_pread: bool
) -> None:
    """Without pwritev/preadv (macOS < 11) or without pread at all (Windows) I/O still works."""
    from ccbt_engine.storage import files as files_mod

    monkeypatch.setattr(files_mod, "_HAVE_PWRITEV", False)
    monkeypatch.setattr(files_mod, "_HAVE_PREADV", False)
    monkeypatch.setattr(files_mod, "_HAVE_PREAD", has_pread)
    info, space = build_torrent(sized(100, 300, 100), 64)
    st = TorrentStorage(info, tmp_path, write_cache_bytes=100)
    st.set_file_priorities([1, 0, 1])
    await write_pieces(st, space, block=5)
    assert all(await asyncio.gather(*(st.hash_piece(p) for p in range(info.num_pieces))))
    assert b"".join([await st.read_piece(p) for p in range(info.num_pieces)]) == space
    await st.close()


async def test_cancelled_hash_does_not_break_the_piece(tmp_path: Path) -> None:
    """A caller cancelled mid-write: the piece stays guarded until the thread is done."""
    info, space = build_torrent(sized(64), 32)
    st = TorrentStorage(info, tmp_path)
    entered, release = threading.Event(), threading.Event()
    original = st._write_sync

    def slow_write(piece: int, blocks: list[tuple[int, bytes]]) -> None:
        entered.set()
        release.wait(5)
        original(piece, blocks)

    st._write_sync = slow_write  # type: ignore[method-assign]
    await write_pieces(st, space, pieces=[0])
    task = asyncio.create_task(st.hash_piece(0))
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 5)
    task.cancel()
    reader = asyncio.create_task(st.read_block(0, 0, 32))
    await asyncio.sleep(0.05)
    assert not task.done() and not reader.done()  # both wait for the thread
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await reader == space[:32]
    st._write_sync = original  # type: ignore[method-assign]
    assert await st.hash_piece(0)
    await st.close()
    assert (tmp_path / "t" / "f0").read_bytes()[:32] == space[:32]


async def test_foreign_part_file_is_ignored(tmp_path: Path) -> None:
    info, space = build_torrent(sized(100, 300, 100), 64)
    parts = tmp_path / f".{info.info_hash.hex()}.parts"
    parts.write_bytes(b"not a part file at all" * 100)
    st = TorrentStorage(info, tmp_path)
    st.set_file_priorities([1, 0, 1])
    with pytest.raises(StorageError) as caught:  # no slot for piece 1 in there
        await st.read_block(1, 40, 10)
    assert caught.value.errno == errno.ENOENT and "skipped file" in str(caught.value)
    await write_pieces(st, space, pieces=[1])
    assert await st.hash_piece(1)
    await st.close()
    assert parts.read_bytes().startswith(b"CCBTPRT1")


def test_storage_error_wrapping() -> None:
    raw = OSError(errno.ENOSPC, "No space left on device")
    err = StorageError.from_oserror(raw, "/x/y", "write")
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert str(err) == "No space left on device while writing /x/y"
    assert StorageError.from_oserror(err, "/other", "read") is err
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.operation, str(back)) == ("/x/y", "write", str(err))
    bare = StorageError.from_oserror(OSError("weird"), "/z", "read")
    assert bare.errno == errno.EIO and "while reading /z" in str(bare)


@settings(max_examples=40, deadline=None)
@given(
    sizes=hst.lists(hst.integers(0, 90), min_size=1, max_size=6).filter(any),
    piece_length=hst.sampled_from([16, 32]),
    pad=hst.booleans(),
    data=hst.data(),
)
def test_property_skip_then_unskip_round_trip(
    sizes: list[int], piece_length: int, pad: bool, data: hst.DataObject
) -> None:
    """Any layout and any skip pattern: wanted pieces verify, skipped files stay off disk,
    and after un-skipping everything the disk holds exactly the torrent."""
    info, space = build_torrent(sized(*sizes), piece_length, pad=pad)
    prios = [0 if f.is_pad else data.draw(hst.integers(0, 2)) for f in info.files]
    cache = data.draw(hst.sampled_from([0, 40, 16 * MiB]))
    restart = data.draw(hst.booleans())

    async def scenario(root: Path) -> None:
        st = TorrentStorage(info, root, write_cache_bytes=cache)
        st.set_file_priorities(prios)
        wanted = [p for p, pr in enumerate(st.layout.piece_priorities(prios)) if pr]
        await write_pieces(st, space, pieces=wanted, block=5)
        assert all([await st.hash_piece(p) for p in wanted])
        for p in wanted:
            start = p * piece_length
            assert await st.read_piece(p) == space[start : start + info.piece_size(p)]
        await st.close()
        for i, f in enumerate(info.files):
            if prios[i] == 0:
                assert not root.joinpath(*f.path).exists()
        if restart:  # a new session finds everything, then un-skips
            st = TorrentStorage(info, root, write_cache_bytes=cache)
            st.set_file_priorities(prios)
            assert all([await st.check_piece(p) for p in wanted])
        st.set_file_priorities([1] * len(info.files))
        rest = [p for p in range(info.num_pieces) if p not in wanted]
        await write_pieces(st, space, pieces=rest, block=5)
        assert all([await st.hash_piece(p) for p in range(info.num_pieces)])
        await st.create_empty_files()
        await st.close()
        assert disk_bytes(info, root) == space
        assert not (root / f".{info.info_hash.hex()}.parts").exists()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp)))
