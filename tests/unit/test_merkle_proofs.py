"""BEP 52 range proofs (ccbt_engine.merkle): known trees, every servable request, tampering."""

from __future__ import annotations

import hashlib
import random

import pytest

from ccbt_engine.merkle import (
    BLOCK_SIZE,
    FileTree,
    block_hashes,
    file_root,
    fold_proof,
    merkle_root,
    num_uncles,
    pad_hash,
    piece_hash_v2,
    small_file_root,
    tree_height,
    verify_range,
)


def h(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(a + b).digest()


def full_tree(data: bytes) -> list[list[bytes]]:
    """Every layer of a file's tree, from the block layer up, built the slow obvious way."""
    leaves = block_hashes(data)
    width = 1
    while width < len(leaves):
        width *= 2
    layer = leaves + [bytes(32)] * (width - len(leaves))
    layers = [layer]
    while len(layer) > 1:
        layer = [h(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
        layers.append(layer)
    return layers


def test_tree_height_and_uncle_counts() -> None:
    assert [tree_height(n) for n in (1, 2, 3, 4, 5, 1024, 1025)] == [0, 1, 2, 2, 3, 10, 11]
    # libtorrent: uncles = max(0, proof_layers - log2(next_pow2(length)) + 1)
    assert num_uncles(512, 8) == 0
    assert num_uncles(512, 9) == 1
    assert num_uncles(2, 3) == 3
    assert num_uncles(1, 0) == 1
    assert num_uncles(4, 0) == 0


def test_known_four_block_tree_by_hand() -> None:
    a, b, c, d = (bytes([i]) * 32 for i in range(4))
    ab, cd = h(a, b), h(c, d)
    root = h(ab, cd)
    # the range [c, d] with one uncle (ab), and the range [b] with uncles a then cd
    assert verify_range(root, 2, 0, 2, [c, d], [ab])
    assert verify_range(root, 2, 0, 1, [b], [a, cd])
    assert fold_proof(b, 1, [a, cd]) == root
    assert not verify_range(root, 2, 0, 2, [d, c], [ab])  # order matters
    assert not verify_range(root, 2, 0, 2, [c, d], [cd])  # wrong uncle
    assert not verify_range(root, 2, 0, 0, [c, d], [ab])  # wrong position
    assert not verify_range(root, 2, 0, 2, [c, d], [])  # stops short of the root
    assert not verify_range(root, 2, 0, 1, [c, d], [ab])  # unaligned
    assert not verify_range(root, 2, 0, 0, [a, b, c], [])  # not a power of two
    assert not verify_range(root, 2, 0, 0, [], [])
    assert not verify_range(root, 2, 0, 0, [a[:31], b], [cd])  # short hash


@pytest.mark.parametrize("blocks_per_piece", [1, 4])
@pytest.mark.parametrize("length", [2 * BLOCK_SIZE + 1, 37 * BLOCK_SIZE - 5, 64 * BLOCK_SIZE])
def test_file_tree_matches_a_tree_built_from_the_data(blocks_per_piece: int, length: int) -> None:
    data = random.Random(length).randbytes(length)
    piece_length = blocks_per_piece * BLOCK_SIZE
    layer = [
        piece_hash_v2(data[i : i + piece_length], piece_length)
        for i in range(0, length, piece_length)
    ]
    truth = full_tree(data)
    tree = FileTree(layer, piece_length, length)
    base = blocks_per_piece.bit_length() - 1
    assert tree.root == truth[-1][0] == file_root(layer, piece_length) == small_file_root(data)
    assert tree.height == len(truth) - 1
    assert tree.layers == [b"".join(level) for level in truth[base:]]
    # past the last piece the layer holds pad hashes: roots of all-zero subtrees
    width = len(truth[base])
    assert [tree.node(0, i) for i in range(len(layer), width)] == [pad_hash(base)] * (
        width - len(layer)
    )


def test_every_servable_request_proves_and_every_tampering_fails() -> None:
    piece_length = 2 * BLOCK_SIZE
    length = 45 * piece_length - 100  # 45 pieces, 90 blocks: tree of 128 leaves, height 7
    data = random.Random(7).randbytes(length)
    layer = [
        piece_hash_v2(data[i : i + piece_length], piece_length)
        for i in range(0, length, piece_length)
    ]
    tree = FileTree(layer, piece_length, length)
    assert (tree.base, tree.height, len(tree.layers[0])) == (1, 7, 64 * 32)
    rng = random.Random(1)
    checked: set[tuple[int, int]] = set()
    for k in range(7):
        count = 1 << k
        for index in range(0, 64, count):
            for proof in range(0, tree.height - tree.base):
                got = tree.hashes(tree.base, index, count, proof)
                assert got is not None
                assert len(got) == count + num_uncles(count, proof)
                nodes, uncles = got[:count], got[count:]
                assert nodes == [tree.node(0, i) for i in range(index, index + count)]
                full = tree.base + k + len(uncles) == tree.height
                assert verify_range(tree.root, tree.height, tree.base, index, nodes, uncles) == full
                if full:
                    checked.add((count, index))
                    bad = list(got)
                    bad[rng.randrange(len(bad))] = rng.randbytes(32)
                    assert not verify_range(
                        tree.root, tree.height, tree.base, index, bad[:count], bad[count:]
                    )
    assert len(checked) == 127  # every aligned range has a full proof


def test_unservable_requests() -> None:
    piece_length = 4 * BLOCK_SIZE
    tree = FileTree([bytes([i]) * 32 for i in range(5)], piece_length, 5 * piece_length - 1)
    assert (tree.base, tree.height) == (2, 5)
    assert tree.hashes(2, 0, 8, 2) is not None
    assert tree.hashes(0, 0, 8, 2) is None  # below the piece layer: not kept
    assert tree.hashes(3, 0, 4, 1) is None  # above it: only the piece layer is served
    assert tree.hashes(2, 0, 16, 2) is None  # wider than the layer
    assert tree.hashes(2, 4, 8, 2) is None  # unaligned
    assert tree.hashes(2, 0, 3, 2) is None  # not a power of two
    assert tree.hashes(2, 0, 0, 2) is None
    assert tree.hashes(2, 0, 8, 3) is None  # would need the root's sibling
    assert tree.hashes(2, 0, 8, -1) is None
    assert tree.hashes(2, -2, 2, 2) is None
    with pytest.raises(ValueError):
        FileTree([bytes(32)] * 9, piece_length, 5 * piece_length)
    with pytest.raises(ValueError):
        FileTree([bytes(31)] * 5, piece_length, 5 * piece_length)


def test_merkle_root_of_a_subtree_uses_the_given_layer_pads() -> None:
    pieces = [bytes([9]) * 32] * 3
    assert merkle_root(pieces, 4, leaf_height=2) == h(
        h(pieces[0], pieces[1]), h(pieces[2], pad_hash(2))
    )
