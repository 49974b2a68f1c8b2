"""Sans-I/O parts of the extensions: codecs (property-tested against hostile bytes), the
metadata assembler, the extension registry, PEX diffing and rate limits, lt_donthave."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.bencode import decode, encode
from ccbt_engine.extensions import Extension, ExtensionManager, ExtPeer
from ccbt_engine.extensions.donthave import (
    DontHaveError,
    LtDontHave,
    decode_donthave,
    encode_donthave,
)
from ccbt_engine.extensions.metadata import (
    DATA,
    METADATA_PIECE,
    REJECT,
    REQUEST,
    MetadataAssembler,
    MetadataError,
    UtMetadata,
    decode_message,
    encode_data,
    encode_reject,
    encode_request,
)
from ccbt_engine.extensions.pex import (
    FLAG_CONNECTABLE,
    FLAG_SEED,
    PexError,
    UtPex,
    decode_pex,
    encode_pex,
)
from ccbt_engine.magnet_fetch import select_only_priorities
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.extension import ExtensionHandshake


# -- fakes ------------------------------------------------------------------------------------
@dataclass(eq=False)
class FakeConn:
    address: tuple[str, int]
    outgoing: bool = True
    closed: bool = False
    sent: list[bytes] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def messages(self) -> list[tuple[int, bytes]]:
        out = []
        for raw in self.sent:
            (event,) = wire.WireParser(expect_handshake=False).feed(raw)
            assert isinstance(event, wire.Extended)
            out.append((event.ext_id, event.payload))
        return out


@dataclass
class FakeHost:
    info_hash: bytes = b"\x01" * 20
    added: list[tuple[list[tuple[str, int]], str]] = field(default_factory=list)

    def add_peers(self, addresses: Any, source: str) -> None:
        self.added.append((list(addresses), source))


THEIR_IDS = {"ut_metadata": 11, "ut_pex": 12, "lt_donthave": 13}


def _connect(mgr: ExtensionManager, port: int, *, listen: int | None = None, **hs: Any) -> Any:
    conn = FakeConn(("127.0.0.1", port), outgoing=listen is None)
    mgr.on_handshake(conn, ExtensionHandshake(m=dict(THEIR_IDS), listen_port=listen, **hs))  # type: ignore[arg-type]
    return conn


# -- registry ---------------------------------------------------------------------------------
def test_registry_ids_handshake_and_dispatch() -> None:
    seen: list[tuple[str, bytes]] = []

    class Echo(Extension):
        name = "x_echo"

        def on_message(self, peer: ExtPeer, payload: bytes) -> None:
            seen.append((peer.conn.address[0], payload))

    mgr = ExtensionManager(FakeHost())
    mgr.register(UtMetadata(b"d4:name1:xe"))
    mgr.register(Echo())
    with pytest.raises(ValueError):
        mgr.register(Echo())
    assert mgr.local_ids() == {"ut_metadata": 1, "x_echo": 4}
    hs = mgr.handshake(client="ccbt")
    assert hs.metadata_size == 11 and hs.m == mgr.local_ids() and hs.client == "ccbt"
    conn = _connect(mgr, 1000)
    mgr.on_message(conn, 4, b"hi")
    mgr.on_message(conn, 99, b"unknown ids are ignored")
    assert seen == [("127.0.0.1", b"hi")]
    # a later handshake is additive, and id 0 disables
    mgr.on_handshake(conn, ExtensionHandshake(m={"ut_pex": 0}))
    peer = mgr.peer(conn)
    assert peer is not None and not peer.supports("ut_pex") and peer.supports("ut_metadata")
    assert not mgr.send(peer, "ut_pex", b"x")
    mgr.on_peer_closed(conn)
    assert mgr.peer(conn) is None


# -- ut_metadata --------------------------------------------------------------------------------
def test_metadata_codec_round_trip() -> None:
    assert decode_message(encode_request(3)).msg_type == REQUEST
    assert decode_message(encode_reject(2)).msg_type == REJECT
    msg = decode_message(encode_data(1, 20000, b"z" * 100))
    assert (msg.msg_type, msg.piece, msg.total_size, msg.data) == (DATA, 1, 20000, b"z" * 100)
    with pytest.raises(MetadataError):
        decode_message(encode({b"msg_type": 1, b"piece": 0, b"total_size": 2**40}))
    with pytest.raises(MetadataError):
        decode_message(encode_request(0) + b"junk")


@given(st.binary(max_size=300))
def test_metadata_decoder_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(MetadataError):
        decode_message(data)


def _blob(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_assembler_pipelines_across_peers_and_verifies() -> None:
    blob = _blob(3 * METADATA_PIECE + 100)
    asm = MetadataAssembler(hashlib.sha1(blob).digest(), hashlib.sha256(blob).digest())
    size = len(blob)
    assert asm.next_request("a", size, 0.0) == 0
    assert asm.next_request("b", size, 0.0) == 1
    assert asm.next_request("a", size, 0.0) == 2
    assert asm.next_request("b", size, 0.0) == 3
    assert asm.next_request("c", size, 0.0) is None  # all in flight
    asm.on_reject("b", 3)
    assert asm.next_request("b", size, 0.0) is None  # b refused piece 3: not asked again
    assert asm.next_request("c", size, 0.0) == 3
    assert asm.next_request("c", size, 11.0) == 0  # timed out: re-assigned
    with pytest.raises(MetadataError):
        asm.on_data("a", 1, size, b"short")
    parts = [blob[i : i + METADATA_PIECE] for i in range(0, size, METADATA_PIECE)]
    for i, who in enumerate(["a", "b", "a", "c"]):
        done = asm.on_data(who, i, size, parts[i])
    assert done == blob and asm.result == blob and asm.progress == 1.0


def test_assembler_size_limit_and_hostile_blame() -> None:
    blob = _blob(METADATA_PIECE + 5)
    asm = MetadataAssembler(hashlib.sha1(blob).digest(), None, max_size=1 << 20)
    assert asm.next_request("huge", (1 << 20) + 1, 0.0) is None
    size = len(blob)
    # two contributors, bad result: nobody is convicted yet, the next round is single-source
    asm.next_request("honest", size, 0.0)
    asm.next_request("liar", size, 0.0)
    asm.on_data("honest", 0, size, blob[:METADATA_PIECE])
    assert asm.on_data("liar", 1, size, b"\xee" * 5) is None
    assert asm.hash_failures == 1 and not asm.bad_peers
    assert asm.next_request("liar", size, 1.0) == 0
    assert asm.next_request("honest", size, 1.0) is None  # the round belongs to liar
    asm.next_request("liar", size, 1.0)
    asm.on_data("liar", 0, size, b"\xee" * METADATA_PIECE)
    asm.on_data("liar", 1, size, b"\xee" * 5)
    assert asm.bad_peers == {"liar"}
    assert asm.next_request("liar", size, 2.0) is None
    assert asm.next_request("honest", size, 2.0) == 0
    asm.next_request("honest", size, 2.0)
    asm.on_data("honest", 0, size, blob[:METADATA_PIECE])
    assert asm.on_data("honest", 1, size, blob[METADATA_PIECE:]) == blob


def test_ut_metadata_serves_rejects_and_fetches() -> None:
    raw = _blob(METADATA_PIECE + 10)
    server = ExtensionManager(FakeHost())
    server.register(UtMetadata(raw))
    conn = _connect(server, 1)
    server.on_message(conn, 1, encode_request(1))
    server.on_message(conn, 1, encode_request(5))
    (ext_id, payload), (_, rejected) = conn.messages()
    assert ext_id == THEIR_IDS["ut_metadata"]
    msg = decode_message(payload)
    assert msg.data == raw[METADATA_PIECE:] and msg.total_size == len(raw)
    assert decode_message(rejected).msg_type == REJECT

    got: list[bytes] = []
    asm = MetadataAssembler(hashlib.sha1(raw).digest(), None)
    client = ExtensionManager(FakeHost())
    client.register(UtMetadata(None, assembler=asm, on_complete=got.append))
    seed = _connect(client, 2, metadata_size=len(raw))
    requests = [decode_message(p).piece for _, p in seed.messages()]
    assert requests == [0, 1]  # pipelined at once
    for piece in requests:
        chunk = raw[piece * METADATA_PIECE : (piece + 1) * METADATA_PIECE]
        client.on_message(seed, 1, encode_data(piece, len(raw), chunk))
    assert got == [raw]


# -- ut_pex -------------------------------------------------------------------------------------
@given(st.binary(max_size=400))
def test_pex_decoder_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(PexError):
        decode_pex(data)


def test_pex_codec_round_trip_v4_v6() -> None:
    payload = encode_pex([("10.0.0.1", 6881, FLAG_SEED), ("::1", 51413, 0)], [("10.0.0.2", 1)])
    d = decode(payload)
    assert d[b"added"] == bytes([10, 0, 0, 1, 0x1A, 0xE1]) and d[b"added.f"] == b"\x02"
    msg = decode_pex(payload)
    assert msg.added == [("10.0.0.1", 6881, FLAG_SEED), ("::1", 51413, 0)]
    assert msg.dropped == [("10.0.0.2", 1)]
    with pytest.raises(PexError):
        decode_pex(encode({b"added": b"12345"}))


def test_pex_sends_full_list_then_diffs_at_most_once_per_interval() -> None:
    host = FakeHost()
    mgr = ExtensionManager(host)
    pex = UtPex(interval=60.0)
    mgr.register(pex)
    a = _connect(mgr, 1001)
    b = _connect(mgr, 1002, listen=7002, upload_only=True)
    _connect(mgr, 1003, listen=None)  # outgoing, reachable at 1003
    mgr.on_tick(0.0)
    first = decode_pex(a.messages()[0][1])
    assert sorted(first.added) == [
        ("127.0.0.1", 1003, FLAG_CONNECTABLE),
        ("127.0.0.1", 7002, FLAG_SEED),
    ]
    assert all(p[:2] != ("127.0.0.1", 7002) for p in decode_pex(b.messages()[0][1]).added)
    d = _connect(mgr, 1004)
    mgr.on_peer_closed(b)
    mgr.on_tick(30.0)
    assert len(a.messages()) == 1  # rate limited
    mgr.on_tick(60.0)
    diff = decode_pex(a.messages()[1][1])
    assert diff.added == [("127.0.0.1", 1004, FLAG_CONNECTABLE)]
    assert diff.dropped == [("127.0.0.1", 7002)]
    assert d.messages()  # the newcomer got its full list at once
    # receiving: learned peers go to the host with source "pex"
    mgr.on_message(a, 2, encode_pex([("127.0.0.9", 9, 0)], []))
    assert host.added == [([("127.0.0.9", 9)], "pex")]


# -- lt_donthave / so= ---------------------------------------------------------------------------
def test_donthave_codec_and_dispatch() -> None:
    assert decode_donthave(encode_donthave(7)) == 7
    with pytest.raises(DontHaveError):
        decode_donthave(b"\x00\x01")
    got: list[int] = []
    mgr = ExtensionManager(FakeHost())
    ext = LtDontHave(lambda peer, piece: got.append(piece))
    mgr.register(ext)
    conn = _connect(mgr, 5)
    mgr.on_message(conn, 3, encode_donthave(42))
    assert got == [42]
    assert ext.broadcast(9) == 1
    assert conn.messages() == [(THEIR_IDS["lt_donthave"], encode_donthave(9))]


def test_select_only_priorities() -> None:
    assert select_only_priorities([0, 2, 9], 3) == [4, 0, 4]
    assert select_only_priorities([7], 3) is None
