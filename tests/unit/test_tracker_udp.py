"""UDP tracker client against a scripted BEP 15 tracker on 127.0.0.1 (and ::1 when present)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ccbt_engine.tracker import udp_protocol as up
from ccbt_engine.tracker.protocol import (
    AnnounceRequest,
    Event,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
)
from ccbt_engine.tracker.udp import UdpTracker, parse_udp_url

IH = bytes(range(20))
REQ = AnnounceRequest(IH, b"-CC0001-abcdefghijkl", 6881, 1, 2, 3, Event.STARTED, key=9)
BASE = 0.05  # retransmission base for tests (BEP 15 says 15 s)

Reply = Callable[[bytes], bytes | None]


class FakeTracker(asyncio.DatagramProtocol):
    """Answers like a BEP 15 tracker; ``drop`` first datagrams and ``override`` replies."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[bytes] = []
        self.connects = 0
        self.drop = 0
        self.override: Reply | None = None
        self.peers = bytes([127, 0, 0, 1, 0x1A, 0xE1])
        self.conn_id = 0x1234

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)
        if self.drop:
            self.drop -= 1
            return
        out = self.override(data) if self.override else self.answer(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def answer(self, data: bytes) -> bytes | None:
        if len(data) == 16:
            self.connects += 1
            _, action, tid = struct.unpack(">QII", data)
            return struct.pack(">IIQ", 0, tid, self.conn_id)
        cid, action, tid = struct.unpack_from(">QII", data)
        if cid != self.conn_id:
            return struct.pack(">II", 3, tid) + b"bad connection id"
        if action == 1:
            return struct.pack(">IIIII", 1, tid, 1800, 3, 4) + self.peers
        if action == 2:
            n = (len(data) - 16) // 20
            return struct.pack(">II", 2, tid) + struct.pack(">III", 5, 6, 7) * n
        return None


async def start_fake(host: str = "127.0.0.1") -> tuple[FakeTracker, str]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(FakeTracker, local_addr=(host, 0))
    port = transport.get_extra_info("sockname")[1]
    url = f"udp://[{host}]:{port}/announce" if ":" in host else f"udp://{host}:{port}/announce"
    return proto, url


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeTracker, UdpTracker]]:
    proto, url = await start_fake()
    client = UdpTracker(url, base_timeout=BASE, max_retries=3)
    yield proto, client
    await client.close()
    assert proto.transport is not None
    proto.transport.close()


def test_parse_udp_url() -> None:
    assert parse_udp_url("udp://tracker.example:1337/announce") == ("tracker.example", 1337)
    assert parse_udp_url("udp://[::1]:80") == ("::1", 80)
    for bad in ("udp://host", "http://h:1/", "udp://:5", "udp://h:99999"):
        with pytest.raises(TrackerError):
            parse_udp_url(bad)


async def test_announce_and_scrape(fake: tuple[FakeTracker, UdpTracker]) -> None:
    proto, client = fake
    r = await client.announce(REQ)
    assert r.interval == 1800 and (r.incomplete, r.complete) == (3, 4)
    assert r.peers == [("127.0.0.1", 6881)]
    announce = proto.received[-1]
    assert len(announce) == 98 and announce[16:36] == IH
    other = b"\xee" * 20
    assert await client.scrape([IH, other]) == {
        IH: ScrapeResult(5, 6, 7),
        other: ScrapeResult(5, 6, 7),
    }


async def test_connection_id_is_reused_for_60_seconds(
    fake: tuple[FakeTracker, UdpTracker], monkeypatch: pytest.MonkeyPatch
) -> None:
    proto, client = fake
    await client.announce(REQ)
    await client.announce(REQ)
    await client.scrape([IH])
    assert proto.connects == 1
    # Age the cached id past its lifetime: the next request connects again.
    assert client._conn is not None
    client._conn = up.ConnectionId(client._conn.value, client._conn.received_at - 61)
    await client.announce(REQ)
    assert proto.connects == 2


async def test_retransmits_with_backoff_then_succeeds(
    fake: tuple[FakeTracker, UdpTracker],
) -> None:
    proto, client = fake
    proto.drop = 2  # lose the first connect and its first retransmission
    start = time.monotonic()
    r = await client.announce(REQ)
    elapsed = time.monotonic() - start
    assert r.peers
    assert len(proto.received) == 4  # connect x3, announce x1
    assert proto.received[0] == proto.received[1] == proto.received[2]  # same transaction
    assert elapsed >= BASE + 2 * BASE  # waited 15*2^0 then 15*2^1 (scaled)


async def test_gives_up_after_max_retries(fake: tuple[FakeTracker, UdpTracker]) -> None:
    proto, client = fake
    proto.drop = 1000
    start = time.monotonic()
    with pytest.raises(TrackerError, match="no reply after 4 attempts"):
        await client.announce(REQ)
    elapsed = time.monotonic() - start
    assert len(proto.received) == 4
    assert BASE * 15 <= elapsed < BASE * 15 + 1.0  # 1 + 2 + 4 + 8 base periods


async def test_error_action_surfaces_message(fake: tuple[FakeTracker, UdpTracker]) -> None:
    proto, client = fake

    def refuse(data: bytes) -> bytes | None:
        tid = struct.unpack_from(">I", data, 12)[0]
        return struct.pack(">II", 3, tid) + b"torrent not registered"

    proto.override = refuse
    with pytest.raises(TrackerFailure, match="torrent not registered"):
        await client.announce(REQ)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda good: good[:12],  # announce reply too short
        lambda good: struct.pack(">I", 2) + good[4:],  # wrong action
        lambda good: good + b"\x00\x01",  # peer list not a multiple of 6
    ],
)
async def test_malformed_replies_rejected(
    fake: tuple[FakeTracker, UdpTracker], mangle: Callable[[bytes], bytes]
) -> None:
    proto, client = fake

    def bad(data: bytes) -> bytes | None:
        good = proto.answer(data)
        return good if len(data) == 16 or good is None else mangle(good)

    proto.override = bad
    with pytest.raises(TrackerError):
        await client.announce(REQ)


async def test_stray_datagrams_are_ignored(fake: tuple[FakeTracker, UdpTracker]) -> None:
    proto, client = fake

    def noisy(data: bytes) -> bytes | None:
        good = proto.answer(data)
        assert proto.transport is not None and good is not None
        # Garbage, a short packet and a reply with the wrong transaction id come first.
        tid = struct.unpack_from(">I", good, 4)[0]
        for junk in (b"\x00\x01", struct.pack(">II", 1, tid ^ 1) + b"\x00" * 12):
            proto.transport.sendto(junk, last_addr[0])
        return good

    last_addr: list[Any] = [None]
    original = proto.datagram_received

    def capture(data: bytes, addr: Any) -> None:
        last_addr[0] = addr
        original(data, addr)

    proto.datagram_received = capture  # type: ignore[method-assign]
    proto.override = noisy
    r = await client.announce(REQ)
    assert r.peers == [("127.0.0.1", 6881)]


async def test_ipv6_tracker_returns_ipv6_peers() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    proto, url = await start_fake("::1")
    proto.peers = b"\x00" * 15 + b"\x01" + b"\x1a\xe1"
    client = UdpTracker(url, base_timeout=BASE)
    try:
        r = await client.announce(REQ)
        assert client.ipv6
        assert r.peers == [("::1", 6881)]
    finally:
        await client.close()
        assert proto.transport is not None
        proto.transport.close()


async def test_closed_port_reports_the_socket_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = UdpTracker(f"udp://127.0.0.1:{port}", base_timeout=BASE, max_retries=1)
    with pytest.raises(TrackerError, match="no reply after 2 attempts"):
        await client.announce(REQ)
    await client.close()
