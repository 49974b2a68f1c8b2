"""BEP 14 Local Service Discovery: find peers for our torrents on the local network by multicast.

Each torrent is announced to 239.192.152.143:6771 (IPv4) or [ff15::efc0:988f]:6771 (IPv6) as an
HTTP-like ``BT-SEARCH`` datagram naming the infohash and our TCP listen port; everybody in the
group hears it, and a client with the same torrent connects to the sender's address at that port.

Layers: :func:`encode_announce` / :func:`parse_announce` are the sans-I/O codec (datagrams are
untrusted: bounded size and header count, only :class:`LsdError` escapes);
:class:`LsdService` is the asyncio socket with per-torrent rate limits; :class:`SessionLsd`
announces a session's torrents and feeds what it hears to them as peers with source ``"lsd"``.

Loopback: a session that listens on loopback addresses only runs LSD on 127.0.0.1 with multicast
TTL 0 and loop-back on, so announcements never leave the machine. That is what such a session
can reach anyway, and it makes LSD testable without a LAN (or inside an ``ip netns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ccbt_engine.torrent import TorrentState

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = [
    "LSD_GROUP_V4",
    "LSD_GROUP_V6",
    "LSD_PORT",
    "LsdAnnounce",
    "LsdError",
    "LsdService",
    "SessionLsd",
    "encode_announce",
    "parse_announce",
]

log = logging.getLogger(__name__)

LSD_GROUP_V4: Final = "239.192.152.143"
LSD_GROUP_V6: Final = "ff15::efc0:988f"
LSD_PORT: Final = 6771
#: BEP 14: announce every torrent every 5 minutes ...
ANNOUNCE_INTERVAL: Final = 300.0
#: ... and never one torrent more than once a minute
MIN_INTERVAL: Final = 60.0
MAX_DATAGRAM: Final = 8 * 1024
#: infohashes per datagram we send (keeps it under a typical 1400-byte MTU)
BATCH: Final = 16
MAX_INFOHASHES: Final = 64
_START_LINE: Final = b"BT-SEARCH * HTTP/1.1"


class LsdError(ValueError):
    """A datagram that is not a valid BEP 14 announcement."""


@dataclass(frozen=True, slots=True)
class LsdAnnounce:
    port: int
    info_hashes: tuple[bytes, ...]
    cookie: str | None = None


def _group_host(group: str, mcast_port: int) -> str:
    return f"[{group}]:{mcast_port}" if ":" in group else f"{group}:{mcast_port}"


def encode_announce(
    listen_port: int,
    info_hashes: Iterable[bytes],
    *,
    cookie: str | None = None,
    group: str = LSD_GROUP_V4,
    mcast_port: int = LSD_PORT,
) -> bytes:
    lines = [
        _START_LINE.decode(),
        f"Host: {_group_host(group, mcast_port)}",
        f"Port: {listen_port}",
    ]
    lines += [f"Infohash: {ih.hex()}" for ih in info_hashes]
    if cookie is not None:
        lines.append(f"cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n\r\n").encode("ascii")


def parse_announce(data: bytes) -> LsdAnnounce:
    """Parse one datagram; only :class:`LsdError` escapes."""
    if len(data) > MAX_DATAGRAM:
        raise LsdError(f"LSD datagram of {len(data)} bytes is too large")
    lines = data.split(b"\r\n")
    if lines[0].strip() != _START_LINE:
        raise LsdError("not a BT-SEARCH announcement")
    port: int | None = None
    hashes: list[bytes] = []
    cookie: str | None = None
    for line in lines[1:]:
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise LsdError("LSD header without a colon")
        key = name.strip().lower()
        text = value.strip().decode("ascii", errors="replace")
        if key == b"port":
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise LsdError(f"LSD port {text[:20]!r} is not a port")
            port = int(text)
        elif key == b"infohash":
            if len(text) != 40:
                raise LsdError("LSD infohash is not 40 hex digits")
            try:
                hashes.append(bytes.fromhex(text))
            except ValueError as exc:
                raise LsdError("LSD infohash is not hex") from exc
            if len(hashes) > MAX_INFOHASHES:
                raise LsdError("too many infohashes in one LSD datagram")
        elif key == b"cookie":
            cookie = text[:64]
    if port is None or not hashes:
        raise LsdError("LSD announcement needs a Port and an Infohash")
    return LsdAnnounce(port, tuple(hashes), cookie)


class LsdService(asyncio.DatagramProtocol):
    """One multicast socket: sends announcements, reports the peers it hears.

    ``interface``: the local address whose interface joins the group and sends (``0.0.0.0`` /
    ``::`` = the system's choice). ``ttl`` 1 keeps datagrams on the LAN, 0 on this machine.
    ``on_peer(info_hash, host, port)`` is called for every infohash of every foreign datagram.
    """

    def __init__(
        self,
        on_peer: Callable[[bytes, str, int], None],
        *,
        interface: str = "0.0.0.0",
        mcast_port: int = LSD_PORT,
        ttl: int = 1,
        loop_back: bool = True,
    ) -> None:
        self.on_peer = on_peer
        self.interface = interface
        self.family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self.group = LSD_GROUP_V6 if self.family == socket.AF_INET6 else LSD_GROUP_V4
        self.mcast_port = mcast_port
        self.ttl = ttl
        self.loop_back = loop_back
        #: tells our own datagrams (looped back to us) from others'
        self.cookie = secrets.token_hex(8)
        self.transport: asyncio.DatagramTransport | None = None
        self.received = 0
        self.malformed = 0
        self._last_sent: dict[bytes, float] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self._make_socket()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.transport = transport

    def _make_socket(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):  # several clients on one host share 6771
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("::" if self.family == socket.AF_INET6 else "", self.mcast_port))
            if self.family == socket.AF_INET:
                iface = socket.inet_aton(self.interface)
                mreq = socket.inet_aton(self.group) + iface
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(self.loop_back))
            else:
                index = _v6_interface_index(self.interface)
                mreq6 = socket.inet_pton(socket.AF_INET6, self.group) + struct.pack("@I", index)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, self.ttl)
                sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(self.loop_back)
                )
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def announce(self, listen_port: int, info_hashes: Iterable[bytes], now: float) -> int:
        """Announce the infohashes not announced in the last minute; returns how many went out."""
        due = [
            ih for ih in info_hashes if now - self._last_sent.get(ih, -MIN_INTERVAL) >= MIN_INTERVAL
        ]
        if self.transport is None or not due:
            return 0
        for start in range(0, len(due), BATCH):
            batch = due[start : start + BATCH]
            datagram = encode_announce(
                listen_port, batch, cookie=self.cookie, group=self.group, mcast_port=self.mcast_port
            )
            self.transport.sendto(datagram, (self.group, self.mcast_port))
        for ih in due:
            self._last_sent[ih] = now
        return len(due)

    def forget(self, info_hash: bytes) -> None:
        """A removed torrent: a re-added one may announce at once."""
        self._last_sent.pop(info_hash, None)

    # -- asyncio.DatagramProtocol ---------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            msg = parse_announce(data)
        except LsdError as exc:
            self.malformed += 1
            log.debug("LSD: ignoring datagram from %s: %s", addr[0], exc)
            return
        if msg.cookie == self.cookie:
            return
        self.received += 1
        host = str(addr[0]).split("%", 1)[0]
        for ih in msg.info_hashes:
            self.on_peer(ih, host, msg.port)

    def error_received(self, exc: Exception) -> None:
        log.debug("LSD socket error: %s", exc)


def _v6_interface_index(address: str) -> int:
    if address in ("::", ""):
        return 0
    if ipaddress.ip_address(address).is_loopback:
        with contextlib.suppress(OSError):
            return socket.if_nametoindex("lo")
    return 0


class SessionLsd:
    """LSD for a session: announces its active public torrents and magnets, and hands what it
    hears to them (BEP 27: private torrents never use LSD).

    Runs on the first IPv4 listen interface; a loopback-only session stays on this machine.
    """

    def __init__(self, core: SessionCore, *, mcast_port: int = LSD_PORT) -> None:
        self.core = core
        v4 = [h for h in core.settings.network.listen_interfaces if ":" not in h] or ["0.0.0.0"]
        local = all(ipaddress.ip_address(h).is_loopback for h in v4)
        interface = "127.0.0.1" if local else ("0.0.0.0" if "0.0.0.0" in v4 else v4[0])
        self.service = LsdService(
            self._on_peer, interface=interface, mcast_port=mcast_port, ttl=0 if local else 1
        )
        self._task: asyncio.Task[None] | None = None
        self._announced: dict[bytes, float] = {}

    async def start(self) -> bool:
        """Open the socket and start announcing; False (with a warning) when the system
        refuses multicast, which must not stop the session."""
        try:
            await self.service.start()
        except OSError as exc:
            log.warning("local service discovery unavailable: %s", exc)
            return False
        self._task = asyncio.create_task(self._run(), name="lsd")
        return True

    def _targets(self) -> list[bytes]:
        out: list[bytes] = []
        for ih, torrent in self.core.torrents.items():
            active = torrent.state in (TorrentState.DOWNLOADING, TorrentState.SEEDING)
            if active and not torrent.info.private:
                out.append(ih)
        out += [ih for ih, m in self.core.magnets.items() if m.active]
        return out

    def tick(self, now: float) -> int:
        """Announce torrents new since the last tick at once, the rest every 5 minutes."""
        due = [
            ih
            for ih in self._targets()
            if now - self._announced.get(ih, -ANNOUNCE_INTERVAL) >= ANNOUNCE_INTERVAL
        ]
        sent = self.service.announce(self.core.listen_port, due, now) if due else 0
        for ih in due:
            self._announced[ih] = now
        return sent

    async def _run(self) -> None:
        while True:
            try:
                self.tick(time.monotonic())
            except Exception:
                log.exception("LSD tick failed")
            await asyncio.sleep(1.0)

    def _on_peer(self, info_hash: bytes, host: str, port: int) -> None:
        if host and port == self.core.listen_port and ipaddress.ip_address(host).is_loopback:
            return  # our own session through another socket: never dial ourselves
        torrent = self.core.torrents.get(info_hash)
        if torrent is not None and not torrent.info.private:
            torrent.add_peers([(host, port)], "lsd")
            return
        magnet = self.core.magnets.get(info_hash)
        if magnet is not None:
            magnet.add_peers([(host, port)], "lsd")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.service.close()
