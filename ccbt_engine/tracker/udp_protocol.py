"""Sans-I/O core of the UDP tracker protocol (BEP 15): packets in, packets out, no sockets.

Every request carries a random 32-bit transaction id the reply must echo; replies are checked
for size and action before a field is read. The retransmission schedule and the connection-id
lifetime are pure functions of the time the caller passes in, so the asyncio shell
(:mod:`ccbt_engine.tracker.udp`) stays a thin loop and tests need no clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ccbt_engine.tracker.protocol import (
    MAX_MESSAGE_CHARS,
    AnnounceReply,
    AnnounceRequest,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
    parse_compact_peers,
    parse_compact_peers6,
)

__all__ = [
    "ACTION_ANNOUNCE",
    "ACTION_CONNECT",
    "ACTION_ERROR",
    "ACTION_SCRAPE",
    "CONNECTION_ID_TTL",
    "MAX_SCRAPE_HASHES",
    "PROTOCOL_ID",
    "ConnectionId",
    "build_announce",
    "build_connect",
    "build_scrape",
    "parse_announce",
    "parse_connect",
    "parse_scrape",
    "reply_transaction_id",
    "retransmit_timeout",
]

PROTOCOL_ID = 0x41727101980
ACTION_CONNECT = 0
ACTION_ANNOUNCE = 1
ACTION_SCRAPE = 2
ACTION_ERROR = 3
#: A connection id may be used for one minute after it was received (BEP 15).
CONNECTION_ID_TTL = 60.0
#: Most info hashes in one scrape: 8 + 12 * 74 fits a 1 KiB-ish datagram, as BEP 15 suggests.
MAX_SCRAPE_HASHES = 74
#: BEP 15's retransmission base: the n-th attempt waits 15 * 2^n seconds.
RETRANSMIT_BASE = 15.0
#: BEP 15 stops growing n at 8 (3840 s); callers usually give up much earlier.
MAX_RETRANSMIT_EXPONENT = 8

_HEADER = struct.Struct(">II")  # action, transaction id


def retransmit_timeout(
    attempt: int, base: float = RETRANSMIT_BASE, max_exponent: int = MAX_RETRANSMIT_EXPONENT
) -> float:
    """Seconds to wait for a reply to the ``attempt``-th sending (0-based): base * 2^n, n capped."""
    return base * (1 << min(max(attempt, 0), max_exponent))


@dataclass(frozen=True, slots=True)
class ConnectionId:
    """A connection id and when it was received; only usable for :data:`CONNECTION_ID_TTL`."""

    value: int
    received_at: float

    def valid(self, now: float) -> bool:
        return 0 <= now - self.received_at < CONNECTION_ID_TTL


def build_connect(transaction_id: int) -> bytes:
    return struct.pack(">QII", PROTOCOL_ID, ACTION_CONNECT, transaction_id)


def build_announce(connection_id: int, transaction_id: int, req: AnnounceRequest) -> bytes:
    """The 98-byte announce. ``ip`` is always 0 (the tracker uses the datagram's source)."""
    numwant = req.numwant if req.numwant >= 0 else -1
    return struct.pack(
        ">QII20s20sQQQIIIiH",
        connection_id,
        ACTION_ANNOUNCE,
        transaction_id,
        req.info_hash,
        req.peer_id,
        max(0, req.downloaded),
        max(0, req.left),
        max(0, req.uploaded),
        req.event.udp_code,
        0,
        req.key,
        min(numwant, 0x7FFFFFFF),
        req.port,
    )


def build_scrape(connection_id: int, transaction_id: int, info_hashes: list[bytes]) -> bytes:
    if not 1 <= len(info_hashes) <= MAX_SCRAPE_HASHES:
        raise ValueError(f"scrape takes 1..{MAX_SCRAPE_HASHES} info hashes")
    if any(len(h) != 20 for h in info_hashes):
        raise ValueError("info hashes must be 20 bytes")
    return struct.pack(">QII", connection_id, ACTION_SCRAPE, transaction_id) + b"".join(info_hashes)


def reply_transaction_id(data: bytes) -> int | None:
    """The transaction id of a datagram, or None if it is too short to be any reply.

    The shell uses it to drop stray datagrams (late replies to older requests, spoofed
    packets) before handing the one that matches to a parser.
    """
    if len(data) < 8:
        return None
    tid: int = _HEADER.unpack_from(data)[1]
    return tid


def _check(data: bytes, transaction_id: int, action: int, min_size: int) -> None:
    if len(data) < 8:
        raise TrackerError(f"UDP reply of {len(data)} bytes is too short")
    got_action, got_tid = _HEADER.unpack_from(data)
    if got_tid != transaction_id:
        raise TrackerError("UDP reply has the wrong transaction id")
    if got_action == ACTION_ERROR:
        text = data[8:].decode("utf-8", "replace")[:MAX_MESSAGE_CHARS]
        raise TrackerFailure(text or "tracker returned an error")
    if got_action != action:
        raise TrackerError(f"UDP reply has action {got_action}, expected {action}")
    if len(data) < min_size:
        raise TrackerError(f"UDP reply of {len(data)} bytes is too short for action {action}")


def parse_connect(data: bytes, transaction_id: int, now: float) -> ConnectionId:
    _check(data, transaction_id, ACTION_CONNECT, 16)
    if len(data) != 16:
        raise TrackerError(f"UDP connect reply of {len(data)} bytes (expected 16)")
    (value,) = struct.unpack_from(">Q", data, 8)
    return ConnectionId(value, now)


def parse_announce(data: bytes, transaction_id: int, *, ipv6: bool) -> AnnounceReply:
    """Parse an announce reply; peers are 6-byte IPv4 or 18-byte IPv6 entries, decided by the
    address family of the socket the reply came in on (BEP 15 has no field saying which).

    One leniency: on an IPv6 socket, a peer list that cannot be 18-byte entries but can be
    6-byte ones is read as IPv4. WebTorrent's ``bittorrent-tracker`` sends the IPv4 peers of a
    swarm to IPv6 clients that way, and refusing the reply would lose real peers.
    """
    _check(data, transaction_id, ACTION_ANNOUNCE, 20)
    interval, leechers, seeders = struct.unpack_from(">III", data, 8)
    body = data[20:]
    if ipv6 and (len(body) % 18 == 0 or len(body) % 6):
        peers = parse_compact_peers6(body)
    else:
        peers = parse_compact_peers(body)
    return AnnounceReply(
        interval=interval, peers=peers, complete=seeders, incomplete=leechers, min_interval=None
    )


def parse_scrape(
    data: bytes, transaction_id: int, info_hashes: list[bytes]
) -> dict[bytes, ScrapeResult]:
    """Parse a scrape reply: 12 bytes (seeders, completed, leechers) per requested hash."""
    _check(data, transaction_id, ACTION_SCRAPE, 8)
    body = data[8:]
    if len(body) != 12 * len(info_hashes):
        raise TrackerError(
            f"UDP scrape reply has {len(body)} bytes of counts for {len(info_hashes)} hashes"
        )
    out: dict[bytes, ScrapeResult] = {}
    for i, ih in enumerate(info_hashes):
        seeders, completed, leechers = struct.unpack_from(">III", body, 12 * i)
        out[ih] = ScrapeResult(complete=seeders, downloaded=completed, incomplete=leechers)
    return out
