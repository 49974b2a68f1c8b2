"""UDP tracker client (BEP 15): the asyncio shell around :mod:`.udp_protocol`.

One :class:`UdpTracker` per tracker URL keeps one connected datagram socket (so the tracker's
replies are the only datagrams that reach it) and a cached connection id, reused for its
60-second lifetime. Requests are serialised: BEP 15 is request/response and a tracker gains
nothing from us having two in flight.

Retransmission follows BEP 15: the n-th sending waits ``base * 2^n`` seconds for the reply
(``base`` = 15 s in the BEP, configurable so tests run fast). A request that exhausted its
attempts raises :class:`TrackerError`; so does an ``error`` action (as
:class:`TrackerFailure`, carrying the tracker's message) or a reply of the wrong size/action.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import socket
import urllib.parse
from collections.abc import Callable
from typing import Any

from ccbt_engine.tracker import udp_protocol as up
from ccbt_engine.tracker.protocol import (
    AnnounceReply,
    AnnounceRequest,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
)

__all__ = ["DEFAULT_MAX_RETRIES", "UdpTracker", "parse_udp_url"]

#: Retransmissions after the first sending. 3 with the BEP's 15 s base waits 15+30+60+120 s
#: in total before reporting the tracker as down (BEP 15 allows up to 8; nobody waits an hour).
DEFAULT_MAX_RETRIES = 3
_MAX_DATAGRAM = 65535


def parse_udp_url(url: str) -> tuple[str, int]:
    """``udp://host:port/anything`` → (host, port); IPv6 literals in brackets are unwrapped."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise TrackerError(f"invalid UDP tracker URL: {exc}") from None
    if parts.scheme != "udp" or not host or not port:
        raise TrackerError(f"invalid UDP tracker URL {url!r} (need udp://host:port)")
    return host, port


def _scrape_packet(connection_id: int, info_hashes: list[bytes], transaction_id: int) -> bytes:
    return up.build_scrape(connection_id, transaction_id, info_hashes)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self._on_datagram = on_datagram
        self.error: Exception | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: remembered, reported if the request times out.
        self.error = exc


class UdpTracker:
    """One ``udp://`` tracker: connect, announce and scrape with BEP 15 retransmission."""

    def __init__(
        self,
        url: str,
        *,
        base_timeout: float = up.RETRANSMIT_BASE,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.url = url
        self.host, self.port = parse_udp_url(url)
        self.base_timeout = base_timeout
        self.max_retries = max_retries
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Protocol | None = None
        self._ipv6 = False
        self._conn: up.ConnectionId | None = None
        self._lock = asyncio.Lock()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}

    @property
    def ipv6(self) -> bool:
        """Whether the socket (and so the announce reply's peer format) is IPv6."""
        return self._ipv6

    async def _ensure_socket(self) -> asyncio.DatagramTransport:
        if self._transport is not None and not self._transport.is_closing():
            return self._transport
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise TrackerError(f"cannot resolve {self.host}: {exc}") from None
        if not infos:
            raise TrackerError(f"cannot resolve {self.host}")
        family, _, _, _, addr = infos[0]
        remote = (str(addr[0]), int(addr[1]))
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Protocol(self._on_datagram), remote_addr=remote, family=family
            )
        except OSError as exc:
            raise TrackerError(f"cannot open UDP socket to {self.host}: {exc}") from None
        self._transport, self._protocol = transport, protocol
        self._ipv6 = family == socket.AF_INET6
        return transport

    def _on_datagram(self, data: bytes) -> None:
        tid = up.reply_transaction_id(data)
        fut = self._waiting.get(tid) if tid is not None else None
        if fut is not None and not fut.done():
            fut.set_result(data)
        # Anything else is a stray (late duplicate, spoofed or garbage) datagram: dropped.

    async def _request(self, build: Callable[[int], bytes]) -> tuple[bytes, int]:
        """Send ``build(tid)``, retransmitting on the BEP 15 schedule; return (reply, tid).

        The transaction id stays the same across retransmissions, so a reply to an earlier
        sending that arrives late is still accepted.
        """
        transport = await self._ensure_socket()
        tid = secrets.randbits(32)
        packet = build(tid)
        loop = asyncio.get_running_loop()
        for attempt in range(self.max_retries + 1):
            fut: asyncio.Future[bytes] = loop.create_future()
            self._waiting[tid] = fut
            try:
                transport.sendto(packet)
                async with asyncio.timeout(up.retransmit_timeout(attempt, self.base_timeout)):
                    return await fut, tid
            except TimeoutError:
                continue
            except OSError as exc:
                raise TrackerError(f"UDP send failed: {exc}") from None
            finally:
                self._waiting.pop(tid, None)
        err = self._protocol.error if self._protocol is not None else None
        detail = f" (last socket error: {err})" if err is not None else ""
        raise TrackerError(f"no reply after {self.max_retries + 1} attempts{detail}")

    async def _connection_id(self) -> int:
        loop = asyncio.get_running_loop()
        if self._conn is not None and self._conn.valid(loop.time()):
            return self._conn.value
        self._conn = None
        data, tid = await self._request(up.build_connect)
        self._conn = up.parse_connect(data, tid, loop.time())
        return self._conn.value

    async def announce(self, req: AnnounceRequest) -> AnnounceReply:
        async with self._lock:
            try:
                cid = await self._connection_id()
                data, tid = await self._request(lambda t: up.build_announce(cid, t, req))
                return up.parse_announce(data, tid, ipv6=self._ipv6)
            except TrackerFailure:
                # The id may be what the tracker objects to; get a fresh one next time.
                self._conn = None
                raise

    can_scrape = True

    async def scrape(self, info_hashes: list[bytes]) -> dict[bytes, ScrapeResult]:
        out: dict[bytes, ScrapeResult] = {}
        async with self._lock:
            for i in range(0, len(info_hashes), up.MAX_SCRAPE_HASHES):
                batch = info_hashes[i : i + up.MAX_SCRAPE_HASHES]
                try:
                    cid = await self._connection_id()
                    data, tid = await self._request(functools.partial(_scrape_packet, cid, batch))
                    out.update(up.parse_scrape(data, tid, batch))
                except TrackerFailure:
                    self._conn = None
                    raise
        return out

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()
