"""Piece ↔ file layout: slices, ranges and priorities over every kind of torrent shape.

Also home of :func:`build_torrent`, the hand-built TorrentInfo the storage tests share (the
metainfo parser is not used here on purpose: these tests pin the storage contract alone).
"""

from __future__ import annotations

import hashlib
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine import merkle
from ccbt_engine.metainfo import FileEntry, TorrentInfo
from ccbt_engine.storage.layout import FileSlice, PieceLayout

Version = Literal["v1", "v2", "hybrid"]


def build_torrent(
    files: list[tuple[tuple[str, ...], bytes]],
    piece_length: int,
    *,
    version: Version = "v1",
    pad: bool = False,
) -> tuple[TorrentInfo, bytes]:
    """A TorrentInfo for ``files`` plus the bytes of its whole piece space (pads as zeros).

    v2 and hybrid torrents (and v1 with ``pad=True``) align each non-empty file to a piece
    boundary with pad entries, as the metainfo parser does for v2.
    """
    align = pad or version != "v1"
    entries: list[FileEntry] = []
    space = bytearray()
    layers: dict[bytes, bytes] = {}
    real = [i for i, (_, d) in enumerate(files) if d]
    for i, (path, data) in enumerate(files):
        root = None
        if version != "v1" and data:
            if len(data) > piece_length:
                layer = [
                    merkle.piece_hash_v2(data[o : o + piece_length], piece_length)
                    for o in range(0, len(data), piece_length)
                ]
                root = merkle.file_root(layer, piece_length)
                layers[root] = b"".join(layer)
            else:
                root = merkle.small_file_root(data)
        entries.append(FileEntry(path, len(data), len(space), pieces_root=root))
        space += data
        gap = -len(space) % piece_length
        if align and data and gap and i != real[-1]:
            entries.append(FileEntry((".pad", str(gap)), gap, len(space), attr="p"))
            space += bytes(gap)
    hashes: tuple[bytes, ...] = ()
    if version != "v2":
        hashes = tuple(
            hashlib.sha1(space[o : o + piece_length]).digest()
            for o in range(0, len(space), piece_length)
        )
    info = TorrentInfo(
        name=files[0][0][0],
        piece_length=piece_length,
        files=tuple(entries),
        total_length=len(space),
        private=False,
        info_hash_v1=None if version == "v2" else hashlib.sha1(bytes(space)).digest(),
        info_hash_v2=None if version == "v1" else hashlib.sha256(bytes(space)).digest(),
        raw_info=b"",
        piece_hashes=hashes,
        piece_layers=layers,
        meta_version=1 if version == "v1" else 2,
    )
    return info, bytes(space)


def sized(*sizes: int) -> list[tuple[tuple[str, ...], bytes]]:
    """Files t/f0, t/f1 … of the given sizes with distinct, non-zero content."""
    return [
        (("t", f"f{i}"), bytes((i * 7 + j) % 251 + 1 for j in range(n)))
        for i, n in enumerate(sizes)
    ]


def test_single_file() -> None:
    info, _ = build_torrent([(("one.bin",), bytes(100))], 32)
    lay = PieceLayout(info)
    assert lay.num_pieces == 4
    assert lay.slices(0, 0, 32) == [FileSlice(0, 0, 32)]
    assert lay.slices(3, 0, 4) == [FileSlice(0, 96, 4)]
    assert lay.slices(1, 5, 10) == [FileSlice(0, 37, 10)]
    assert lay.file_piece_range(0) == (0, 3)
    assert lay.piece_file_range(2) == (0, 0)


def test_block_spanning_three_files() -> None:
    info, _ = build_torrent(sized(10, 5, 30), 16)
    lay = PieceLayout(info)
    got = lay.slices(0, 0, 16)
    assert got == [FileSlice(0, 0, 10), FileSlice(1, 0, 5), FileSlice(2, 0, 1)]
    assert [s.buffer_offset for s in got] == [0, 10, 15]
    assert lay.slices(0, 8, 8) == [FileSlice(0, 8, 2), FileSlice(1, 0, 5), FileSlice(2, 0, 1)]
    assert lay.slices(2, 0, 13) == [FileSlice(2, 17, 13)]
    assert lay.piece_file_range(0) == (0, 2)
    assert [lay.file_piece_range(i) for i in range(3)] == [(0, 0), (0, 0), (0, 2)]


def test_pad_files_are_never_sliced() -> None:
    info, _ = build_torrent(sized(10, 20), 16, pad=True)
    assert [f.is_pad for f in info.files] == [False, True, False]
    lay = PieceLayout(info)
    only_data = lay.slices(0, 0, 16)
    assert only_data == [FileSlice(0, 0, 10)]
    assert lay.slices(0, 10, 6) == []
    assert lay.piece_file_range(0) == (0, 0)
    assert lay.piece_file_range(1) == (2, 2)
    assert lay.slices(2, 0, 4) == [FileSlice(2, 16, 4)]


def test_empty_files_touch_no_piece() -> None:
    info, _ = build_torrent(sized(5, 0, 0, 7), 16)
    lay = PieceLayout(info)
    assert lay.slices(0, 0, 12) == [FileSlice(0, 0, 5), FileSlice(3, 0, 7)]
    first, last = lay.file_piece_range(1)
    assert list(range(first, last + 1)) == []
    assert lay.piece_priorities([1, 7, 7, 0]) == [1]
    assert lay.piece_priorities([0, 7, 7, 0]) == [0]


def test_empty_file_at_the_end_and_start() -> None:
    info, _ = build_torrent(sized(0, 16, 0), 16)
    lay = PieceLayout(info)
    assert lay.slices(0, 0, 16) == [FileSlice(1, 0, 16)]
    assert lay.file_piece_range(2) == (1, 0)


def test_v2_implicit_pads() -> None:
    plen = merkle.BLOCK_SIZE  # v2 pieces are at least one 16 KiB block
    info, _ = build_torrent(sized(40000, 3, plen, 5), plen, version="v2")
    lay = PieceLayout(info)
    data_files = [i for i, f in enumerate(info.files) if not f.is_pad]
    assert len(data_files) == 4 and len(info.files) == 6
    for i in data_files:
        assert info.files[i].offset % plen == 0
    # every piece belongs to exactly one data file
    owners = []
    for p in range(lay.num_pieces):
        first, last = lay.piece_file_range(p)
        assert first == last and first in data_files
        owners.append(first)
    assert owners == [0, 0, 0, 2, 4, 5]
    assert lay.slices(2, 0, plen) == [FileSlice(0, 2 * plen, 40000 - 2 * plen)]


def test_piece_priorities_max_of_touching_files() -> None:
    info, _ = build_torrent(sized(20, 20, 20), 16)  # pieces: [0,16) [16,32) [32,48) [48,60)
    lay = PieceLayout(info)
    assert lay.piece_priorities([1, 0, 0]) == [1, 1, 0, 0]
    assert lay.piece_priorities([0, 4, 0]) == [0, 4, 4, 0]
    assert lay.piece_priorities([7, 0, 2]) == [7, 7, 2, 2]
    assert lay.piece_priorities([1, 6, 2]) == [1, 6, 6, 2]
    assert lay.exclusive_pieces([True, False, False]) == [False, False, True, True]
    with pytest.raises(ValueError):
        lay.piece_priorities([1, 2])
    with pytest.raises(ValueError):
        lay.piece_priorities([1, 8, 1])


def test_pads_do_not_raise_priority() -> None:
    info, _ = build_torrent(sized(10, 20), 16, pad=True)
    lay = PieceLayout(info)
    assert lay.piece_priorities([0, 5, 1]) == [0, 1, 1]
    assert lay.exclusive_pieces([False, True, True]) == [True, False, False]


def test_bad_ranges() -> None:
    info, _ = build_torrent(sized(20), 16)
    lay = PieceLayout(info)
    with pytest.raises(IndexError):
        lay.slices(2, 0, 1)
    with pytest.raises(ValueError):
        lay.slices(1, 0, 5)  # last piece is 4 bytes
    with pytest.raises(ValueError):
        lay.slices(0, -1, 2)


def test_inconsistent_files_refused() -> None:
    info, _ = build_torrent(sized(20, 5), 16)
    broken = TorrentInfo(
        name="t",
        piece_length=16,
        files=(info.files[0], FileEntry(("t", "x"), 5, 21)),
        total_length=26,
        private=False,
        info_hash_v1=b"x" * 20,
        info_hash_v2=None,
        raw_info=b"",
    )
    with pytest.raises(ValueError):
        PieceLayout(broken)


def test_file_at() -> None:
    info, _ = build_torrent(sized(5, 0, 7), 4)
    lay = PieceLayout(info)
    assert [lay.file_at(o) for o in range(12)] == [0] * 5 + [2] * 7
    with pytest.raises(IndexError):
        lay.file_at(12)


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 70), min_size=1, max_size=8).filter(any),
    piece_length=st.sampled_from([16, 32, 64]),
    pad=st.booleans(),
    data=st.data(),
)
def test_slices_reassemble_the_piece_space(
    sizes: list[int], piece_length: int, pad: bool, data: st.DataObject
) -> None:
    """Any byte range, read through its slices (pads as zeros), equals the piece space."""
    info, space = build_torrent(sized(*sizes), piece_length, pad=pad)
    lay = PieceLayout(info)
    contents = {i: s for i, (_, s) in enumerate(sized(*sizes))}
    by_entry = {}
    k = 0
    for i, f in enumerate(info.files):
        if not f.is_pad:
            by_entry[i] = contents[k]
            k += 1
    piece = data.draw(st.integers(0, lay.num_pieces - 1))
    size = info.piece_size(piece)
    begin = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - begin))
    out = bytearray(length)
    for s in lay.slices(piece, begin, length):
        assert s.length > 0
        out[s.buffer_offset : s.buffer_offset + s.length] = by_entry[s.file_index][
            s.file_offset : s.file_offset + s.length
        ]
    start = piece * piece_length + begin
    assert bytes(out) == space[start : start + length]
    prios = lay.piece_priorities([1] * len(info.files))
    assert all(p == 1 for p in prios) or pad
