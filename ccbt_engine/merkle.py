"""BEP 52 merkle trees over 16 KiB blocks (SHA-256).

One file's tree has a leaf per 16 KiB block (the last one shorter), padded with all-zero leaves
to a power of two. Its root is the file's ``pieces root``; for files larger than one piece the
layer whose nodes each cover one piece is stored in the torrent's ``piece layers``.

Used by torrent creation, metainfo validation (piece layers must hash to the pieces root) and,
later, by v2 piece verification, so it lives in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

BLOCK_SIZE = 16 * 1024
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``n`` (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@lru_cache(maxsize=64)
def pad_hash(height: int) -> bytes:
    """Root of a subtree of ``2**height`` all-zero leaves."""
    h = ZERO_HASH
    for _ in range(height):
        h = hashlib.sha256(h + h).digest()
    return h


def merkle_root(leaves: Sequence[bytes], width: int | None = None, leaf_height: int = 0) -> bytes:
    """Root over ``leaves`` padded to ``width`` (default: next power of two of ``len(leaves)``).

    ``leaf_height`` says how many levels the given leaves already stand above the 16 KiB blocks,
    so the padding nodes are the matching all-zero subtree roots (piece layer → file root).
    """
    if width is None:
        width = next_pow2(len(leaves))
    if width & (width - 1) or width < len(leaves):
        raise ValueError("width must be a power of two >= number of leaves")
    layer = list(leaves)
    height = leaf_height
    while width > 1:
        pad = pad_hash(height)
        if len(layer) % 2:
            layer.append(pad)
        layer = [hashlib.sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        width //= 2
        height += 1
    return layer[0] if layer else pad_hash(height)


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of ``data`` (the last block may be short)."""
    mv = memoryview(data)
    return [hashlib.sha256(mv[i : i + BLOCK_SIZE]).digest() for i in range(0, len(mv), BLOCK_SIZE)]


def piece_hash_v2(data: bytes | memoryview, piece_length: int) -> bytes:
    """Piece-layer node for one piece's data: root over its blocks padded to the piece width.

    Only meaningful for files larger than one piece (smaller files have no piece layer).
    """
    return merkle_root(block_hashes(data), piece_length // BLOCK_SIZE)


def file_root(piece_layer: Sequence[bytes], piece_length: int) -> bytes:
    """``pieces root`` of a file given its piece-layer hashes (file larger than one piece)."""
    height = (piece_length // BLOCK_SIZE).bit_length() - 1
    return merkle_root(piece_layer, leaf_height=height)


def small_file_root(data: bytes | memoryview) -> bytes:
    """``pieces root`` of a file of at most one piece: over its blocks, padded to a power of 2."""
    return merkle_root(block_hashes(data))
