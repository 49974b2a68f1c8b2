"""Direct writes (storage/direct.py): the split into cached head/tail and direct middle, the
bounce buffer, the file-system allowlist, and TorrentStorage writing through them for real."""

from __future__ import annotations

import errno
import itertools
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from ccbt_engine.storage import direct, files
from ccbt_engine.storage.direct import (
    ALIGN,
    DIRECT_MIN,
    all_aligned,
    page_aligned,
    parse_mountinfo,
    plan_direct,
)
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from tests.unit.test_storage_files import disk_bytes, write_pieces
from tests.unit.test_storage_layout import build_torrent

MiB = 1024 * 1024


@settings(max_examples=300, deadline=None)
@given(offset=hst.integers(0, 1 << 40), length=hst.integers(0, 8 * MiB))
def test_plan_keeps_the_direct_middle_aligned(offset: int, length: int) -> None:
    plan = plan_direct(offset, length)
    if plan is None:
        assert length < DIRECT_MIN or length - (-offset % ALIGN) < DIRECT_MIN // 2 + ALIGN
        return
    head, middle = plan
    assert 0 <= head < ALIGN and (offset + head) % ALIGN == 0
    assert middle % ALIGN == 0 and middle >= DIRECT_MIN // 2
    assert 0 <= length - head - middle < ALIGN  # the cached tail is under one block


@settings(max_examples=200, deadline=None)
@given(
    sizes=hst.lists(hst.integers(0, 3 * ALIGN), min_size=1, max_size=8),
    cut=hst.tuples(hst.integers(0, 30_000), hst.integers(0, 30_000)),
)
def test_head_middle_tail_cut_loses_no_byte(sizes: list[int], cut: tuple[int, int]) -> None:
    """The three-way cut _write_direct makes of a slice's views (with the storage's _cut)."""
    rng = random.Random(sum(sizes))
    views = [memoryview(rng.randbytes(n)) for n in sizes]
    starts = list(itertools.accumulate((len(v) for v in views), initial=0))
    total = starts.pop()
    whole = b"".join(views)
    head = min(cut[0], total)
    middle = min(cut[1], total - head)
    parts = [(0, head), (head, middle), (head + middle, total - head - middle)]
    got = [b"".join(files._cut(views, starts, off, n)) for off, n in parts]
    assert got == [whole[:head], whole[head : head + middle], whole[head + middle :]]


def test_only_page_aligned_whole_blocks_go_direct() -> None:
    view = page_aligned(bytearray(5 * ALIGN), 4 * ALIGN)
    assert len(view) == 4 * ALIGN
    assert all_aligned([view[: 2 * ALIGN], view[2 * ALIGN :]])
    assert not all_aligned([view[1 : ALIGN + 1]])  # off the page grid
    assert not all_aligned([view[: ALIGN + 512]])  # not whole blocks
    assert not all_aligned([memoryview(bytes(ALIGN))])  # read-only: address unknown


def test_mountinfo_parsing_and_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "30 22 0:40 / /mnt/my\\040nas rw - nfs4 server:/export rw\n"
        "31 22 0:41 / /home/u/.cache/x rw - fuse.sshfs host: rw\n"
        "32 22 0:42 / /tmp rw - tmpfs tmpfs rw\n"
        "garbage line\n"
    )
    mounts = parse_mountinfo(text)
    assert mounts[-1] == ("/", "ext4")
    assert ("/mnt/my nas", "nfs4") in mounts
    monkeypatch.setattr(direct, "HAVE_O_DIRECT", True)
    assert direct.direct_file_system("/home/u/Downloads/new/folder/file.bin", mounts)
    assert not direct.direct_file_system("/mnt/my nas/films/a.mkv", mounts)
    assert not direct.direct_file_system("/home/u/.cache/x/y", mounts)
    assert not direct.direct_file_system("/tmp/dl", mounts)
    assert direct.direct_file_system("/tmpfoo/dl", mounts)  # a name prefix is not the mount
    if os.path.exists("/proc/self/mountinfo"):  # the real table has a root
        assert any(point == "/" for point, _ in direct.mount_table())


def _o_direct_works(folder: Path) -> bool:
    if not direct.HAVE_O_DIRECT:
        return False
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_DIRECT))
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


class DirectSpy:
    """Counts the bytes TorrentStorage writes through its O_DIRECT descriptors."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fds: set[int] = set()
        self.direct_bytes = 0
        self.cached_bytes = 0
        real_open, real_write = direct.open_direct, files.write_all_at

        def open_direct(fd: int) -> int:
            dfd = real_open(fd)
            self.fds.add(dfd)
            return dfd

        def write_all_at(fd: int, views: list[memoryview], offset: int) -> None:
            n = sum(len(v) for v in views)
            if fd in self.fds:
                self.direct_bytes += n
            else:
                self.cached_bytes += n
            real_write(fd, views, offset)

        monkeypatch.setattr(files, "open_direct", open_direct)
        monkeypatch.setattr(files, "write_all_at", write_all_at)
        monkeypatch.setattr(files, "direct_file_system", lambda path, mounts: True)


@pytest.fixture
def direct_dir(tmp_path: Path) -> Path:
    if not _o_direct_works(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    return tmp_path


def _payload(sizes: list[int]) -> list[tuple[tuple[str, ...], bytes]]:
    rng = random.Random(len(sizes))
    return [(("t", f"f{i}"), rng.randbytes(n)) for i, n in enumerate(sizes)]


async def _store_all(st: TorrentStorage, space: bytes, folder: Path) -> None:
    """Receive every piece in 16 KiB blocks, verify and write each, and check the disk."""
    await write_pieces(st, space, block=16 * 1024)
    for p in range(st.info.num_pieces):
        assert await st.hash_piece(p)
    await st.close()
    assert disk_bytes(st.info, folder) == space


@pytest.mark.parametrize("pad", [False, True])
async def test_pieces_reach_disk_intact_with_most_bytes_direct(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch, pad: bool
) -> None:
    # files starting off the 4 KiB grid (unless padded), a 1-byte file, a short last piece
    sizes = [MiB + 123, 3 * MiB + 7, 1, 2 * MiB - 5000, 700_000]
    info, space = build_torrent(_payload(sizes), MiB, pad=pad)
    spy = DirectSpy(monkeypatch)
    st = TorrentStorage(info, direct_dir)
    await _store_all(st, space, direct_dir)
    real = sum(sizes)
    assert spy.direct_bytes + spy.cached_bytes == real
    if pad:  # every file on the grid: all but the files' last partial blocks go direct
        assert spy.direct_bytes > 0.98 * real, (spy.direct_bytes, spy.cached_bytes)
    else:  # only the first file starts on the grid; the piece holding its end is mostly others'
        assert spy.direct_bytes == MiB
    for p in range(info.num_pieces):  # and read back through the cache, as seeding does
        assert await st.read_piece(p) == space[p * MiB : p * MiB + info.piece_size(p)]
    await st.close()


async def test_cached_mode_never_opens_a_direct_descriptor(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, space = build_torrent(_payload([3 * MiB]), MiB)
    spy = DirectSpy(monkeypatch)
    st = TorrentStorage(info, direct_dir, write_mode="cached")
    await _store_all(st, space, direct_dir)
    assert not spy.fds and spy.direct_bytes == 0


async def test_small_pieces_stay_cached(direct_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info, space = build_torrent(_payload([MiB]), 64 * 1024)
    spy = DirectSpy(monkeypatch)
    st = TorrentStorage(info, direct_dir)
    await _store_all(st, space, direct_dir)
    assert spy.direct_bytes == 0


@pytest.mark.parametrize("where", ["open", "write"])
async def test_refused_direct_io_falls_back_without_losing_data(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    info, space = build_torrent(_payload([2 * MiB, MiB + 4096]), MiB)
    spy = DirectSpy(monkeypatch)
    refused: list[int] = []
    spied_write = files.write_all_at

    def refuse_open(fd: int) -> int:
        refused.append(fd)
        raise OSError(errno.EINVAL, "Invalid argument")

    def refuse_direct_write(fd: int, views: list[memoryview], offset: int) -> None:
        if fd in spy.fds:
            refused.append(fd)
            spied_write(fd, [views[0][: ALIGN // 2]], offset)  # part of it lands, then EINVAL
            raise OSError(errno.EINVAL, "Invalid argument")
        spied_write(fd, views, offset)

    if where == "open":
        monkeypatch.setattr(files, "open_direct", refuse_open)
    else:
        monkeypatch.setattr(files, "write_all_at", refuse_direct_write)
    st = TorrentStorage(info, direct_dir)
    await _store_all(st, space, direct_dir)
    assert refused
    assert len(refused) <= len(info.files)  # once refused, a file is not tried again


async def test_other_write_errors_still_surface(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, space = build_torrent(_payload([2 * MiB]), MiB)
    spy = DirectSpy(monkeypatch)
    spied_write = files.write_all_at

    def full_disk(fd: int, views: list[memoryview], offset: int) -> None:
        if fd in spy.fds:
            raise OSError(errno.ENOSPC, "No space left on device")
        spied_write(fd, views, offset)

    monkeypatch.setattr(files, "write_all_at", full_disk)
    st = TorrentStorage(info, direct_dir)
    await write_pieces(st, space, block=16 * 1024)
    with pytest.raises(StorageError) as err:
        await st.hash_piece(0)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.setattr(files, "write_all_at", spied_write)  # space freed: the retry works
    assert await st.hash_piece(0) and await st.hash_piece(1)
    await st.close()
    assert disk_bytes(info, direct_dir) == space


def test_bad_write_mode(tmp_path: Path) -> None:
    info, _ = build_torrent(_payload([10]), 16 * 1024)
    with pytest.raises(ValueError, match="write_mode"):
        TorrentStorage(info, tmp_path, write_mode="fast")  # type: ignore[arg-type]
