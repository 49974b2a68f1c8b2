"""BEP 52 merkle trees over 16 KiB blocks (SHA-256).

One file's tree has a leaf per 16 KiB block (the last one shorter), padded with all-zero leaves
to a power of two. Its root is the file's ``pieces root``; for files larger than one piece the
layer whose nodes each cover one piece is stored in the torrent's ``piece layers``.

Used by torrent creation, metainfo validation (piece layers must hash to the pieces root), v2
piece verification and the BEP 52 hash transfer (range proofs), so it lives in one place.
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


# --------------------------------------------------------------------------------------------
# BEP 52 hash transfer: proofs of a range of one layer against the file's pieces root
#
# Layers are numbered from the 16 KiB block layer (0) up; a file's tree has height
# ``log2(next_pow2(num_blocks))``, its root (the ``pieces root``) standing at that layer. A
# ``hashes`` reply carries ``length`` consecutive nodes of the ``base`` layer (an aligned,
# power-of-two sized subtree) followed by the "uncle" hashes: the sibling of the subtree's root,
# of its parent, and so on, one per proof layer above the subtree. Hashing the nodes into their
# subtree root and folding the uncles in must reproduce a node we already trust (here: always
# the root, so no partial tree ever has to be kept).


def tree_height(num_blocks: int) -> int:
    """Height of a file's tree over ``num_blocks`` 16 KiB blocks (0 for a one-block file)."""
    return next_pow2(num_blocks).bit_length() - 1


def num_uncles(length: int, proof_layers: int) -> int:
    """How many uncle hashes follow ``length`` base hashes in a reply (as libtorrent counts).

    The subtree of ``length`` nodes already covers ``log2(length)`` layers above the base, so only
    the proof layers beyond those need a sibling each.
    """
    return max(0, proof_layers - (next_pow2(length).bit_length() - 1) + 1)


def fold_proof(subtree_root: bytes, position: int, uncles: Sequence[bytes]) -> bytes:
    """Hash ``subtree_root`` (``position``-th node of its layer) up through ``uncles``."""
    node = subtree_root
    for uncle in uncles:
        node = hashlib.sha256(node + uncle if position % 2 == 0 else uncle + node).digest()
        position //= 2
    return node


def verify_range(
    root: bytes,
    height: int,
    base: int,
    index: int,
    nodes: Sequence[bytes],
    uncles: Sequence[bytes],
) -> bool:
    """Whether ``nodes`` (the ``base`` layer from ``index``) and ``uncles`` prove to ``root``.

    ``nodes`` must be an aligned power-of-two range and the uncles must reach exactly the root
    layer ``height``: a shorter proof would anchor the range to a node we do not know, a longer
    one cannot exist. Anything else is False, never an exception (the input is a peer's).
    """
    count = len(nodes)
    if count == 0 or count & (count - 1) or index < 0 or index % count or base < 0:
        return False
    k = count.bit_length() - 1
    if base + k + len(uncles) != height or (index >> k) >> len(uncles) != 0:
        return False
    if any(len(h) != HASH_SIZE for h in nodes) or any(len(h) != HASH_SIZE for h in uncles):
        return False
    sub = merkle_root(nodes, count, leaf_height=base)
    return fold_proof(sub, index >> k, uncles) == root


class FileTree:
    """The layers of one file's tree from its piece layer up to the root, to answer requests.

    Built from the piece layer alone (which is all a .torrent carries): nodes below it would
    need the file's data, so ranges of lower layers are not served (the request is rejected).
    Costs about two hashes per piece, once per file, and twice the layer's bytes (each layer
    is one ``bytes`` of concatenated hashes, not a list of small objects); callers build it off
    the event loop.
    """

    __slots__ = ("base", "height", "layers", "num_pieces")

    def __init__(self, piece_layer: Sequence[bytes], piece_length: int, length: int) -> None:
        self.base = (piece_length // BLOCK_SIZE).bit_length() - 1
        self.height = tree_height(-(-length // BLOCK_SIZE))
        self.num_pieces = len(piece_layer)
        width = 1 << (self.height - self.base) if self.height > self.base else 1
        if len(piece_layer) > width:
            raise ValueError("piece layer longer than the file's tree is wide")
        if any(len(h) != HASH_SIZE for h in piece_layer):
            raise ValueError("piece-layer hashes must be 32 bytes each")
        layer = b"".join(piece_layer) + pad_hash(self.base) * (width - len(piece_layer))
        self.layers: list[bytes] = [layer]
        sha = hashlib.sha256
        while len(layer) > HASH_SIZE:
            pair = 2 * HASH_SIZE
            layer = b"".join(sha(layer[i : i + pair]).digest() for i in range(0, len(layer), pair))
            self.layers.append(layer)

    @property
    def root(self) -> bytes:
        return self.layers[-1]

    def node(self, level: int, index: int) -> bytes:
        """Node ``index`` of the layer ``level`` steps above the piece layer."""
        return self.layers[level][index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def hashes(self, base: int, index: int, length: int, proof_layers: int) -> list[bytes] | None:
        """The reply to a hash request: the range then its uncles, or None if not servable.

        Servable means: the piece layer, an aligned power-of-two range inside the layer's width
        (pad hashes past the file's last piece included, as libtorrent sends them), and proof
        layers that stay below the root.
        """
        if base != self.base or length <= 0 or length & (length - 1) or index < 0:
            return None
        width = len(self.layers[0]) // HASH_SIZE
        if index % length or index + length > width:
            return None
        if proof_layers < 0 or base + proof_layers >= self.height:
            return None
        out = [self.node(0, i) for i in range(index, index + length)]
        k = length.bit_length() - 1
        for level in range(k, proof_layers + 1):
            out.append(self.node(level, (index >> level) ^ 1))
        return out
