"""Piece layers over the wire: the fetching core (layer_fetch) against the answering side
(hash_server), with forged, unsolicited, rejected and timed-out replies."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from ccbt_engine.create import create_torrent
from ccbt_engine.hash_server import MAX_WAITING, HashServer
from ccbt_engine.layer_fetch import (
    MAX_PER_PEER,
    REFUSAL_TTL,
    REQUEST_TIMEOUT,
    PieceLayerFetch,
    needs_piece_layers,
)
from ccbt_engine.merkle import BLOCK_SIZE, FileTree, pad_hash
from ccbt_engine.metainfo import TorrentInfo, parse_info_dict, parse_torrent
from ccbt_engine.protocol.hashes import (
    HASH_REQUEST,
    Hashes,
    HashReject,
    HashRequest,
    encode_hash_request,
    parse_hash_message,
)
from ccbt_engine.protocol.wire import HashTransfer, ProtocolError

PIECE = BLOCK_SIZE
#: big: 1100 pieces (three ranges, the last one padded); mid: 19; two: 2; small: < a piece
SIZES = {"big": 1100 * PIECE - 77, "mid": 19 * PIECE, "two": 2 * PIECE, "small": 100}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> TorrentInfo:
    root = tmp_path_factory.mktemp("lf") / "data"
    root.mkdir()
    rng = random.Random(3)
    for name, size in SIZES.items():
        (root / name).write_bytes(rng.randbytes(size))
    raw = create_torrent(root, piece_length=PIECE, version="v2", workers=1)
    return parse_torrent(raw).info


@pytest.fixture
def bare(full: TorrentInfo) -> TorrentInfo:
    """What a magnet link gets: the same info dict without the piece layers."""
    return parse_info_dict(full.raw_info)


def file_of(info: TorrentInfo, name: str) -> bytes:
    root = next(f.pieces_root for f in info.files if f.path[-1] == name)
    assert root is not None
    return root


def tree(info: TorrentInfo, name: str) -> FileTree:
    root = file_of(info, name)
    layer = info.piece_layers[root]
    length = SIZES[name]
    return FileTree([layer[i : i + 32] for i in range(0, len(layer), 32)], PIECE, length)


def answer(info: TorrentInfo, req: HashRequest, name: str) -> Hashes:
    hashes = tree(info, name).hashes(req.base, req.index, req.length, req.proof_layers)
    assert hashes is not None
    return Hashes(req, tuple(hashes[: req.length]), tuple(hashes[req.length :]))


def test_requests_are_libtorrent_shaped(full: TorrentInfo, bare: TorrentInfo) -> None:
    assert needs_piece_layers(bare) and not needs_piece_layers(full)
    fetch = PieceLayerFetch(bare)
    assert set(fetch.files) == {file_of(bare, n) for n in ("big", "mid", "two")}
    big = file_of(bare, "big")
    # 1100 pieces of one block: tree of 2048 leaves (height 11), piece layer = block layer
    assert [fetch.request_for(big, c) for c in range(3)] == [
        HashRequest(big, 0, 0, 512, 10),
        HashRequest(big, 0, 512, 512, 10),
        HashRequest(big, 0, 1024, 128, 10),  # 76 pieces left: next power of two
    ]
    assert fetch.request_for(file_of(bare, "two"), 0) == HashRequest(
        file_of(bare, "two"), 0, 0, 2, 0
    )


def test_fetching_everything_from_an_honest_server(full: TorrentInfo, bare: TorrentInfo) -> None:
    fetch = PieceLayerFetch(bare)
    names = {file_of(bare, n): n for n in ("big", "mid", "two")}
    rounds = 0
    while not fetch.done:
        rounds += 1
        asked = [r for r in iter(lambda: fetch.next_request("p", 0.0), None)]
        assert 0 < len(asked) <= MAX_PER_PEER
        for req in asked:
            assert fetch.on_hashes("p", answer(full, req, names[req.pieces_root]))
    assert rounds == 2 and fetch.progress == 1.0
    layers = fetch.piece_layers()
    assert layers == full.piece_layers
    assert parse_info_dict(bare.raw_info, layers).piece_layers == full.piece_layers


def test_forged_replies_are_refused_and_nothing_is_kept(
    full: TorrentInfo, bare: TorrentInfo
) -> None:
    fetch = PieceLayerFetch(bare)
    req = fetch.next_request("liar", 0.0)
    assert req is not None and req.pieces_root == file_of(bare, "big")
    good = answer(full, req, "big")
    rng = random.Random(0)
    for i in range(len(good.nodes) + len(good.uncles)):
        hashes = [*good.nodes, *good.uncles]
        hashes[i] = rng.randbytes(32)
        forged = Hashes(req, tuple(hashes[: req.length]), tuple(hashes[req.length :]))
        assert not fetch.on_hashes("liar", forged)
    assert fetch.bad_replies == len(good.nodes) + len(good.uncles)
    assert 0 in fetch.files[req.pieces_root].missing
    assert fetch.files[req.pieces_root].hashes[0] is None
    # the range went back to the pool: another peer gets it and its true answer counts
    again = fetch.next_request("honest", 1.0)
    assert again == req
    assert fetch.on_hashes("honest", good)
    assert 0 not in fetch.files[req.pieces_root].missing


def test_short_proofs_and_other_shapes_are_ignored(full: TorrentInfo, bare: TorrentInfo) -> None:
    fetch = PieceLayerFetch(bare)
    big = file_of(bare, "big")
    t = tree(full, "big")
    # a true range proven only to an inner node: nothing we can anchor, so not taken
    hashes = t.hashes(0, 0, 512, 8)
    assert hashes is not None
    assert fetch.on_hashes("p", Hashes(HashRequest(big, 0, 0, 512, 8), tuple(hashes), ()))
    # a true, fully proven but smaller range than we ask for: ignored too
    small = t.hashes(0, 0, 256, 10)
    assert small is not None
    assert fetch.on_hashes(
        "p", Hashes(HashRequest(big, 0, 0, 256, 10), tuple(small[:256]), tuple(small[256:]))
    )
    # a root we never asked about
    assert fetch.on_hashes("p", Hashes(HashRequest(bytes(32), 0, 0, 2, 0), (bytes(32),) * 2, ()))
    assert fetch.files[big].missing == {0, 1, 2}
    # unsolicited but exactly the range we need, and true: welcome
    req = fetch.request_for(big, 2)
    assert fetch.on_hashes("p", answer(full, req, "big"))
    assert fetch.files[big].missing == {0, 1}
    # the padded tail of the last range is not stored as piece hashes
    assert len(fetch.files[big].hashes) == 1100
    assert answer(full, req, "big").nodes[-1] == pad_hash(0)


def test_rejects_and_timeouts_move_ranges_to_other_peers(bare: TorrentInfo) -> None:
    fetch = PieceLayerFetch(bare)
    first = fetch.next_request("a", 0.0)
    assert first is not None
    fetch.on_reject("a", HashReject(first), 1.0)
    assert fetch.next_request("b", 1.0) == first  # b is asked what a refused
    fetch.peer_gone("b")  # b leaves: its range returns to the pool
    second = fetch.next_request("a", 2.0)
    assert second is not None and second != first  # a is not asked again at once
    fetch.on_reject("a", HashReject(second), 2.0)
    assert fetch.next_request("a", 1.0 + REFUSAL_TTL) == first  # only once the refusal is old
    # silence: after the timeout the range goes to someone else
    fetch2 = PieceLayerFetch(bare)
    req = fetch2.next_request("slow", 0.0)
    fetch2.expire(REQUEST_TIMEOUT - 1)
    assert fetch2.next_request("fast", REQUEST_TIMEOUT - 1) != req
    fetch2.expire(REQUEST_TIMEOUT)
    assert req in [r for r in iter(lambda: fetch2.next_request("fast", REQUEST_TIMEOUT), None)]
    # a reject from someone who was not asked changes nothing
    fetch3 = PieceLayerFetch(bare)
    req3 = fetch3.next_request("x", 0.0)
    assert req3 is not None
    fetch3.on_reject("y", HashReject(req3), 0.0)
    assert fetch3.next_request("z", 0.0) != req3


def test_incomplete_layers_cannot_be_taken(bare: TorrentInfo) -> None:
    with pytest.raises(ValueError):
        PieceLayerFetch(bare).piece_layers()


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.write_paused = False

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def replies(self) -> list[object]:
        return [parse_hash_message(d[4], d[5:]) for d in self.sent]


def transfer(req: HashRequest) -> HashTransfer:
    return HashTransfer(HASH_REQUEST, encode_hash_request(req)[5:])


async def settle(server: HashServer) -> None:
    for _ in range(200):
        if not server._building:
            return
        await asyncio.sleep(0.01)


async def test_server_answers_what_the_fetcher_asks(full: TorrentInfo, bare: TorrentInfo) -> None:
    server = HashServer(full, None)
    fetch = PieceLayerFetch(bare)
    conn = FakeConn()
    while not fetch.done:
        asked = [r for r in iter(lambda: fetch.next_request(conn, 0.0), None)]
        for req in asked:
            server.on_message(conn, transfer(req))
        await settle(server)
        for msg in conn.replies():
            assert isinstance(msg, Hashes)
            assert fetch.on_hashes(conn, msg)
        conn.sent.clear()
    assert fetch.piece_layers() == full.piece_layers
    assert server.rejected == 0 and server.served == 5


async def test_server_rejects_what_it_cannot_or_will_not_serve(full: TorrentInfo) -> None:
    server = HashServer(full, None)
    conn = FakeConn()
    big, small = file_of(full, "big"), file_of(full, "small")
    bad = [
        HashRequest(bytes(32), 0, 0, 2, 0),  # unknown root
        HashRequest(small, 0, 0, 1, 0),  # a file of one piece has no layer to serve
        HashRequest(big, 1, 0, 2, 0),  # not the piece layer
        HashRequest(big, 0, 0, 1024, 10),  # more than 512 hashes
        HashRequest(big, 0, 0, 3, 10),  # not a power of two
        HashRequest(big, 0, 2, 4, 10),  # unaligned
        HashRequest(big, 0, 2048, 2, 10),  # outside the tree
        HashRequest(big, 0, 0, 2, 11),  # the root's sibling does not exist
        HashRequest(big, 0, 0, 0, 0),
    ]
    for req in bad:
        server.on_message(conn, transfer(req))
    await settle(server)
    replies = conn.replies()
    assert len(replies) == len(bad)  # rejected now, or once the tree is built
    assert set(replies) == {HashReject(r) for r in bad}
    assert server.served == 0
    # a peer that does not read its replies gets only rejects (4 bytes of framing, not 16 KiB)
    conn.sent.clear()
    conn.write_paused = True
    ok = HashRequest(big, 0, 0, 512, 10)
    server.on_message(conn, transfer(ok))
    assert conn.replies() == [HashReject(ok)]
    conn.write_paused = False
    conn.sent.clear()
    server.on_message(conn, transfer(ok))
    await settle(server)
    [reply] = conn.replies()
    assert isinstance(reply, Hashes) and reply.request == ok and len(reply.uncles) == 2
    # hashes and rejects sent to a seeder are ignored; malformed framing is a protocol error
    server.on_message(conn, HashTransfer(23, encode_hash_request(ok)[5:]))
    with pytest.raises(ProtocolError):
        server.on_message(conn, HashTransfer(HASH_REQUEST, b"short"))


async def test_server_bounds_requests_waiting_for_a_tree(full: TorrentInfo) -> None:
    server = HashServer(full, None)
    conn = FakeConn()
    req = HashRequest(file_of(full, "mid"), 0, 0, 32, 4)
    for _ in range(MAX_WAITING + 5):
        server.on_message(conn, transfer(req))
    await settle(server)
    replies = conn.replies()
    assert sum(isinstance(r, Hashes) for r in replies) == MAX_WAITING
    assert sum(isinstance(r, HashReject) for r in replies) == 5


async def test_server_never_serves_a_layer_that_does_not_match_its_root(full: TorrentInfo) -> None:
    big = file_of(full, "big")
    layers = dict(full.piece_layers)
    layers[big] = bytes(32) + layers[big][32:]
    broken = replace(full, piece_layers=layers)
    server = HashServer(broken, None)
    conn = FakeConn()
    req = HashRequest(big, 0, 0, 512, 10)
    server.on_message(conn, transfer(req))
    await settle(server)
    assert conn.replies() == [HashReject(req)]
