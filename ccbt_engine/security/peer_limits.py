"""Request-flood detection for one connected peer (sans-I/O; the torrent passes ``now``).

We advertise ``reqq`` (how many requests a peer may have queued with us) in the extension
handshake. A request we will not serve — for a piece we do not have, while the peer is choked
and the piece is not allowed-fast, or beyond ``reqq`` already queued — is rejected (fast
extension) or dropped. An honest peer sends a few of those: the requests in flight when we
choke it, at most ``reqq``. A hostile one sends them without end, and each costs a parse, a
reject message and a log line. So refused requests fill a leaky bucket that drains at
:data:`DRAIN_PER_SECOND`; once it holds more than ``reqq`` × :data:`FLOOD_FACTOR` the peer is
disconnected with a reason.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ccbt_engine.protocol.wire import Request

__all__ = [
    "DRAIN_PER_SECOND",
    "FLOOD_FACTOR",
    "Pieces",
    "RequestGuard",
    "RequestPeer",
    "request_flood",
]

#: refused requests forgiven per second (an honest peer's post-choke burst of ``reqq`` drains
#: within one 10 s rechoke interval)
DRAIN_PER_SECOND = 50.0
#: refused requests held at once, in units of ``reqq``, before the peer counts as flooding:
#: twice what an honest peer can have in flight when it is choked
FLOOD_FACTOR = 2


@dataclass(slots=True)
class RequestGuard:
    """Leaky bucket of one peer's refused requests."""

    level: float = 0.0
    last: float = 0.0

    def refused(self, reqq: int, now: float) -> str | None:
        """Count one refused request; return the disconnect reason once it is a flood."""
        if now > self.last:
            self.level = max(0.0, self.level - (now - self.last) * DRAIN_PER_SECOND)
            self.last = now
        self.level += 1.0
        limit = reqq * FLOOD_FACTOR
        if self.level > limit:
            return f"request flood: more than {limit} requests refused (reqq {reqq})"
        return None


class RequestPeer(Protocol):
    """The parts of the torrent's per-peer state (``torrent.PeerState``) the check reads."""

    am_choking: bool
    allowed_fast_out: set[int]
    upload_queue: deque[Request]
    request_guard: RequestGuard


class Pieces(Protocol):
    """Our piece bitfield (``bitfield.Bitfield``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> bool: ...


def request_flood(ps: RequestPeer, req: Request, have: Pieces, reqq: int, now: float) -> str | None:
    """Call for every incoming request before it is handled: the reason to disconnect, or None.

    An index outside ``have`` counts as a piece we lack (the torrent rejects it anyway).
    """
    lacking = not 0 <= req.index < len(have) or not have[req.index]
    choked = ps.am_choking and req.index not in ps.allowed_fast_out
    if not (lacking or choked or len(ps.upload_queue) >= reqq):
        return None
    return ps.request_guard.refused(reqq, now)
