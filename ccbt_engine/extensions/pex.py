"""BEP 11 peer exchange (``ut_pex``): tell connected peers who else is in the swarm, and learn
peers from them.

Rate limits (BEP 11): at most one message per peer per minute, at most 50 added and 50 dropped
entries per message (the first message may be a full list). Our first message to a peer goes at
the first tick after its extension handshake, as libtorrent does, so a newcomer learns the swarm
at once; after that each peer gets only the difference from what it was told.

Incoming messages are untrusted: the payload size and entry counts are bounded, malformed
compact lists raise :class:`PexError`, and learned peers go through the torrent's normal
``add_peers`` (which dedups and bans) with source ``"pex"``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ccbt_engine.bencode import BencodeError, decode, encode
from ccbt_engine.extensions import Extension, ExtPeer
from ccbt_engine.protocol.wire import ProtocolError

__all__ = [
    "FLAG_CONNECTABLE",
    "FLAG_ENCRYPTION",
    "FLAG_SEED",
    "FLAG_UTP",
    "PEX_INTERVAL",
    "PexError",
    "PexMessage",
    "UtPex",
    "decode_pex",
    "encode_pex",
]

FLAG_ENCRYPTION: Final = 0x01
FLAG_SEED: Final = 0x02
FLAG_UTP: Final = 0x04
FLAG_HOLEPUNCH: Final = 0x08
FLAG_CONNECTABLE: Final = 0x10
#: seconds between two messages to the same peer (BEP 11: not more than once a minute)
PEX_INTERVAL: Final = 60.0
#: entries per list in one message we send (BEP 11)
MAX_SEND: Final = 50
#: entries per list we read from one message; more is ignored (libtorrent caps at 100 too)
MAX_READ: Final = 100
MAX_PAYLOAD: Final = 64 * 1024

Address = tuple[str, int]


class PexError(ProtocolError):
    """A malformed ut_pex message."""


@dataclass(frozen=True, slots=True)
class PexMessage:
    #: (host, port, flags)
    added: list[tuple[str, int, int]] = field(default_factory=list)
    dropped: list[Address] = field(default_factory=list)


def _compact(addresses: list[Address]) -> bytes:
    out = []
    for host, port in addresses:
        out.append(ipaddress.ip_address(host).packed + struct.pack(">H", port))
    return b"".join(out)


def _family(host: str) -> int:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return 0


def encode_pex(added: list[tuple[str, int, int]], dropped: list[Address]) -> bytes:
    """The bencoded ut_pex payload; hosts must be IP literals (others are skipped)."""
    out: dict[bytes, Any] = {}
    for version, suffix in ((4, b""), (6, b"6")):
        add = [(h, p, f) for h, p, f in added if _family(h) == version]
        drop = [(h, p) for h, p in dropped if _family(h) == version]
        out[b"added" + suffix] = _compact([(h, p) for h, p, _ in add])
        out[b"added" + suffix + b".f"] = bytes(f & 0xFF for _, _, f in add)
        out[b"dropped" + suffix] = _compact(drop)
    return encode(out)


def _split(blob: Any, size: int, what: str) -> list[Address]:
    if blob is None:
        return []
    if not isinstance(blob, bytes) or len(blob) % (size + 2):
        raise PexError(f"ut_pex: {what} is not a compact peer list")
    out = []
    for off in range(0, min(len(blob), MAX_READ * (size + 2)), size + 2):
        host = str(ipaddress.ip_address(blob[off : off + size]))
        (port,) = struct.unpack_from(">H", blob, off + size)
        if port:
            out.append((host, port))
    return out


def decode_pex(payload: bytes) -> PexMessage:
    """Parse a ut_pex payload; only :class:`PexError` escapes."""
    if len(payload) > MAX_PAYLOAD:
        raise PexError(f"ut_pex: message of {len(payload)} bytes is too large")
    try:
        d = decode(payload, strict=False, max_depth=4)
    except BencodeError as exc:
        raise PexError(f"ut_pex: bad bencode: {exc}") from exc
    if not isinstance(d, dict):
        raise PexError("ut_pex: message is not a dictionary")
    added: list[tuple[str, int, int]] = []
    dropped: list[Address] = []
    for size, suffix in ((4, b""), (16, b"6")):
        adds = _split(d.get(b"added" + suffix), size, "added")
        flags = d.get(b"added" + suffix + b".f", b"")
        if not isinstance(flags, bytes):
            raise PexError("ut_pex: added.f must be a string")
        for i, (host, port) in enumerate(adds):
            added.append((host, port, flags[i] if i < len(flags) else 0))
        dropped.extend(_split(d.get(b"dropped" + suffix), size, "dropped"))
    return PexMessage(added, dropped)


@dataclass
class _PeerPex:
    #: what this peer has been told is in the swarm
    told: dict[Address, int] = field(default_factory=dict)
    next_send: float = 0.0


class UtPex(Extension):
    """Peer exchange for one torrent.

    ``is_seed(conn)`` tells the seed flag of a connected peer (the host knows bitfields);
    ``interval`` is :data:`PEX_INTERVAL` except in tests.
    """

    name = "ut_pex"

    def __init__(
        self,
        *,
        is_seed: Callable[[ExtPeer], bool] | None = None,
        interval: float = PEX_INTERVAL,
        own_address: Callable[[], Address | None] | None = None,
    ) -> None:
        self.is_seed = is_seed
        self.interval = interval
        self.own_address = own_address
        self.received = 0

    def _state(self, peer: ExtPeer) -> _PeerPex:
        state = peer.data.get(self.name)
        if not isinstance(state, _PeerPex):
            state = peer.data[self.name] = _PeerPex()
        return state

    def swarm(self) -> dict[Address, int]:
        """Reachable connected peers and their flags, as we would advertise them."""
        out: dict[Address, int] = {}
        for peer in self.manager.peers():
            addr = peer.listen_address
            if addr is None or peer.conn.closed or _family(addr[0]) == 0:
                continue
            flags = FLAG_CONNECTABLE if peer.conn.outgoing else 0
            if peer.upload_only or (self.is_seed is not None and self.is_seed(peer)):
                flags |= FLAG_SEED
            out[addr] = flags
        return out

    def on_handshake(self, peer: ExtPeer) -> None:
        self._state(peer)  # first message at the next tick

    def on_tick(self, now: float) -> None:
        swarm: dict[Address, int] | None = None
        for peer in self.manager.peers():
            if not peer.supports(self.name):
                continue
            state = self._state(peer)
            if now < state.next_send:
                continue
            if swarm is None:
                swarm = self.swarm()
            own = peer.listen_address
            current = {a: f for a, f in swarm.items() if a != own}
            added = [(h, p, f) for (h, p), f in current.items() if (h, p) not in state.told]
            dropped = [a for a in state.told if a not in current]
            if not added and not dropped:
                continue
            added, dropped = added[:MAX_SEND], dropped[:MAX_SEND]
            if self.manager.send(peer, self.name, encode_pex(added, dropped)):
                state.next_send = now + self.interval
                for a in dropped:
                    state.told.pop(a, None)
                for h, p, f in added:
                    state.told[(h, p)] = f

    def on_message(self, peer: ExtPeer, payload: bytes) -> None:
        msg = decode_pex(payload)
        own = self.own_address() if self.own_address is not None else None
        learned = [(h, p) for h, p, _ in msg.added if (h, p) != own]
        if learned:
            self.received += len(learned)
            self.manager.host.add_peers(learned, "pex")
