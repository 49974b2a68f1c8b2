"""Piece verification, pure functions (run them on a worker thread: they hash megabytes).

* v1 (and hybrid): SHA-1 over the whole piece, pad bytes included.
* v2-only: every piece lies in exactly one file (files start on piece boundaries). For a file
  larger than one piece the piece's merkle node must equal the entry of the file's piece layer at
  the piece's index within the file; a file of at most one piece has no piece layer, so the root
  over its blocks must equal the file's ``pieces root``.

Hybrid torrents are checked with v1 only: the v1 hash covers every byte of the piece, and the
metainfo parser has already checked that both hash sets describe the same files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ccbt_engine import merkle
from ccbt_engine.metainfo import TorrentInfo
from ccbt_engine.storage.layout import PieceLayout


def verify_piece_v1(data: bytes | memoryview | bytearray, expected: bytes) -> bool:
    """True when SHA-1 of ``data`` is ``expected``."""
    return hashlib.sha1(data).digest() == expected


@dataclass(frozen=True, slots=True)
class V2Target:
    """Which file a v2 piece belongs to and which bytes of the piece are that file's."""

    file_index: int
    pieces_root: bytes | None
    #: index of the piece within its file (0 for the file's first piece)
    index_in_file: int
    #: the file's bytes in this piece: ``data[:length]`` (the rest is padding)
    length: int
    #: file of at most one piece: verified against the pieces root, not a piece layer
    small: bool


def v2_target(layout: PieceLayout, piece: int) -> V2Target | None:
    """The file ``piece`` belongs to, or None when no file data lies in it (pad-only piece)."""
    info = layout.info
    found = layout.slices(piece, 0, info.piece_size(piece))
    if not found:
        return None
    first = found[0]
    entry = layout.files[first.file_index]
    start = piece * info.piece_length
    return V2Target(
        file_index=first.file_index,
        pieces_root=entry.pieces_root,
        index_in_file=(start - entry.offset) // info.piece_length,
        length=min(entry.offset + entry.length - start, info.piece_size(piece)),
        small=entry.length <= info.piece_length,
    )


def piece_hash_v2(data: bytes | memoryview | bytearray, piece_length: int, *, small: bool) -> bytes:
    """The v2 hash to compare for one piece's file bytes (see the module docstring)."""
    view = memoryview(data)
    if small:
        return merkle.small_file_root(view)
    return merkle.piece_hash_v2(view, piece_length)


def expected_hash_v2(info: TorrentInfo, target: V2Target) -> bytes | None:
    """The hash the torrent promises for ``target``, or None when it is unknown.

    Unknown means: no pieces root (corrupt model) or the piece layer is missing (a magnet whose
    piece layers have not been fetched yet); such a piece cannot be verified.
    """
    root = target.pieces_root
    if root is None:
        return None
    if target.small:
        return root
    layer = info.piece_layers.get(root)
    pos = target.index_in_file * merkle.HASH_SIZE
    if layer is None or pos + merkle.HASH_SIZE > len(layer):
        return None
    return layer[pos : pos + merkle.HASH_SIZE]


def verify_piece(layout: PieceLayout, piece: int, data: bytes | memoryview | bytearray) -> bool:
    """Verify a whole piece's bytes (pad bytes included, as zeros) against the torrent."""
    info = layout.info
    if len(data) != info.piece_size(piece):
        return False
    if info.piece_hashes:
        return verify_piece_v1(data, info.piece_hashes[piece])
    target = v2_target(layout, piece)
    if target is None:
        # no file data and no v1 hash: nothing to verify, all bytes are padding zeros
        return bytes(data) == bytes(len(data))
    expected = expected_hash_v2(info, target)
    if expected is None:
        return False
    view = memoryview(data)[: target.length]
    return piece_hash_v2(view, info.piece_length, small=target.small) == expected
