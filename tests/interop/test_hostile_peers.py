"""ccbt under attack by a hostile peer while it downloads from an honest libtorrent seeder.

Every case runs the same way: a libtorrent seeder (the honest peer, 127.0.0.1) and a
hostile peer written by hand in ``hostile.py`` (its own loopback address, 127.0.0.2 and up) are
both let at a fresh ccbt session at once. Each case asserts three things:

1. ccbt finishes the download with sha256-identical data;
2. the hostile peer is disconnected (or banned) and the reason is visible in an engine event;
3. the Python memory ccbt allocates while under attack stays under :data:`MEMORY_BOUND`.

Memory is measured with :mod:`tracemalloc` (peak of traced allocations since the attack began,
minus what was allocated when it began): it counts exactly the Python objects of this process,
where ccbt runs, and not the libtorrent seeder, which runs in a process of its own. RSS would
mix in allocator slack and earlier tests' freed arenas. The bound is 48 MiB: the write cache
(``disk.write_cache_mb``, set to 16 MiB here) plus blocks in flight and hashing buffers stay well
under it, while any of the attacks succeeding would cross it — buffering the announced 100 MB
message alone is twice the bound.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session, TorrentHandle, TorrentStatus
from tests.engine_settings import loopback_settings
from tests.interop.hostile import HostilePeer, SilentListener, connection_storm
from tests.interop.refpeers import LibtorrentPeer, make_payload, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

MIB = 1024 * 1024
#: 16 KiB pieces: one block each, so a corrupt piece has exactly one sender to blame
PIECE = 16 * 1024
PAYLOAD = 8 * MIB
#: ccbt's download limit: the download lasts about three seconds, long enough for every attack to
#: run alongside it (ccbt's own limit, not the seeder's: libtorrent's upload limit on 16 KiB
#: pieces slows it to a fraction of the set rate, and the case would take half a minute)
DOWNLOAD_KIB = 2048
MEMORY_BOUND = 32 * MIB
WRITE_CACHE_MB = 16
#: the handshake timeout in these tests (``network.handshake_timeout``, default 10 s), so a
#: silent peer costs about a second
HANDSHAKE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_payload(tmp_path_factory.mktemp("hostile"), PAYLOAD, 6, seed=10)


@dataclass
class Outcome:
    status: TorrentStatus
    events: list[ev.Event]
    peak: int
    peers_at_end: list[str] = field(default_factory=list)
    result: Any = None

    def reasons(self, source: str) -> list[str]:
        """Disconnect/ban reasons of every connection from ``source``."""
        kinds = (ev.PeerDisconnected, ev.PeerBanned)
        return [
            e.reason
            for e in self.events
            if isinstance(e, kinds) and e.address.startswith(source + ":")
        ]


@contextmanager
def traced() -> Iterator[list[int]]:
    """Yields a list that holds, afterwards, the peak of new Python allocations in bytes."""
    out: list[int] = []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield out
    finally:
        out.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()


Attack = Callable[[Session, TorrentHandle, int], Coroutine[Any, Any, Any]]


async def under_attack(
    payload: Path,
    tmp_path: Path,
    attack: Attack,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    **security: Any,
) -> Outcome:
    """Download ``payload`` from a libtorrent seeder while ``attack`` runs; check the data."""
    made = make_torrent(payload, None, PIECE, tmp_path / "t.torrent")
    num_pieces = -(-made.total_size // PIECE)
    settings = loopback_settings(
        network={"handshake_timeout": handshake_timeout},
        security=security,
        disk={"write_cache_mb": WRITE_CACHE_MB},
        limits={"global_down_kib": DOWNLOAD_KIB},
    )
    events: list[ev.Event] = []
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        async with Session(settings, listen_port=0) as session:
            session.subscribe(events.append)
            handle = await session.add_torrent(made.path, tmp_path / "dl")
            with traced() as peak:
                hostile: asyncio.Task[Any] = asyncio.create_task(
                    attack(session, handle, num_pieces)
                )
                await asyncio.sleep(0.2)  # the attacker gets the first go
                handle.connect_peer("127.0.0.1", seeder.port)
                status = await handle.wait_finished(timeout=60)
                result = await asyncio.wait_for(hostile, 30)
            peers = [p.address for p in handle.peers()]
    assert status.state == "seeding"
    got, want = sha256_tree(tmp_path / "dl" / made.name), sha256_tree(payload)
    assert got == want and got
    outcome = Outcome(status, events, peak[0], peers, result)
    assert outcome.peak < MEMORY_BOUND, f"peak {outcome.peak / MIB:.1f} MiB"
    return outcome


def hostile_for(handle: TorrentHandle, num_pieces: int, source: str) -> HostilePeer:
    return HostilePeer(bytes.fromhex(handle.info_hash), num_pieces, source=source)


async def test_corrupt_blocks_get_the_sender_banned(payload: Path, tmp_path: Path) -> None:
    bad: list[HostilePeer] = []

    async def attack(session: Session, handle: TorrentHandle, num_pieces: int) -> bool:
        peer = hostile_for(handle, num_pieces, "127.0.0.2")
        bad.append(peer)
        return await peer.corrupt_seeder(session.listen_port, timeout=60)

    out = await under_attack(payload, tmp_path, attack, ban_after_hash_failures=3)
    assert out.result is True, "the corrupt peer was never cut off"
    assert bad[0].blocks_sent >= 3
    banned = [e for e in out.events if isinstance(e, ev.PeerBanned)]
    assert banned and all(e.address.startswith("127.0.0.2:") for e in banned)
    assert "hash check" in banned[0].reason
    assert any(r.startswith("banned:") for r in out.reasons("127.0.0.2"))
    assert out.status.hash_failures >= 3
    assert not any(a.startswith("127.0.0.2") for a in out.peers_at_end)


async def test_request_flood_is_cut_off(payload: Path, tmp_path: Path) -> None:
    async def attack(session: Session, handle: TorrentHandle, num_pieces: int) -> bool:
        peer = hostile_for(handle, num_pieces, "127.0.0.3")
        return await peer.request_flood(session.listen_port, count=20_000, timeout=30)

    out = await under_attack(payload, tmp_path, attack)
    assert out.result is True
    reasons = out.reasons("127.0.0.3")
    assert reasons and reasons[0].startswith("request flood: more than 1000 requests refused")


async def test_100_mb_length_prefix_is_refused_unbuffered(payload: Path, tmp_path: Path) -> None:
    sent: list[int] = []

    async def attack(session: Session, handle: TorrentHandle, num_pieces: int) -> bool:
        peer = hostile_for(handle, num_pieces, "127.0.0.4")
        try:
            return await peer.huge_length_prefix(
                session.listen_port, announced=100 * 1000 * 1000, stream_limit=64 * MIB, timeout=30
            )
        finally:
            sent.append(peer.sent)

    out = await under_attack(payload, tmp_path, attack)
    assert out.result is True
    reasons = out.reasons("127.0.0.4")
    assert reasons and "message length 100000000 exceeds limit" in reasons[0]
    # cut off at the header: far less than the announced body was ever accepted
    assert sent[0] < 64 * MIB


@pytest.mark.parametrize("size_delta", [7, -1], ids=["longer", "shorter"])
async def test_wrong_size_bitfield_is_a_protocol_error(
    payload: Path, tmp_path: Path, size_delta: int
) -> None:
    async def attack(session: Session, handle: TorrentHandle, num_pieces: int) -> bool:
        peer = hostile_for(handle, num_pieces, "127.0.0.5")
        return await peer.wrong_bitfield(session.listen_port, size_delta, timeout=30)

    out = await under_attack(payload, tmp_path, attack)
    assert out.result is True
    reasons = out.reasons("127.0.0.5")
    assert reasons and reasons[0].startswith("protocol error: message id 5 with bad length")


async def test_silent_handshakes_time_out_both_ways(payload: Path, tmp_path: Path) -> None:
    """A peer that connects and says nothing, and a peer ccbt dials that never answers."""
    listener = SilentListener("127.0.0.6")
    await listener.start()

    async def attack(session: Session, handle: TorrentHandle, num_pieces: int) -> bool:
        handle.connect_peer(listener.host, listener.port)  # outgoing: ccbt waits in vain
        peer = hostile_for(handle, num_pieces, "127.0.0.6")
        incoming = await peer.silent_incoming(session.listen_port, timeout=10 * HANDSHAKE_TIMEOUT)
        for _ in range(100):  # MSE first, then one plain retry: two timeouts
            if listener.hung_up >= 1:
                break
            await asyncio.sleep(0.1)
        return incoming

    try:
        out = await under_attack(payload, tmp_path, attack)
    finally:
        await listener.stop()
    assert out.result is True
    assert out.reasons("127.0.0.6") == ["handshake timeout"]  # the incoming one
    assert listener.accepted >= 1 and listener.hung_up >= 1  # the outgoing one, given up
    assert not any(a.startswith("127.0.0.6") for a in out.peers_at_end)


async def test_500_connections_from_one_address(payload: Path, tmp_path: Path) -> None:
    per_ip = 4

    async def attack(session: Session, handle: TorrentHandle, num_pieces: int) -> list[int]:
        conns = await connection_storm(session.listen_port, "127.0.0.7", 500)
        await asyncio.sleep(0.5)  # refusals are immediate; let the last ones land
        refused = [r for r, _ in conns if r.at_eof()]
        got = [len(await r.read()) for r in refused]  # nothing, not even a handshake
        for _, writer in conns:
            writer.close()
        return [len(conns) - len(refused), len(refused), sum(got)]

    out = await under_attack(
        payload, tmp_path, attack, max_connections_per_ip=per_ip, handshake_timeout=30.0
    )
    kept, refused, refused_bytes = out.result
    assert (kept, refused, refused_bytes) == (per_ip, 500 - per_ip, 0)
    reasons = out.reasons("127.0.0.7")
    limit = f"too many connections from this address (limit {per_ip})"
    assert reasons.count(limit) == 500 - per_ip
