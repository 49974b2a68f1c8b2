"""Dialling a peer: uTP first with TCP alongside, and remembering which one reached it.

Real loopback sockets. A "TCP-only" peer is a TCP server plus a UDP socket on the same port
that counts the uTP SYNs it is sent and never answers them, as a peer with uTP off (or behind
a NAT that drops it) looks from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from ccbt_engine.net.utp_socket import (
    TCP_MEMORY,
    UTP_HEAD_START,
    UTPListener,
    UTPTransport,
    open_peer_connection,
)

pytestmark = pytest.mark.timeout(60)


class _SilentUDP(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1


@contextlib.asynccontextmanager
async def _tcp_only_peer() -> AsyncIterator[tuple[int, _SilentUDP]]:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, udp = await loop.create_datagram_endpoint(_SilentUDP, local_addr=("127.0.0.1", port))
    try:
        yield port, udp
    finally:
        transport.close()
        server.close()


@contextlib.asynccontextmanager
async def _listener(accept: bool = False) -> AsyncIterator[UTPListener]:
    listener = await UTPListener.open(["127.0.0.1"], 0, asyncio.Protocol if accept else None)
    try:
        yield listener
    finally:
        listener.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_peer_tcp_reached_is_dialled_over_tcp_first_next_time() -> None:
    loop = asyncio.get_running_loop()
    async with _tcp_only_peer() as (port, udp), _listener() as me:
        start = loop.time()
        transport, _ = await open_peer_connection(me, asyncio.Protocol, "127.0.0.1", port, 5)
        first = loop.time() - start
        transport.close()
        assert not isinstance(transport, UTPTransport)
        assert udp.received >= 1  # uTP was tried first and never answered
        assert first >= UTP_HEAD_START  # ...which cost the head start once
        assert ("127.0.0.1", port) in me.tcp_won
        syns = udp.received
        for _ in range(3):  # reconnects: TCP at once, no SYN
            transport, _ = await open_peer_connection(me, asyncio.Protocol, "127.0.0.1", port, 5)
            transport.close()
            assert not isinstance(transport, UTPTransport)
        await asyncio.sleep(0.05)
        assert udp.received == syns


async def test_a_remembered_peer_that_now_answers_only_utp_is_reached_and_forgotten() -> None:
    # TCP-first for a peer whose TCP port is closed now: refused at once, so uTP starts without
    # waiting out the head start, wins, and the peer is uTP-first again
    async with _listener(accept=True) as peer, _listener() as me:
        port = peer.sockets["127.0.0.1"].port
        me.record_winner(("127.0.0.1", port), tcp=True)
        transport, _ = await open_peer_connection(me, asyncio.Protocol, "127.0.0.1", port, 5)
        transport.close()
        assert isinstance(transport, UTPTransport)
        assert ("127.0.0.1", port) not in me.tcp_won


async def test_when_both_fail_the_tcp_error_is_raised_in_either_order() -> None:
    port = _free_port()  # nothing listens: TCP refused; uTP unanswered until its timeout
    for tcp_first in (False, True):
        async with _listener() as me:
            if tcp_first:
                me.record_winner(("127.0.0.1", port), tcp=True)
            with pytest.raises(ConnectionRefusedError):
                await open_peer_connection(me, asyncio.Protocol, "127.0.0.1", port, 1.0)


def test_the_memory_is_bounded_and_least_recently_reached_goes_first() -> None:
    me = UTPListener({})
    for i in range(TCP_MEMORY + 10):
        me.record_winner(("10.0.0.1", i), tcp=True)
    me.record_winner(("10.0.0.1", 10), tcp=True)  # reached again: most recent
    me.record_winner(("10.0.0.1", 11), tcp=False)  # uTP reached it: forgotten
    assert len(me.tcp_won) == TCP_MEMORY - 1
    assert ("10.0.0.1", 9) not in me.tcp_won and ("10.0.0.1", 12) in me.tcp_won
    assert next(reversed(me.tcp_won)) == ("10.0.0.1", 10)
