"""Request-flood detection: honest post-choke bursts pass, floods are cut off with a reason."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ccbt_engine.bitfield import Bitfield
from ccbt_engine.protocol.wire import Request
from ccbt_engine.security.peer_limits import (
    DRAIN_PER_SECOND,
    FLOOD_FACTOR,
    RequestGuard,
    request_flood,
)

REQQ = 500


@dataclass
class Peer:
    am_choking: bool = False
    allowed_fast_out: set[int] = field(default_factory=set)
    upload_queue: deque[Request] = field(default_factory=deque)
    request_guard: RequestGuard = field(default_factory=RequestGuard)


def full(n: int) -> Bitfield:
    return Bitfield.full(n)


def test_served_requests_never_count() -> None:
    peer = Peer()
    have = full(8)
    for i in range(100_000):
        assert request_flood(peer, Request(i % 8, 0, 16384), have, REQQ, i * 1e-5) is None
    assert peer.request_guard.level == 0.0


def test_a_flood_of_refused_requests_is_cut_off_at_twice_reqq() -> None:
    peer = Peer(am_choking=True)
    have = full(8)
    reasons = [request_flood(peer, Request(1, 0, 16384), have, REQQ, 0.0) for _ in range(1001)]
    assert reasons[:1000] == [None] * 1000
    assert reasons[1000] == "request flood: more than 1000 requests refused (reqq 500)"


def test_allowed_fast_pieces_pass_while_choked() -> None:
    peer = Peer(am_choking=True, allowed_fast_out={3})
    for _ in range(5000):
        assert request_flood(peer, Request(3, 0, 16384), full(8), REQQ, 0.0) is None


def test_requests_for_pieces_we_lack_count() -> None:
    peer = Peer()
    empty = Bitfield(8)
    results = [request_flood(peer, Request(2, 0, 16384), empty, 10, 0.0) for _ in range(21)]
    assert results[-1] is not None and results[-2] is None
    other = Peer()  # an index beyond our bitfield is a piece we lack, not an exception
    assert request_flood(other, Request(99, 0, 16384), empty, 10, 0.0) is None
    assert other.request_guard.level == 1.0


def test_requests_beyond_a_full_queue_count() -> None:
    queued = deque(Request(0, i * 16384, 16384) for i in range(REQQ))
    peer = Peer(upload_queue=queued)
    assert request_flood(peer, Request(0, 0, 16384), full(8), REQQ, 0.0) is None
    assert peer.request_guard.level == 1.0
    queued.pop()  # room again: the next one is served
    assert request_flood(peer, Request(0, 0, 16384), full(8), REQQ, 0.0) is None
    assert peer.request_guard.level == 1.0


def test_an_honest_peer_choked_every_rechoke_is_never_cut_off() -> None:
    """Each 10 s rechoke the peer has reqq requests in flight that we refuse: it drains."""
    peer = Peer(am_choking=True)
    have = full(8)
    for cycle in range(100):
        for _ in range(REQQ):
            assert request_flood(peer, Request(1, 0, 16384), have, REQQ, cycle * 10.0) is None
    assert peer.request_guard.level <= REQQ * FLOOD_FACTOR


def test_the_bucket_drains() -> None:
    guard = RequestGuard()
    for _ in range(100):
        guard.refused(REQQ, 0.0)
    guard.refused(REQQ, 1.0)
    assert guard.level == 100 - DRAIN_PER_SECOND + 1
    guard.refused(REQQ, 100.0)
    assert guard.level == 1.0
    guard.refused(REQQ, 50.0)  # a clock that steps back changes nothing
    assert guard.level == 2.0
