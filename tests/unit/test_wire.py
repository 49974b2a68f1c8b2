"""Peer wire protocol: encoders, incremental parsing, validation, and properties over any input."""

from __future__ import annotations

import array
import contextlib
import itertools
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccbt_engine.protocol.wire import (
    BLOCK_SIZE,
    HANDSHAKE_LEN,
    MAX_BITFIELD_BYTES_UNKNOWN,
    MAX_BLOCK_LEN,
    PROTOCOL_STRING,
    RESERVED_DHT,
    RESERVED_EXTENDED,
    RESERVED_FAST,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    Event,
    Extended,
    Handshake,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    MsgId,
    NotInterested,
    Piece,
    Port,
    ProtocolError,
    RejectRequest,
    Request,
    SuggestPiece,
    Unchoke,
    WireParser,
    check_bitfield,
    encode_allowed_fast,
    encode_bitfield,
    encode_cancel,
    encode_choke,
    encode_event,
    encode_extended,
    encode_handshake,
    encode_have,
    encode_have_all,
    encode_have_none,
    encode_interested,
    encode_keepalive,
    encode_not_interested,
    encode_piece,
    encode_piece_header,
    encode_port,
    encode_reject,
    encode_request,
    encode_requests,
    encode_suggest,
    encode_unchoke,
    make_reserved,
    reserved_has,
)

INFO_HASH = bytes(range(20))
PEER_ID = b"-CC0001-abcdefghijkl"
N = 100  # pieces in the test torrent


def msg(mid: int, body: bytes = b"") -> bytes:
    """A raw message built by hand, independent of the encoders under test."""
    return struct.pack(">IB", 1 + len(body), mid) + body


def parser(num_pieces: int | None = N, **kw: Any) -> WireParser:
    """A parser past the handshake with fast negotiated and N pieces."""
    p = WireParser(expect_handshake=False, num_pieces=num_pieces, **kw)
    p.fast = True
    return p


# ---------------------------------------------------------------------------------------------
# encoders: exact bytes


def test_encoders_produce_the_documented_bytes() -> None:
    assert encode_keepalive() == b"\0\0\0\0"
    assert encode_choke() == b"\0\0\0\x01\x00"
    assert encode_unchoke() == b"\0\0\0\x01\x01"
    assert encode_interested() == b"\0\0\0\x01\x02"
    assert encode_not_interested() == b"\0\0\0\x01\x03"
    assert encode_have(0x01020304) == b"\0\0\0\x05\x04\x01\x02\x03\x04"
    assert encode_bitfield(b"\xf0") == b"\0\0\0\x02\x05\xf0"
    assert encode_request(1, 0x4000, 0x4000) == (
        b"\0\0\0\x0d\x06" + b"\0\0\0\x01" + b"\0\0\x40\x00" + b"\0\0\x40\x00"
    )
    assert encode_piece(2, 16, b"xyz") == b"\0\0\0\x0c\x07\0\0\0\x02\0\0\0\x10xyz"
    assert encode_cancel(1, 2, 3) == b"\0\0\0\x0d\x08\0\0\0\x01\0\0\0\x02\0\0\0\x03"
    assert encode_port(6881) == b"\0\0\0\x03\x09\x1a\xe1"
    assert encode_suggest(7) == b"\0\0\0\x05\x0d\0\0\0\x07"
    assert encode_have_all() == b"\0\0\0\x01\x0e"
    assert encode_have_none() == b"\0\0\0\x01\x0f"
    assert encode_reject(1, 2, 3) == b"\0\0\0\x0d\x10\0\0\0\x01\0\0\0\x02\0\0\0\x03"
    assert encode_allowed_fast(9) == b"\0\0\0\x05\x11\0\0\0\x09"
    assert encode_extended(3, b"d1:ai1ee") == b"\0\0\0\x0a\x14\x03d1:ai1ee"


def test_piece_header_lets_the_block_be_sent_separately() -> None:
    block = b"\xab" * BLOCK_SIZE
    header = encode_piece_header(5, 32768, len(block))
    assert len(header) == 13
    assert header + block == encode_piece(5, 32768, block)


def test_handshake_layout_and_reserved_bits() -> None:
    hs = encode_handshake(INFO_HASH, PEER_ID, fast=True, extended=True, dht=True)
    assert len(hs) == HANDSHAKE_LEN
    assert hs[0] == 19 and hs[1:20] == PROTOCOL_STRING
    reserved = hs[20:28]
    assert reserved == b"\0\0\0\0\0\x10\0\x05"
    assert hs[28:48] == INFO_HASH and hs[48:] == PEER_ID
    assert encode_handshake(INFO_HASH, PEER_ID, fast=False, extended=False)[20:28] == bytes(8)
    assert make_reserved(RESERVED_FAST, RESERVED_EXTENDED, RESERVED_DHT) == reserved
    assert reserved_has(reserved, RESERVED_DHT)
    assert not reserved_has(bytes(8), RESERVED_FAST)


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_have(-1),
        lambda: encode_have(2**32),
        lambda: encode_request(0, 0, 2**32),
        lambda: encode_requests([(0, 0, 16384), (0, -1, 16384)]),
        lambda: encode_port(65536),
        lambda: encode_extended(256, b""),
        lambda: encode_handshake(b"short", PEER_ID),
        lambda: encode_handshake(INFO_HASH, b"x" * 21),
    ],
)
def test_encoders_reject_out_of_range_arguments(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


@given(
    st.lists(
        st.tuples(st.integers(0, N - 1), st.integers(0, 2**32 - 1), st.integers(1, BLOCK_SIZE)),
        max_size=40,
    )
)
def test_encode_requests_equals_single_requests(triples: list[tuple[int, int, int]]) -> None:
    """The batched encoder the download loop uses gives the same bytes, and they parse back."""
    data = encode_requests(triples)
    assert data == b"".join(encode_request(*t) for t in triples)
    assert parser().feed(data) == [Request(*t) for t in triples]


# ---------------------------------------------------------------------------------------------
# parsing every message


ALL_MESSAGES: list[tuple[bytes, Event]] = [
    (msg(MsgId.CHOKE), Choke()),
    (msg(MsgId.UNCHOKE), Unchoke()),
    (msg(MsgId.INTERESTED), Interested()),
    (msg(MsgId.NOT_INTERESTED), NotInterested()),
    (msg(MsgId.HAVE, struct.pack(">I", 99)), Have(99)),
    (msg(MsgId.REQUEST, struct.pack(">III", 3, 16384, 16384)), Request(3, 16384, 16384)),
    (msg(MsgId.PIECE, struct.pack(">II", 4, 0) + b"data"), Piece(4, 0, b"data")),
    (msg(MsgId.CANCEL, struct.pack(">III", 3, 0, 1)), Cancel(3, 0, 1)),
    (msg(MsgId.PORT, b"\x1a\xe1"), Port(6881)),
    (msg(MsgId.SUGGEST_PIECE, struct.pack(">I", 8)), SuggestPiece(8)),
    (msg(MsgId.REJECT_REQUEST, struct.pack(">III", 3, 0, 16384)), RejectRequest(3, 0, 16384)),
    (msg(MsgId.ALLOWED_FAST, struct.pack(">I", 0)), AllowedFast(0)),
    (msg(MsgId.EXTENDED, b"\x00d1:md6:ut_pexi1eee"), Extended(0, b"d1:md6:ut_pexi1eee")),
    (msg(MsgId.EXTENDED, b"\x02"), Extended(2, b"")),
    (b"\0\0\0\0", KeepAlive()),
]
FIRST_MESSAGES: list[tuple[bytes, Event]] = [
    (msg(MsgId.BITFIELD, b"\xff" * 12 + b"\xf0"), Bitfield(b"\xff" * 12 + b"\xf0")),
    (msg(MsgId.HAVE_ALL), HaveAll()),
    (msg(MsgId.HAVE_NONE), HaveNone()),
]


@pytest.mark.parametrize(("raw", "event"), ALL_MESSAGES + FIRST_MESSAGES)
def test_each_message_parses_and_round_trips(raw: bytes, event: Event) -> None:
    assert parser().feed(raw) == [event]
    assert encode_event(event) == raw


def test_handshake_event_and_fast_negotiated_from_it() -> None:
    p = WireParser()
    hs = encode_handshake(INFO_HASH, PEER_ID, fast=True, extended=True)
    # the fast message in the same read as the handshake must already be judged negotiated
    events = p.feed(hs + encode_have_all() + encode_suggest(1))
    assert events == [Handshake(INFO_HASH, PEER_ID, hs[20:28]), HaveAll(), SuggestPiece(1)]
    first = events[0]
    assert isinstance(first, Handshake)
    assert first.supports_fast and first.supports_extended and not first.supports_dht
    assert p.fast and p.fast_enabled and p.handshake == first
    assert encode_event(first) == hs


def test_fast_not_negotiated_when_either_side_lacks_the_bit() -> None:
    theirs_without = encode_handshake(INFO_HASH, PEER_ID, fast=False)
    p = WireParser()
    p.feed(theirs_without)
    assert not p.fast
    with pytest.raises(ProtocolError, match="fast"):
        p.feed(encode_have_none())

    ours_without = WireParser(offer_fast=False)
    ours_without.feed(encode_handshake(INFO_HASH, PEER_ID, fast=True))
    assert not ours_without.fast
    with pytest.raises(ProtocolError, match="fast"):
        ours_without.feed(encode_allowed_fast(1))


@pytest.mark.parametrize(
    "raw",
    [
        encode_suggest(1),
        encode_have_all(),
        encode_have_none(),
        encode_reject(1, 0, 16384),
        encode_allowed_fast(1),
    ],
)
def test_every_fast_message_requires_negotiation(raw: bytes) -> None:
    p = parser()
    p.fast_enabled = False
    with pytest.raises(ProtocolError, match="fast"):
        p.feed(raw)


def test_unknown_message_ids_are_skipped() -> None:
    p = parser()
    stream = msg(99, b"future stuff") + msg(10) + encode_have(5)
    assert p.feed(stream) == [Have(5)]


def test_accepts_bytearray_and_memoryview_and_copies_piece_data() -> None:
    raw = bytearray(encode_piece(1, 0, b"abcd") + encode_have(2))
    p = parser()
    events = p.feed(memoryview(raw))
    raw[13:17] = b"ZZZZ"  # the caller reuses its receive buffer
    assert events == [Piece(1, 0, b"abcd"), Have(2)]
    assert type(events[0].data) is bytes  # type: ignore[union-attr]
    assert parser().feed(bytearray(encode_have(3))) == [Have(3)]
    wide = array.array("H")
    wide.frombytes(encode_have(3) * 2)  # a non-byte buffer format must be read as raw bytes
    assert parser().feed(memoryview(wide)) == [Have(3), Have(3)]


def test_empty_feed_and_incomplete_message_are_buffered() -> None:
    p = parser()
    assert p.feed(b"") == []
    raw = encode_piece(1, 0, b"x" * 1000)
    assert p.feed(raw[:600]) == []
    assert p.buffered == 600
    assert p.feed(raw[600:]) == [Piece(1, 0, b"x" * 1000)]
    assert p.buffered == 0


# ---------------------------------------------------------------------------------------------
# chunking

STREAM_EVENTS: list[Event] = [
    Handshake(INFO_HASH, PEER_ID, make_reserved(RESERVED_FAST, RESERVED_EXTENDED)),
    Extended(0, b"d1:md11:ut_metadatai3eee"),
    Bitfield(b"\x80" + bytes(11) + b"\x10"),
    KeepAlive(),
    Unchoke(),
    Have(7),
    Piece(0, 0, bytes(range(256)) * 3),
    Request(1, 0, 16384),
    AllowedFast(3),
    KeepAlive(),
    Cancel(1, 0, 16384),
    Port(51413),
    RejectRequest(2, 16384, 100),
    Choke(),
]
STREAM = b"".join(encode_event(e) for e in STREAM_EVENTS)


def test_split_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        p = WireParser(num_pieces=N)
        assert p.feed(STREAM[:cut]) + p.feed(STREAM[cut:]) == STREAM_EVENTS, cut


def test_split_at_every_pair_of_boundaries_around_the_handshake() -> None:
    for a in range(0, 80):
        for b in range(a, 90):
            p = WireParser(num_pieces=N)
            got = p.feed(STREAM[:a]) + p.feed(STREAM[a:b]) + p.feed(STREAM[b:])
            assert got == STREAM_EVENTS, (a, b)


def test_one_byte_at_a_time() -> None:
    p = WireParser(num_pieces=N)
    got: list[Event] = []
    for i in range(len(STREAM)):
        got += p.feed(STREAM[i : i + 1])
        assert p.buffered <= max(HANDSHAKE_LEN, 4 + 9 + 768)
    assert got == STREAM_EVENTS


# ---------------------------------------------------------------------------------------------
# malformed input

FIXED_LENGTHS = {
    MsgId.CHOKE: 1,
    MsgId.UNCHOKE: 1,
    MsgId.INTERESTED: 1,
    MsgId.NOT_INTERESTED: 1,
    MsgId.HAVE: 5,
    MsgId.REQUEST: 13,
    MsgId.CANCEL: 13,
    MsgId.PORT: 3,
    MsgId.SUGGEST_PIECE: 5,
    MsgId.HAVE_ALL: 1,
    MsgId.HAVE_NONE: 1,
    MsgId.REJECT_REQUEST: 13,
    MsgId.ALLOWED_FAST: 5,
}


@pytest.mark.parametrize(
    ("mid", "length"),
    [
        (mid, size + delta)
        for mid, size in FIXED_LENGTHS.items()
        for delta in (-1, 1, 1000)
        if size + delta >= 1  # length 0 is a keep-alive, not a short message
    ],
)
def test_fixed_length_messages_must_have_their_exact_length(mid: MsgId, length: int) -> None:
    header = struct.pack(">IB", length, mid)
    # judged from the 5-byte header alone, before any body is buffered
    with pytest.raises(ProtocolError, match="bad length"):
        parser().feed(header)


def test_oversized_length_prefix_fails_from_the_prefix_alone() -> None:
    p = parser()
    with pytest.raises(ProtocolError, match="exceeds limit"):
        p.feed(struct.pack(">I", 100 * 1024 * 1024))
    # and the parser stays failed
    with pytest.raises(ProtocolError, match="already failed"):
        p.feed(encode_have(1))


def test_oversized_length_prefix_fails_when_it_completes_a_buffered_prefix() -> None:
    p = parser()
    p.feed(encode_have(1) + b"\x7f\xff")
    with pytest.raises(ProtocolError, match="exceeds limit"):
        p.feed(b"\xff\xff")


def test_bad_length_for_the_id_fails_when_the_id_byte_arrives_later() -> None:
    p = parser()
    p.feed(encode_have(1) + struct.pack(">I", 1000))  # plausible prefix, id not yet known
    assert p.buffered == 4
    with pytest.raises(ProtocolError, match="bad length"):
        p.feed(bytes([MsgId.HAVE]))


def test_piece_larger_than_max_block_fails_from_its_header() -> None:
    header = struct.pack(">IBII", 9 + BLOCK_SIZE + 1, MsgId.PIECE, 0, 0)
    with pytest.raises(ProtocolError, match="bad length"):
        parser().feed(header[:5])
    big = parser(max_block_len=MAX_BLOCK_LEN)
    assert big.feed(header + bytes(BLOCK_SIZE + 1)) == [Piece(0, 0, bytes(BLOCK_SIZE + 1))]


def test_empty_piece_is_refused() -> None:
    with pytest.raises(ProtocolError):
        parser().feed(msg(MsgId.PIECE, struct.pack(">II", 0, 0)))


@pytest.mark.parametrize("length", [0, BLOCK_SIZE + 1, 2**32 - 1])
@pytest.mark.parametrize("encoder", [encode_request, encode_cancel, encode_reject])
def test_block_lengths_are_bounded(length: int, encoder: object) -> None:
    with pytest.raises(ProtocolError, match="block length"):
        parser().feed(encoder(1, 0, length))  # type: ignore[operator]


def test_max_block_len_is_configurable_up_to_128_kib() -> None:
    p = parser(max_block_len=MAX_BLOCK_LEN)
    assert p.feed(encode_request(1, 0, 32768)) == [Request(1, 0, 32768)]
    with pytest.raises(ValueError):
        WireParser(max_block_len=MAX_BLOCK_LEN + 1)


@pytest.mark.parametrize(
    "raw",
    [
        encode_have(N),
        encode_request(N, 0, 1),
        encode_piece(N, 0, b"x"),
        encode_cancel(2**32 - 1, 0, 1),
        encode_suggest(N),
        encode_reject(N, 0, 1),
        encode_allowed_fast(N),
    ],
)
def test_piece_index_must_be_in_range_when_known(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="out of range"):
        parser().feed(raw)
    assert len(parser(num_pieces=None).feed(raw)) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(12), "expected 13"),
        (bytes(14), "expected 13"),
        (bytes(12) + b"\x08", "spare bits"),
        (bytes(12) + b"\x01", "spare bits"),
    ],
)
def test_bitfield_size_and_spare_bits(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason if "spare" in reason else "bad length"):
        parser().feed(encode_bitfield(data))
    with pytest.raises(ProtocolError, match=reason):
        check_bitfield(data, N)


def test_bitfield_before_the_piece_count_is_known() -> None:
    p = parser(num_pieces=None)
    data = bytes(12) + b"\x01"  # spare bits cannot be judged yet
    assert p.feed(encode_bitfield(data)) == [Bitfield(data)]
    with pytest.raises(ProtocolError, match="spare bits"):
        check_bitfield(data, N)  # what the shell does once metadata arrives
    p.set_num_pieces(N)
    assert p.num_pieces == N
    with pytest.raises(ProtocolError, match="out of range"):
        p.feed(encode_have(N))
    with pytest.raises(ProtocolError, match=r"exceeds limit|bad length"):
        parser(num_pieces=None).feed(struct.pack(">IB", 2 + MAX_BITFIELD_BYTES_UNKNOWN, 5))


@pytest.mark.parametrize(
    "first", [encode_bitfield(bytes(13)), encode_have_all(), encode_have_none()]
)
@pytest.mark.parametrize(
    "second", [encode_bitfield(bytes(13)), encode_have_all(), encode_have_none()]
)
def test_later_bitfield_like_messages_are_passed_on(first: bytes, second: bytes) -> None:
    """aria2 sends a bitfield and then have-none: the shell merges, the parser must not drop."""
    p = parser()
    events = p.feed(first + encode_have(1)) + p.feed(second)
    assert len(events) == 3
    assert p.bitfield_messages == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"\x14",  # wrong protocol string length: fails on the first byte
        b"\x13BitTorrent protocoX",
        b"\x13bittorrent",
        b"GET / HTTP/1.1\r\n",
        b"\x00\x00\x00\x05\x04\x00\x00\x00\x01",  # a message where the handshake should be
    ],
)
def test_bad_handshake_protocol_string(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="handshake"):
        WireParser().feed(raw)


def test_unknown_ids_are_bounded_like_extended_messages() -> None:
    p = parser(max_extended_len=100)
    assert p.max_message_len == max(101, 9 + BLOCK_SIZE)
    with pytest.raises(ProtocolError, match="bad length"):
        p.feed(struct.pack(">IB", 101, 42))
    with pytest.raises(ProtocolError, match="bad length"):
        parser(max_extended_len=100).feed(struct.pack(">IB", 102, MsgId.EXTENDED))


def test_extended_message_needs_an_id_byte() -> None:
    with pytest.raises(ProtocolError, match="bad length"):
        parser().feed(msg(MsgId.EXTENDED))


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=300),
    handshake=st.booleans(),
    fast=st.booleans(),
    num_pieces=st.one_of(st.none(), st.integers(0, 64)),
    cut=st.integers(0, 300),
)
def test_arbitrary_bytes_raise_only_protocol_error(
    data: bytes, handshake: bool, fast: bool, num_pieces: int | None, cut: int
) -> None:
    p = WireParser(expect_handshake=handshake, num_pieces=num_pieces)
    p.fast = fast
    with contextlib.suppress(ProtocolError):
        p.feed(data[:cut])
        p.feed(data[cut:])


@settings(max_examples=300)
@given(
    prefix=st.sampled_from([b"", encode_handshake(INFO_HASH, PEER_ID)]),
    tail=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 25), st.binary(max_size=40)), max_size=8
    ),
)
def test_plausible_frames_raise_only_protocol_error(
    prefix: bytes, tail: list[tuple[int, int, bytes]]
) -> None:
    """Frames with small, plausible length prefixes reach deeper than uniform random bytes."""
    stream = prefix + b"".join(struct.pack(">IB", n, mid) + body for n, mid, body in tail)
    p = WireParser(expect_handshake=bool(prefix), num_pieces=16)
    with contextlib.suppress(ProtocolError):
        p.feed(stream)


def _events(num_pieces: int) -> st.SearchStrategy[Event]:
    index = st.integers(0, num_pieces - 1)
    u32 = st.integers(0, 2**32 - 1)
    block = st.integers(1, BLOCK_SIZE)
    return st.one_of(
        st.sampled_from([KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested()]),
        st.builds(Have, index),
        st.builds(Request, index, u32, block),
        st.builds(Piece, index, u32, st.binary(min_size=1, max_size=64)),
        st.builds(Cancel, index, u32, block),
        st.builds(Port, st.integers(0, 65535)),
        st.builds(SuggestPiece, index),
        st.builds(RejectRequest, index, u32, block),
        st.builds(AllowedFast, index),
        st.builds(Extended, st.integers(0, 255), st.binary(max_size=64)),
    )


@st.composite
def _session(draw: st.DrawFn) -> tuple[int, list[Event]]:
    num_pieces = draw(st.integers(1, 70))
    nbytes = (num_pieces + 7) // 8
    spare = nbytes * 8 - num_pieces
    first: list[Event] = []
    kind = draw(st.sampled_from(["none", "bitfield", "all", "nothing"]))
    if kind == "bitfield":
        raw = bytearray(draw(st.binary(min_size=nbytes, max_size=nbytes)))
        raw[-1] &= (0xFF << spare) & 0xFF
        first = [Bitfield(bytes(raw))]
    elif kind == "all":
        first = [HaveAll()]
    elif kind == "nothing":
        first = [HaveNone()]
    rest = draw(st.lists(_events(num_pieces), max_size=30))
    return num_pieces, first + rest


@settings(max_examples=300)
@given(session=_session(), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_valid_sequences_round_trip_through_any_chunking(
    session: tuple[int, list[Event]], cuts: list[int]
) -> None:
    num_pieces, events = session
    hs = Handshake(INFO_HASH, PEER_ID, make_reserved(RESERVED_FAST))
    stream = b"".join(encode_event(e) for e in [hs, *events])
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    p = WireParser(num_pieces=num_pieces)
    got: list[Event] = []
    for a, b in itertools.pairwise(bounds):
        got += p.feed(stream[a:b])
    assert got == [hs, *events]
    assert p.buffered == 0


@settings(max_examples=300)
@given(session=_session(), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255))))
def test_corrupted_valid_streams_raise_only_protocol_error(
    session: tuple[int, list[Event]], flips: list[tuple[int, int]]
) -> None:
    num_pieces, events = session
    stream = bytearray(b"".join(encode_event(e) for e in events))
    for pos, value in flips:
        if pos < len(stream):
            stream[pos] = value
    p = WireParser(expect_handshake=False, num_pieces=num_pieces)
    p.fast = True
    with contextlib.suppress(ProtocolError):
        p.feed(stream)
