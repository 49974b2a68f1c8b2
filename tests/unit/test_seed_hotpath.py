"""The seeding hot path: runs of REQUEST messages parsed in one pass, blocks sent without a join.

Parser tests prove the batched delivery (``on_requests``) hands over exactly what per-message
delivery (``feed``) does, in the same order and with the same errors, however the bytes are
split into reads. Send tests put a :class:`PeerConnection` on a real loopback socket pair and
check that :meth:`PeerConnection.send_parts` keeps every byte in order whether the kernel takes
a write whole, in part, or not at all (the transport's buffer then holds the rest).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.net.peer import PeerConnection, _send_direct
from ccbt_engine.protocol import wire

pytestmark = pytest.mark.timeout(30)

NUM_PIECES = 50


class Sink:
    """Records what the parser delivers, as comparable tuples; ``batched`` adds on_requests."""

    def __init__(self) -> None:
        self.got: list[tuple[object, ...]] = []
        self.runs: list[int] = []

    def on_event(self, event: wire.Event) -> bool:
        self.got.append((type(event).__name__, wire.encode_event(event)))
        return False

    def on_piece(self, index: int, begin: int, block: memoryview) -> bool:
        self.got.append(("Piece", wire.encode_piece(index, begin, bytes(block))))
        return False


class BatchedSink(Sink):
    def on_requests(self, requests: list[tuple[int, int, int]]) -> bool:
        self.runs.append(len(requests))
        for index, begin, length in requests:
            self.got.append(("Request", wire.encode_request(index, begin, length)))
        return False


def _parser() -> wire.WireParser:
    p = wire.WireParser(expect_handshake=False, num_pieces=NUM_PIECES)
    p.fast = True
    return p


def _deliver(data: bytes, cuts: list[int], sink: Sink) -> None:
    """Feed ``data`` through the buffered API in the reads ``cuts`` delimit."""
    parser = _parser()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for lo, hi in itertools.pairwise(bounds):
        chunk = data[lo:hi]
        while chunk:
            view = parser.get_buffer(-1)
            n = min(len(view), len(chunk))
            view[:n] = chunk[:n]
            parser.buffer_updated(n, sink)
            chunk = chunk[n:]


def test_a_run_of_requests_is_one_call_in_order_with_other_messages() -> None:
    msgs = [wire.encode_request(1, i * 16384, 16384) for i in range(40)]
    msgs.insert(10, wire.encode_have(3))
    msgs.append(wire.encode_interested())
    msgs += [wire.encode_request(2, 0, 16384), wire.encode_request(2, 16384, 16384)]
    data = b"".join(msgs)
    batched, single = BatchedSink(), Sink()
    _deliver(data, [], batched)
    for ev in _parser().feed(data):
        single.on_event(ev)
    assert batched.got == single.got
    assert batched.runs == [10, 30, 2]


def test_an_invalid_request_ends_the_run_and_fails_like_a_lone_one() -> None:
    good = [wire.encode_request(1, 0, 16384), wire.encode_request(1, 16384, 16384)]
    for bad in (
        wire.encode_request(NUM_PIECES, 0, 16384),  # index out of range
        wire.encode_request(1, 0, 0),  # empty block
        wire.encode_request(1, 0, wire.BLOCK_SIZE + 1),  # too long
    ):
        sink = BatchedSink()
        parser = _parser()
        data = b"".join(good) + bad + wire.encode_request(1, 0, 16384)
        view = parser.get_buffer(-1)
        view[: len(data)] = data
        with pytest.raises(wire.ProtocolError):
            parser.buffer_updated(len(data), sink)
        assert sink.runs == [2]
        with pytest.raises(wire.ProtocolError):
            _parser().feed(bad)


def test_a_sink_that_stops_keeps_the_rest_buffered() -> None:
    class Stopper(BatchedSink):
        def on_requests(self, requests: list[tuple[int, int, int]]) -> bool:
            super().on_requests(requests)
            return True

    parser = _parser()
    data = wire.encode_request(1, 0, 16384) * 3 + wire.encode_have(2)
    view = parser.get_buffer(-1)
    view[: len(data)] = data
    sink = Stopper()
    assert parser.buffer_updated(len(data), sink) is True
    assert sink.runs == [3] and parser.buffered == 9  # the HAVE waits for the next call


_message = st.one_of(
    st.builds(
        wire.encode_request,
        st.integers(0, NUM_PIECES + 2),
        st.integers(0, 2**32 - 1),
        st.integers(0, wire.BLOCK_SIZE + 2),
    ),
    st.builds(wire.encode_have, st.integers(0, NUM_PIECES - 1)),
    st.builds(wire.encode_cancel, st.integers(0, 3), st.integers(0, 9), st.integers(1, 9)),
    st.just(wire.encode_keepalive()),
    st.just(wire.encode_unchoke()),
    st.builds(wire.encode_piece, st.integers(0, 3), st.integers(0, 99), st.binary(max_size=40)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, max_size=30), st.lists(st.integers(0, 2000), max_size=6))
def test_batched_delivery_equals_per_message_delivery(msgs: list[bytes], cuts: list[int]) -> None:
    data = b"".join(msgs)
    errors: list[str | None] = []
    sinks = [Sink(), BatchedSink()]  # the same buffered API, per message and batched
    for sink in sinks:
        try:
            _deliver(data, cuts, sink)
            errors.append(None)
        except wire.ProtocolError as exc:
            errors.append(str(exc))
    assert errors[0] == errors[1]
    assert sinks[0].got == sinks[1].got
    if errors[0] is None:  # and what feed() returns (it drops the events of a failed call)
        assert [(type(e).__name__, wire.encode_event(e)) for e in _parser().feed(data)] == (
            sinks[1].got
        )


# --------------------------------------------------------------------------------------------
# send_parts on a real socket


async def _connection(
    small_buffers: bool,
) -> tuple[PeerConnection, socket.socket, asyncio.Transport]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(
        lambda: PeerConnection(peer_id=b"-CC0000-000000000000", lookup=lambda _h: None),
        sock=ours,
    )
    if small_buffers:  # after connection_made raised them: make the kernel take less
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    return conn, theirs, transport


async def _read_all(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < size:
        chunk = await loop.sock_recv(sock, 1 << 20)
        assert chunk
        got += chunk
    return bytes(got)


@pytest.mark.parametrize("small_buffers", [False, True])
async def test_send_parts_keeps_order_through_partial_writes(small_buffers: bool) -> None:
    conn, theirs, transport = await _connection(small_buffers)
    try:
        assert conn._direct_fd is not None  # plain TCP on the standard loop
        payload = os.urandom(3 << 20)
        expected = bytearray()
        view = memoryview(payload)
        for batch in range(6):  # later batches find the transport's buffer busy
            parts: list[bytes | memoryview] = []
            for i in range(8):
                lo = (batch * 8 + i) * 65536
                header = wire.encode_piece_header(batch, i, 65536)
                parts += [header, view[lo : lo + 65536]]
                expected += header + payload[lo : lo + 65536]
            conn.send_parts(parts)
        conn.send(b"tail")
        expected += b"tail"
        assert conn.bytes_out == len(expected)
        assert await _read_all(theirs, len(expected)) == bytes(expected)
    finally:
        transport.close()
        theirs.close()


async def test_send_direct_leaves_everything_to_a_busy_or_failing_transport() -> None:
    conn, theirs, transport = await _connection(False)
    try:
        fd = conn._direct_fd
        assert fd is not None
        parts: list[bytes | memoryview] = [b"abc", memoryview(b"defg")]
        transport.write(b"x" * 10)  # kernel takes it: buffer empty, so writev goes ahead
        assert _send_direct(transport, fd, parts) == []
        bad_fd = os.open(os.devnull, os.O_RDONLY)
        try:  # writev fails (not writable): the transport gets every part to deal with
            assert _send_direct(transport, bad_fd, parts) == parts
        finally:
            os.close(bad_fd)
        assert await _read_all(theirs, 17) == b"x" * 10 + b"abcdefg"
    finally:
        transport.close()
        theirs.close()


async def test_encrypted_and_non_tcp_transports_never_write_directly() -> None:
    class FakeTransport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[list[bytes | memoryview]] = []

        def writelines(self, list_of_data: object) -> None:
            self.lines.append(list(list_of_data))  # type: ignore[call-overload]

        def get_extra_info(self, name: str, default: object = None) -> object:
            return default

        def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
            pass

    conn = PeerConnection(peer_id=b"-CC0000-000000000000", lookup=lambda _h: None)
    fake = FakeTransport()
    conn.connection_made(fake)
    assert conn._direct_fd is None
    conn.send_parts([b"ab", memoryview(b"cd")])
    assert [b"".join(bytes(p) for p in line) for line in fake.lines] == [b"abcd"]
