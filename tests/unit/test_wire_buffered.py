"""The wire parser's buffered API (asyncio.BufferedProtocol style) and the connection using it.

What :meth:`WireParser.get_buffer` / :meth:`WireParser.buffer_updated` must guarantee on top of
:meth:`WireParser.feed`: the same events in the same order however the bytes are split between
reads, blocks handed over as views that are right while the sink runs, a buffer that grows for
large messages and fast peers and moves an incomplete message to the front without corrupting it,
a sink that can stop the parser, and the same hostile-input rules (ProtocolError only, and once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccbt_engine.net.peer import PeerConnection
from ccbt_engine.protocol.wire import (
    HANDSHAKE_LEN,
    RECV_BUFFER_MIN,
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
    KeepAlive,
    Piece,
    Port,
    ProtocolError,
    RejectRequest,
    Request,
    Unchoke,
    WireParser,
    encode_event,
    encode_handshake,
    encode_have,
    encode_piece,
    make_reserved,
)

INFO_HASH = bytes(range(20))
PEER_ID = b"-CC0001-abcdefghijkl"
OUR_ID = b"-CC0001-ourselves-12"
N = 100

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
    Piece(5, 16384, bytes(range(255, -1, -1)) * 64),
    Cancel(1, 0, 16384),
    Port(51413),
    RejectRequest(2, 16384, 100),
    Choke(),
]
STREAM = b"".join(encode_event(e) for e in STREAM_EVENTS)


class Sink:
    """Records what the parser delivers; blocks are copied (the view is only lent)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.got: list[Event] = []
        self.views: list[memoryview] = []
        self.stop_after = stop_after

    def _stop(self) -> bool:
        return self.stop_after is not None and len(self.got) >= self.stop_after

    def on_event(self, event: Event) -> bool:
        self.got.append(event)
        return self._stop()

    def on_piece(self, index: int, begin: int, block: memoryview) -> bool:
        assert isinstance(block, memoryview)
        self.views.append(block)
        self.got.append(Piece(index, begin, bytes(block)))
        return self._stop()


class RunSink(Sink):
    """Takes runs of consecutive PIECE messages in one call (``on_pieces``), as the torrent does."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__(stop_after)
        self.runs: list[int] = []

    def on_pieces(self, blocks: list[tuple[int, int, memoryview]]) -> bool:
        self.runs.append(len(blocks))
        for index, begin, block in blocks:
            assert isinstance(block, memoryview)
            self.views.append(block)
            self.got.append(Piece(index, begin, bytes(block)))
        return self._stop()


def pour(p: WireParser, sink: Sink, data: bytes) -> None:
    """Read ``data`` the way a BufferedProtocol transport does: into the lent views."""
    off = 0
    while off < len(data):
        view = p.get_buffer(-1)
        assert len(view) > 0
        n = min(len(view), len(data) - off)
        view[:n] = data[off : off + n]
        p.buffer_updated(n, sink)
        off += n


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c for c in cuts if 0 <= c < len(data))})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# ---------------------------------------------------------------------------------------------
# splitting


def test_split_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        p, sink = WireParser(num_pieces=N), Sink()
        pour(p, sink, STREAM[:cut])
        pour(p, sink, STREAM[cut:])
        assert sink.got == STREAM_EVENTS, cut
        assert p.buffered == 0


def test_split_at_every_pair_of_boundaries_around_the_handshake_and_a_piece() -> None:
    piece_at = STREAM.index(encode_event(STREAM_EVENTS[6]))
    for a in range(0, 80):
        for b in range(piece_at - 3, piece_at + 20):
            p, sink = WireParser(num_pieces=N), Sink()
            for part in (STREAM[:a], STREAM[a:b], STREAM[b:]):
                pour(p, sink, part)
            assert sink.got == STREAM_EVENTS, (a, b)


def test_one_byte_per_read() -> None:
    p, sink = WireParser(num_pieces=N), Sink()
    for i in range(len(STREAM)):
        view = p.get_buffer()
        view[0] = STREAM[i]
        p.buffer_updated(1, sink)
        assert p.buffered <= max(HANDSHAKE_LEN, 4 + 9 + 16384)
    assert sink.got == STREAM_EVENTS


def test_block_views_point_into_the_receive_buffer_while_the_sink_runs() -> None:
    p, sink = WireParser(expect_handshake=False, num_pieces=N), Sink()
    block = bytes(range(256)) * 64
    pour(p, sink, encode_piece(3, 0, block) + encode_have(1))
    assert sink.got == [Piece(3, 0, block), Have(1)]
    assert sink.views[0].obj is not block  # a view of the parser's buffer, not a copy


def test_a_run_of_pieces_is_one_call_in_order_with_other_messages() -> None:
    blocks = [Piece(2, i * 1000, bytes([i]) * 1000) for i in range(12)]
    events: list[Event] = [*blocks[:5], Have(1), *blocks[5:], Unchoke(), Piece(3, 0, b"x")]
    p, sink = WireParser(expect_handshake=False, num_pieces=N), RunSink()
    pour(p, sink, b"".join(encode_event(e) for e in events))
    assert sink.got == events
    assert sink.runs == [5, 7, 1]
    assert all(isinstance(v.obj, bytearray) for v in sink.views)  # views of its buffer


def test_an_invalid_piece_ends_the_run_and_fails_like_a_lone_one() -> None:
    good = encode_piece(1, 0, b"a" * 100) + encode_piece(1, 100, b"b" * 100)
    for bad in (
        encode_piece(N, 0, b"c"),  # index out of range
        struct.pack(">IB", 9, 7) + struct.pack(">II", 1, 0)[:4],  # too short for a PIECE
        struct.pack(">IBII", 9 + 16384 * 8 + 1, 7, 1, 0),  # longer than any block
    ):
        p, sink = WireParser(expect_handshake=False, num_pieces=N), RunSink()
        data = good + bad + encode_piece(1, 200, b"d")
        view = p.get_buffer()
        view[: len(data)] = data
        with pytest.raises(ProtocolError):
            p.buffer_updated(len(data), sink)
        assert sink.runs == [2]  # the valid blocks before it were delivered, nothing after
        with pytest.raises(ProtocolError):
            WireParser(expect_handshake=False, num_pieces=N).feed(bad + bytes(20000))


def test_a_run_waits_for_an_incomplete_piece_and_a_stop_keeps_the_rest() -> None:
    data = encode_piece(4, 0, b"e" * 500) * 3
    p, sink = WireParser(expect_handshake=False, num_pieces=N), RunSink()
    pour(p, sink, data[:-10])  # the third block is not complete yet
    assert sink.runs == [2] and p.buffered == len(data) // 3 - 10
    pour(p, sink, data[-10:])
    assert sink.runs == [2, 1]
    q, stopper = WireParser(expect_handshake=False, num_pieces=N), RunSink(stop_after=1)
    view = q.get_buffer()
    view[: len(data) + 9] = data + encode_have(5)
    assert q.buffer_updated(len(data) + 9, stopper) is True
    assert stopper.runs == [3] and q.buffered == 9  # the HAVE waits for the next call


# ---------------------------------------------------------------------------------------------
# buffer management


def test_a_piece_straddling_reads_survives_compaction_and_growth() -> None:
    """A tiny maximum forces the buffer to grow for a 16 KiB block and to move partial
    messages to the front over and over; nothing may be lost or reordered."""
    p = WireParser(expect_handshake=False, num_pieces=N, recv_buffer_max=64)
    sink = Sink()
    blocks = [bytes([i]) * (16384 - i) for i in range(1, 6)]
    stream = b"".join(encode_piece(i, 0, b) + encode_have(i) for i, b in enumerate(blocks))
    for part in chunks(stream, list(range(7, len(stream), 997))):
        pour(p, sink, part)
    want: list[Event] = []
    for i, b in enumerate(blocks):
        want += [Piece(i, 0, b), Have(i)]
    assert sink.got == want
    assert p.receive_capacity >= 4 + 9 + 16384 - 1  # it had to hold one whole message


def test_buffer_grows_when_reads_fill_it_and_shrinks_after_a_huge_message() -> None:
    top = 4 * RECV_BUFFER_MIN
    p, sink = WireParser(expect_handshake=False, num_pieces=N, recv_buffer_max=top), Sink()
    lent = []
    for _ in range(5):  # every read fills what was lent (keepalives): a fast peer
        view = p.get_buffer()
        lent.append(len(view))
        view[:] = bytes(len(view))
        p.buffer_updated(len(view), sink)
    assert lent == [RECV_BUFFER_MIN, 2 * RECV_BUFFER_MIN, top, top, top]
    assert len(sink.got) == sum(lent) // 4
    # a read that does not fill the buffer does not grow it
    q = WireParser(expect_handshake=False, num_pieces=N, recv_buffer_max=top)
    for _ in range(3):
        view = q.get_buffer()
        view[:8] = bytes(8)
        q.buffer_updated(8, sink)
    assert q.receive_capacity == RECV_BUFFER_MIN
    # a 200 KB extended message needs more than the maximum; afterwards the buffer shrinks
    big = Extended(9, bytes(200_000))
    pour(p, sink, encode_event(big))
    assert sink.got[-1] == big
    assert p.receive_capacity > top
    assert len(p.get_buffer()) == top
    assert p.receive_capacity == top


def test_sink_can_stop_the_parser_and_the_rest_waits() -> None:
    p = WireParser(num_pieces=N)
    sink = Sink(stop_after=3)
    view = p.get_buffer()
    view[: len(STREAM)] = STREAM
    assert p.buffer_updated(len(STREAM), sink) is True
    assert sink.got == STREAM_EVENTS[:3]
    assert p.buffered == len(STREAM) - len(b"".join(encode_event(e) for e in STREAM_EVENTS[:3]))
    sink.stop_after = None
    p.get_buffer()
    assert p.buffer_updated(0, sink) is False  # resumes where it stopped
    assert sink.got == STREAM_EVENTS


def test_receive_takes_bytes_larger_than_the_buffer_and_mixes_with_feed() -> None:
    p = WireParser(num_pieces=N, recv_buffer_max=1024)
    sink = Sink()
    half = len(STREAM) // 2 + 5
    assert p.receive(STREAM[:half], sink) is False
    rest = STREAM[half:]
    # feed() finishes what receive() left incomplete, and hands back events instead
    fed = p.feed(rest[:10])
    fed += p.feed(rest[10:])
    assert sink.got + fed == STREAM_EVENTS
    # and the other way round: feed leaves a tail, the buffered API finishes it
    q, sink2 = WireParser(num_pieces=N), Sink()
    early = q.feed(STREAM[:half])
    pour(q, sink2, STREAM[half:])
    assert early + sink2.got == STREAM_EVENTS


def test_handshake_callback_can_set_the_piece_count_for_the_same_read() -> None:
    """The shell learns the torrent from the handshake; a bitfield in the same read must be
    checked against that torrent's piece count, not the unknown-size bound."""

    class Shell(Sink):
        def __init__(self, parser: WireParser) -> None:
            super().__init__()
            self.parser = parser

        def on_event(self, event: Event) -> bool:
            if isinstance(event, Handshake):
                self.parser.set_num_pieces(8)
            return super().on_event(event)

    p = WireParser()
    hs = encode_handshake(INFO_HASH, PEER_ID)
    with pytest.raises(ProtocolError):
        pour(p, Shell(p), hs + encode_event(Bitfield(b"\xff\x00")))  # 2 bytes for 8 pieces
    p = WireParser()
    shell = Shell(p)
    pour(p, shell, hs + encode_event(Bitfield(b"\xff")) + encode_event(HaveAll()))
    assert shell.got[1:] == [Bitfield(b"\xff"), HaveAll()]


def test_violations_fail_the_parser_for_good() -> None:
    p, sink = WireParser(expect_handshake=False, num_pieces=N), Sink()
    view = p.get_buffer()
    bad = encode_have(1) + struct.pack(">IB", 5, 1)  # an unchoke five bytes long
    view[: len(bad)] = bad
    with pytest.raises(ProtocolError):
        p.buffer_updated(len(bad), sink)
    assert sink.got == [Have(1)]  # delivered before the violation was reached
    assert len(p.get_buffer()) > 0  # a transport may still ask; it gets a buffer
    with pytest.raises(ProtocolError, match="already failed"):
        p.buffer_updated(0, sink)
    with pytest.raises(ProtocolError, match="already failed"):
        p.feed(b"")


def test_a_sink_exception_fails_the_parser_too() -> None:
    class Broken(Sink):
        def on_piece(self, index: int, begin: int, block: memoryview) -> bool:
            raise ProtocolError("request outside piece")

    p = WireParser(expect_handshake=False, num_pieces=N)
    with pytest.raises(ProtocolError, match="outside"):
        pour(p, Broken(), encode_piece(1, 0, b"abc"))
    with pytest.raises(ProtocolError, match="already failed"):
        p.receive(encode_have(1), Sink())


def test_buffer_updated_refuses_more_than_was_lent() -> None:
    p = WireParser(expect_handshake=False, num_pieces=N)
    view = p.get_buffer()
    with pytest.raises(ValueError):
        p.buffer_updated(len(view) + 1, Sink())


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.one_of(
            st.builds(Have, st.integers(0, N - 1)),
            st.builds(
                Piece,
                st.integers(0, N - 1),
                st.integers(0, 2**32 - 1),
                st.binary(min_size=1, max_size=3000),
            ),
            st.builds(Extended, st.integers(0, 255), st.binary(max_size=3000)),
            st.sampled_from([KeepAlive(), Choke(), Unchoke()]),
        ),
        max_size=20,
    ),
    cuts=st.lists(st.integers(0, 40_000), max_size=15),
    recv_max=st.sampled_from([16, 100, 4096, 1 << 20]),
)
def test_valid_streams_round_trip_through_any_reads(
    events: list[Event], cuts: list[int], recv_max: int
) -> None:
    stream = b"".join(encode_event(e) for e in events)
    for sink in (Sink(), RunSink()):
        p = WireParser(expect_handshake=False, num_pieces=N, recv_buffer_max=recv_max)
        p.fast = True
        for part in chunks(stream, cuts):
            pour(p, sink, part)
        assert sink.got == events
        assert p.buffered == 0


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=400),
    handshake=st.booleans(),
    num_pieces=st.one_of(st.none(), st.integers(0, 64)),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_arbitrary_reads_raise_only_protocol_error(
    data: bytes, handshake: bool, num_pieces: int | None, cuts: list[int]
) -> None:
    delivered = []
    for sink in (Sink(), RunSink()):
        p = WireParser(expect_handshake=handshake, num_pieces=num_pieces, recv_buffer_max=64)
        with contextlib.suppress(ProtocolError):
            for part in chunks(data, cuts):
                pour(p, sink, part)
        delivered.append(sink.got)
    assert delivered[0] == delivered[1]  # runs or not: the same messages before any error


# ---------------------------------------------------------------------------------------------
# PeerConnection over both read paths


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 6881) if name == "peername" else default

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for d in list_of_data:
            self.write(d)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Handler:
    """A torrent stand-in; ``runs`` toggles the ``on_peer_pieces`` fast path (without it,
    blocks come as ``Piece`` events)."""

    def __init__(self, runs: bool) -> None:
        self.events: list[Event] = []
        self.batches = 0
        if runs:
            self.on_peer_pieces = self._pieces

    def _pieces(self, conn: PeerConnection, blocks: list[tuple[int, int, memoryview]]) -> None:
        for index, begin, block in blocks:
            if index == 98:
                raise ProtocolError("piece 98 is not ours")
            self.events.append(Piece(index, begin, bytes(block)))

    def on_peer_connected(self, conn: PeerConnection) -> str | None:
        return None

    def on_peer_event(self, conn: PeerConnection, event: Event) -> None:
        if isinstance(event, Have) and event.index == 99:
            raise ProtocolError("have for piece 99 out of range")
        self.events.append(event)

    def on_peer_batch_end(self, conn: PeerConnection) -> None:
        self.batches += 1

    def on_peer_closed(self, conn: PeerConnection, reason: str) -> None:
        pass

    def on_peer_writable(self, conn: PeerConnection) -> None:
        pass


def _read_into(conn: PeerConnection, data: bytes) -> None:
    """What asyncio's transport does with ``data`` arriving: reads of at most the lent view."""
    off = 0
    while off < len(data) and not conn.closed:
        view = conn.get_buffer(-1)
        assert len(view) > 0
        n = min(len(view), len(data) - off)
        view[:n] = data[off : off + n]
        conn.buffer_updated(n)
        off += n


PEER_STREAM_EVENTS = STREAM_EVENTS[1:]
PEER_STREAM = encode_handshake(INFO_HASH, PEER_ID) + STREAM[HANDSHAKE_LEN:]


@pytest.mark.parametrize("runs", [True, False])
@pytest.mark.parametrize("mode", ["buffered", "data_received"])
async def test_connection_delivers_the_same_over_both_read_paths(mode: str, runs: bool) -> None:
    handler = Handler(runs=runs)
    conn = PeerConnection(
        peer_id=OUR_ID, lookup=lambda ih: (handler, ih, N), outgoing_info_hash=INFO_HASH
    )
    transport = FakeTransport()
    conn.connection_made(transport)
    for part in chunks(PEER_STREAM, list(range(0, len(PEER_STREAM), 333))):
        if mode == "buffered":
            _read_into(conn, part)
        else:
            conn.data_received(part)
    assert conn.handler is handler and conn.handshake_done.done()
    assert handler.events == PEER_STREAM_EVENTS
    assert handler.batches > 0
    assert conn.bytes_in == len(PEER_STREAM)
    assert not conn.closed


@pytest.mark.parametrize(
    ("runs", "bad", "reason"),
    [
        (False, encode_have(99), "have for piece 99"),  # on_peer_event raises
        (True, encode_piece(98, 0, b"x"), "piece 98"),  # on_peer_pieces raises
    ],
)
@pytest.mark.parametrize("mode", ["buffered", "data_received"])
async def test_connection_closes_on_a_handler_protocol_error(
    mode: str, runs: bool, bad: bytes, reason: str
) -> None:
    handler = Handler(runs=runs)
    conn = PeerConnection(
        peer_id=OUR_ID, lookup=lambda ih: (handler, ih, N), outgoing_info_hash=INFO_HASH
    )
    transport = FakeTransport()
    conn.connection_made(transport)
    data = encode_handshake(INFO_HASH, PEER_ID) + bad + encode_have(1)
    if mode == "buffered":
        _read_into(conn, data)
    else:
        conn.data_received(data)
    assert conn.closed and transport.closed
    assert conn.close_reason.startswith("protocol error") and reason in conn.close_reason
    assert handler.events == []  # the have after the bad one never reached the handler
