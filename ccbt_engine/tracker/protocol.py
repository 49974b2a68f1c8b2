"""Tracker types and the sans-I/O core of HTTP(S) trackers (BEP 3, 7, 23, 48).

This module builds announce/scrape URLs and turns reply bodies into typed values; it does no
I/O and reads no clock, so tests (and fuzzers) feed it bytes. The asyncio shell is
:mod:`ccbt_engine.tracker.http`; UDP trackers (BEP 15) have their own core in
:mod:`ccbt_engine.tracker.udp_protocol` but share the types defined here.

A tracker is untrusted: whatever a reply contains, only :class:`TrackerError` (or its subclass
:class:`TrackerFailure`, for a well-formed ``failure reason``) escapes the parsers.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ccbt_engine.bencode import BencodeError, decode

__all__ = [
    "MAX_REPLY_SIZE",
    "AnnounceReply",
    "AnnounceRequest",
    "Event",
    "Peer",
    "ScrapeResult",
    "TrackerError",
    "TrackerFailure",
    "build_announce_url",
    "build_scrape_url",
    "parse_announce_reply",
    "parse_compact_peers",
    "parse_compact_peers6",
    "parse_scrape_reply",
    "scrape_url_for",
]

#: Largest reply body read from a tracker. 2 MiB holds ~350 000 compact peers, far more than
#: any tracker sends; anything bigger is an attack or a misconfigured server.
MAX_REPLY_SIZE = 2 * 1024 * 1024
#: Longest text kept from ``failure reason`` / ``warning message``: it ends up in the GUI.
MAX_MESSAGE_CHARS = 1024
#: Default announce interval when a tracker forgets to send one (BEP 3 makes it mandatory).
DEFAULT_INTERVAL = 1800

Peer = tuple[str, int]


class TrackerError(Exception):
    """A tracker could not be reached, or replied with something that is not a valid reply."""


class TrackerFailure(TrackerError):
    """The tracker replied properly but refused the request (``failure reason`` / UDP error).

    Kept apart from transport errors because the message is the tracker's own words, meant to be
    shown to the user as the tracker's status text.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Event(enum.Enum):
    """Announce event; the value is the HTTP spelling, :attr:`udp_code` the BEP 15 number."""

    NONE = ""
    COMPLETED = "completed"
    STARTED = "started"
    STOPPED = "stopped"

    @property
    def udp_code(self) -> int:
        return _UDP_EVENT_CODES[self]


_UDP_EVENT_CODES = {Event.NONE: 0, Event.COMPLETED: 1, Event.STARTED: 2, Event.STOPPED: 3}


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    """Everything one announce says, independent of the transport carrying it."""

    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: Event = Event.NONE
    numwant: int = 200
    #: Identifies this client across IP changes (BEP 7 / de facto); same for every tracker.
    key: int = 0
    #: Opaque ``tracker id`` a previous reply gave us; echoed back as ``trackerid``.
    tracker_id: bytes | None = None
    ip: str | None = None
    ipv6: str | None = None

    def __post_init__(self) -> None:
        if len(self.info_hash) != 20 or len(self.peer_id) != 20:
            raise ValueError("info_hash and peer_id must be 20 bytes")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} out of range")
        if not 0 <= self.key <= 0xFFFFFFFF:
            raise ValueError("key must fit in 32 bits")


@dataclass(frozen=True, slots=True)
class AnnounceReply:
    """A successful announce reply (HTTP or UDP)."""

    interval: int
    peers: list[Peer] = field(default_factory=list)
    min_interval: int | None = None
    #: Seeders / leechers in the swarm, when the tracker says.
    complete: int | None = None
    incomplete: int | None = None
    downloaded: int | None = None
    tracker_id: bytes | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """Swarm counts for one torrent: seeders, completed downloads, leechers."""

    complete: int
    downloaded: int
    incomplete: int


# ------------------------------------------------------------------------------------------
# Compact peers
# ------------------------------------------------------------------------------------------


def parse_compact_peers(data: bytes) -> list[Peer]:
    """BEP 23: 6 bytes per peer (IPv4 address, big-endian port). Port-0 entries are dropped."""
    if len(data) % 6:
        raise TrackerError(f"compact peer list of {len(data)} bytes is not a multiple of 6")
    out: list[Peer] = []
    for off in range(0, len(data), 6):
        (port,) = struct.unpack_from(">H", data, off + 4)
        if port:
            out.append((str(ipaddress.IPv4Address(data[off : off + 4])), port))
    return out


def parse_compact_peers6(data: bytes) -> list[Peer]:
    """BEP 7: 18 bytes per peer (IPv6 address, big-endian port). Port-0 entries are dropped."""
    if len(data) % 18:
        raise TrackerError(f"compact IPv6 peer list of {len(data)} bytes is not a multiple of 18")
    out: list[Peer] = []
    for off in range(0, len(data), 18):
        (port,) = struct.unpack_from(">H", data, off + 16)
        if port:
            out.append((str(ipaddress.IPv6Address(data[off : off + 16])), port))
    return out


def _dict_peers(items: list[Any]) -> list[Peer]:
    """The original (non-compact) model: a list of ``{ip, port, peer id}`` dictionaries.

    One malformed entry is skipped rather than failing the reply: the other peers are still
    useful. Only IP literals are kept; host names would need a DNS lookup per peer and are a
    classic way to make clients attack third parties.
    """
    out: list[Peer] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        ip, port = item.get(b"ip"), item.get(b"port")
        if not isinstance(ip, bytes) or not isinstance(port, int) or not 0 < port <= 0xFFFF:
            continue
        try:
            addr = ipaddress.ip_address(ip.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            continue
        out.append((str(addr), port))
    return out


# ------------------------------------------------------------------------------------------
# URLs
# ------------------------------------------------------------------------------------------


def _q(raw: bytes) -> str:
    return urllib.parse.quote_from_bytes(raw, safe="")


def _join_query(url: str, params: list[tuple[str, str]]) -> str:
    """Append already-encoded parameters, keeping a query the URL already has (passkeys)."""
    base = url.split("#", 1)[0]  # a fragment is never sent
    query = "&".join(f"{k}={v}" for k, v in params)
    if "?" in base:
        sep = "" if base.endswith(("?", "&")) else "&"
        return base + sep + query
    return base + "?" + query


def build_announce_url(announce_url: str, req: AnnounceRequest) -> str:
    """The full GET URL of an HTTP announce (binary values percent-encoded byte by byte)."""
    params = [
        ("info_hash", _q(req.info_hash)),
        ("peer_id", _q(req.peer_id)),
        ("port", str(req.port)),
        ("uploaded", str(max(0, req.uploaded))),
        ("downloaded", str(max(0, req.downloaded))),
        ("left", str(max(0, req.left))),
        ("compact", "1"),
        ("numwant", str(max(0, req.numwant))),
        ("key", f"{req.key:08x}"),
    ]
    if req.event is not Event.NONE:
        params.append(("event", req.event.value))
    if req.tracker_id is not None:
        params.append(("trackerid", _q(req.tracker_id)))
    if req.ip:
        params.append(("ip", _q(req.ip.encode())))
    if req.ipv6:
        params.append(("ipv6", _q(req.ipv6.encode())))
    return _join_query(announce_url, params)


def scrape_url_for(announce_url: str) -> str | None:
    """BEP 48 convention: ``…/announce…`` → ``…/scrape…``; None when the tracker has no scrape.

    Only the last path component is looked at, and it must *start* with ``announce``
    (``/x/announce.php?k=1`` → ``/x/scrape.php?k=1``; ``/a/announce/b`` has none).
    """
    base, sep, query = announce_url.partition("?")
    scheme_end = base.find("://")
    path_start = base.find("/", scheme_end + 3 if scheme_end >= 0 else 0)
    if path_start < 0:
        return None
    slash = base.rfind("/")
    last = base[slash + 1 :]
    if not last.startswith("announce"):
        return None
    return base[: slash + 1] + "scrape" + last[len("announce") :] + sep + query


def build_scrape_url(scrape_url: str, info_hashes: list[bytes]) -> str:
    """The GET URL of a scrape for ``info_hashes`` (one ``info_hash`` parameter each)."""
    return _join_query(scrape_url, [("info_hash", _q(h)) for h in info_hashes])


# ------------------------------------------------------------------------------------------
# Replies
# ------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, bytes):
        raise TrackerError("text field is not a string")
    return value.decode("utf-8", "replace")[:MAX_MESSAGE_CHARS]


def _opt_int(d: dict[bytes, Any], key: bytes) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or v < 0:
        raise TrackerError(f"{key.decode()!r} is not a non-negative integer")
    return v


def _decode_dict(body: bytes) -> dict[bytes, Any]:
    if len(body) > MAX_REPLY_SIZE:
        raise TrackerError(f"reply of {len(body)} bytes exceeds {MAX_REPLY_SIZE}")
    try:
        # Non-strict: plenty of trackers write dictionary keys unsorted.
        value = decode(body, strict=False)
    except BencodeError as exc:
        snippet = body[:60].decode("utf-8", "replace")
        raise TrackerError(f"reply is not bencoded ({exc.reason}): {snippet!r}") from None
    if not isinstance(value, dict):
        raise TrackerError("reply is not a bencoded dictionary")
    if b"failure reason" in value:
        raise TrackerFailure(_text(value[b"failure reason"]) or "tracker refused the request")
    return value


def parse_announce_reply(body: bytes) -> AnnounceReply:
    """Parse an HTTP announce reply body.

    Raises :class:`TrackerFailure` for ``failure reason`` and :class:`TrackerError` for
    anything malformed; nothing else escapes.
    """
    d = _decode_dict(body)
    interval = _opt_int(d, b"interval")
    peers: list[Peer] = []
    raw = d.get(b"peers", b"")
    if isinstance(raw, bytes):
        peers += parse_compact_peers(raw)
    elif isinstance(raw, list):
        peers += _dict_peers(raw)
    else:
        raise TrackerError("'peers' is neither a string nor a list")
    raw6 = d.get(b"peers6", b"")
    if isinstance(raw6, bytes):
        peers += parse_compact_peers6(raw6)
    elif isinstance(raw6, list):
        peers += _dict_peers(raw6)
    else:
        raise TrackerError("'peers6' is neither a string nor a list")
    tid = d.get(b"tracker id")
    if tid is not None and not isinstance(tid, bytes):
        raise TrackerError("'tracker id' is not a string")
    warning = d.get(b"warning message")
    return AnnounceReply(
        interval=DEFAULT_INTERVAL if interval is None else interval,
        peers=peers,
        min_interval=_opt_int(d, b"min interval"),
        complete=_opt_int(d, b"complete"),
        incomplete=_opt_int(d, b"incomplete"),
        downloaded=_opt_int(d, b"downloaded"),
        tracker_id=tid or None,
        warning=None if warning is None else _text(warning),
    )


def _latin1_key(key: bytes) -> bytes | None:
    """Undo a known tracker bug: the info hash as a latin-1 string, then written as UTF-8.

    WebTorrent's ``bittorrent-tracker`` (widely deployed) keys scrape ``files`` this way, so
    every hash byte >= 0x80 arrives as two bytes. The original 20 bytes are recoverable.
    """
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) != 20 or any(ord(c) > 0xFF for c in text):
        return None
    return text.encode("latin-1")


def parse_scrape_reply(body: bytes) -> dict[bytes, ScrapeResult]:
    """Parse an HTTP scrape reply: 20-byte info hash → counts. Missing counts read as 0."""
    d = _decode_dict(body)
    files = d.get(b"files", {})
    if not isinstance(files, dict):
        raise TrackerError("'files' is not a dictionary")
    out: dict[bytes, ScrapeResult] = {}
    for key, stats in files.items():
        ih = key if len(key) == 20 else _latin1_key(key)
        if ih is None or not isinstance(stats, dict):
            raise TrackerError("malformed 'files' entry")
        out[ih] = ScrapeResult(
            complete=_opt_int(stats, b"complete") or 0,
            downloaded=_opt_int(stats, b"downloaded") or 0,
            incomplete=_opt_int(stats, b"incomplete") or 0,
        )
    return out
