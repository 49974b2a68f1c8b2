"""ccbt ↔ libtorrent over uTP only (libtorrent's TCP switched off), clean and through a lossy relay.

Sizes: 32 MiB by default (libtorrent↔libtorrent uTP runs at single-digit MiB/s on this loopback),
the full 256 MiB of the issue's bar with ``CCBT_FULL_INTEROP=1``. The relay is a small asyncio
UDP forwarder that drops 1% of datagrams in each direction (seeded, so a failure reproduces);
each side is told to connect to the relay's address instead of the other side's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ccbt_engine.api import Session
from ccbt_engine.protocol import utp
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import LibtorrentPeer, make_payload, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

FULL = os.environ.get("CCBT_FULL_INTEROP") == "1"
SIZE = (256 if FULL else 32) << 20
LOSSY_SIZE = (64 if FULL else 16) << 20
PIECE = 256 * 1024
RELAY_HOST = "127.0.0.2"
RELAY_BUFFER = 4 << 20
#: seconds: 42 for 32 MiB (a healthy run takes 1-4 s), one more per MiB for larger payloads
TIMEOUT = 10 + SIZE / (1 << 20)


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_payload(tmp_path_factory.mktemp("utp_payload"), SIZE, 8, seed=29)


@pytest.fixture(scope="module")
def lossy_payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_payload(tmp_path_factory.mktemp("utp_lossy"), LOSSY_SIZE, 4, seed=30)


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with Session(loopback_settings(network={"enable_utp": True}), listen_port=0) as session:
        yield session


def _same(a: Path, b: Path) -> None:
    left, right = sha256_tree(a), sha256_tree(b)
    assert left, "empty payload compared"
    assert left == right


class LossyRelay(asyncio.DatagramProtocol):
    """Forwards UDP between the first client that writes to it and ``upstream``, dropping a
    seeded 1% of datagrams each way. Its own port is what the client connects to.

    It lives on 127.0.0.2 while both clients use 127.0.0.1, and ccbt blocks 127.0.0.1 with its
    IP filter: neither side can open a direct connection past the relay (libtorrent learns
    ccbt's port from the extension handshake and would happily dial it).

    Its sockets get 4 MiB buffers, as ccbt's own uTP socket has: the relay shares ccbt's event
    loop, and with the default 208 KiB the kernel dropped bursts of datagrams (hundreds per run,
    in /proc/net/snmp RcvbufErrors) whenever that loop was busy, uncounted and on top of the 1%.
    Such bursts make libtorrent resend whole runs of packets on its timeout, each then on its
    third and last transmission.
    """

    def __init__(self, upstream: tuple[str, int], loss: float, seed: int) -> None:
        self.upstream = upstream
        self.loss = loss
        self.rng = random.Random(seed)
        self.client: tuple[str, int] | None = None
        self.front: asyncio.DatagramTransport | None = None
        self.back: asyncio.DatagramTransport | None = None
        self.forwarded = 0
        self.forwarded_bytes = 0
        self.dropped = 0
        #: uTP SYNs from the client: more than one is a SYN the relay dropped or a redial
        self.syns = 0

    @classmethod
    async def start(
        cls, upstream: tuple[str, int], loss: float = 0.01, seed: int = 1
    ) -> LossyRelay:
        loop = asyncio.get_running_loop()
        relay = cls(upstream, loss, seed)
        front, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=(RELAY_HOST, 0))
        back, _ = await loop.create_datagram_endpoint(
            lambda: _Back(relay), local_addr=(RELAY_HOST, 0)
        )
        relay.front, relay.back = front, back
        for transport in (front, back):
            sock = transport.get_extra_info("socket")
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, RELAY_BUFFER)
        return relay

    @property
    def port(self) -> int:
        assert self.front is not None
        return int(self.front.get_extra_info("sockname")[1])

    def _keep(self, data: bytes) -> bool:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return False
        self.forwarded += 1
        self.forwarded_bytes += len(data)
        return True

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.client is None:
            self.client = addr
        if data[:1] == b"\x41":  # type 4 (SYN), version 1
            self.syns += 1
        if addr == self.client and self.back is not None and self._keep(data):
            self.back.sendto(data, self.upstream)

    def from_upstream(self, data: bytes) -> None:
        if self.client is not None and self.front is not None and self._keep(data):
            self.front.sendto(data, self.client)

    def close(self) -> None:
        for transport in (self.front, self.back):
            if transport is not None:
                transport.close()


class DeadlyRelay(LossyRelay):
    """Loses every transmission of one DATA packet from upstream (the ``NTH`` after the first)
    on the first connection only: libtorrent gives a packet three transmissions and then drops
    the connection without a word, as 1% loss does now and then. Start it with ``loss=0``."""

    NTH = 3000

    def __init__(self, upstream: tuple[str, int], loss: float, seed: int) -> None:
        super().__init__(upstream, loss, seed)
        self.victim: tuple[int, int] | None = None
        self.killed = 0

    def from_upstream(self, data: bytes) -> None:
        if data[0] >> 4 == utp.ST_DATA and len(data) > utp.HEADER_SIZE:
            conn_id, seq = struct.unpack_from(">2xH12xH", data)
            if self.victim is None:
                self.victim = (conn_id, (seq + self.NTH) & 0xFFFF)
            if (conn_id, seq) == self.victim:
                self.killed += 1
                return
        super().from_upstream(data)


class _Back(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.from_upstream(data)


def _utp_state(session: Session) -> list[dict[str, object]]:
    """What ccbt's uTP connections look like (for failure messages)."""
    utp = session._core.utp
    if utp is None:
        return []
    return [
        {
            "state": link.core.state.value,
            "ack_nr": link.core.ack_nr,
            "seq_nr": link.core.seq_nr,
            "window": link.core.window,
            "paused": not link.is_reading(),
            "inflight": len(link.core._inflight),
            "received": link.core.packets_received,
            "malformed": sock.malformed,
        }
        for sock in utp.sockets.values()
        for link in sock._links.values()
    ]


async def _transports(session: Session) -> set[str]:
    return {p.transport for h in session.torrents() for p in h.peers()}


async def test_ccbt_downloads_from_libtorrent_over_utp(
    ccbt: Session, payload: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload, None, PIECE, tmp_path / "t.torrent", "v1")
    with LibtorrentPeer(made.path, made.save_path, seed=True, utp_only=True) as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", seeder.port)
        seen: set[str] = set()
        start = time.monotonic()
        task = asyncio.ensure_future(handle.wait_finished(timeout=TIMEOUT))
        while not task.done():
            seen |= {p.transport for p in handle.peers()}
            await asyncio.sleep(0.2)
        status = task.result()
        elapsed = time.monotonic() - start
    print(f"\nccbt <- libtorrent over uTP: {SIZE / elapsed / (1 << 20):.1f} MiB/s")
    assert status.state == "seeding"
    assert seen == {"uTP"}
    _same(tmp_path / "dl" / made.name, payload)


async def test_libtorrent_downloads_from_ccbt_over_utp(
    ccbt: Session, payload: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload, None, PIECE, tmp_path / "t.torrent", "v1")
    handle = await ccbt.add_torrent(made.path, made.save_path)
    assert handle.status().state == "seeding"
    (tmp_path / "lt").mkdir()
    with LibtorrentPeer(made.path, tmp_path / "lt", seed=False, utp_only=True) as leecher:
        start = time.monotonic()
        leecher.connect("127.0.0.1", ccbt.listen_port)
        await _wait_seen_utp(handle)
        await leecher.wait_finished_async(TIMEOUT)
        elapsed = time.monotonic() - start
    print(f"\nlibtorrent <- ccbt over uTP: {SIZE / elapsed / (1 << 20):.1f} MiB/s")
    assert handle.status().uploaded >= SIZE
    _same(tmp_path / "lt" / made.name, payload)


async def _wait_seen_utp(handle: object) -> None:
    peers = getattr(handle, "peers")  # noqa: B009 - keeps the helper free of the facade type
    for _ in range(200):
        listed = peers()
        if listed:
            assert {p.transport for p in listed} == {"uTP"}
            return
        await asyncio.sleep(0.05)
    raise AssertionError("libtorrent never showed up in the peers list")


# ccbt downloading used to stall about 1 run in 5: libtorrent gives a packet three transmissions
# and then drops the connection without a RESET, which happened when the ACK for its last
# timeout resend was lost (ccbt now repeats an ACK after 200 ms of silence) or a packet was lost
# three times (ccbt now times out a hole nobody fills, and the engine dials the peer again).
@pytest.mark.parametrize("direction", ["ccbt_downloads", "libtorrent_downloads"])
async def test_utp_through_one_percent_loss(
    lossy_payload: Path, tmp_path: Path, direction: str
) -> None:
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("127.0.0.1\n")
    settings = loopback_settings(
        network={"enable_utp": True}, security={"ip_filter_path": str(blocklist)}
    )
    async with Session(settings, listen_port=0) as ccbt:
        await _lossy_transfer(ccbt, lossy_payload, tmp_path, direction)


async def _lossy_transfer(
    ccbt: Session, lossy_payload: Path, tmp_path: Path, direction: str
) -> None:
    made = make_torrent(lossy_payload, None, PIECE, tmp_path / "t.torrent", "v1")
    ccbt_seeds = direction == "libtorrent_downloads"
    lt_dir = tmp_path / "lt"
    lt_dir.mkdir()
    handle = await ccbt.add_torrent(made.path, made.save_path if ccbt_seeds else tmp_path / "dl")
    lt = LibtorrentPeer(
        made.path, made.save_path if not ccbt_seeds else lt_dir, seed=not ccbt_seeds, utp_only=True
    )
    with lt:
        target = ("127.0.0.1", ccbt.listen_port if ccbt_seeds else lt.port)
        relay = await LossyRelay.start(target, loss=0.01, seed=29)
        start = time.monotonic()
        try:
            if ccbt_seeds:
                lt.connect(RELAY_HOST, relay.port)
                await lt.wait_finished_async(TIMEOUT * 2)
            else:
                handle.connect_peer(RELAY_HOST, relay.port)
                try:
                    await handle.wait_finished(timeout=TIMEOUT * 2)
                except TimeoutError:
                    peers = [(p.address, p.transport) for p in handle.peers()]
                    raise AssertionError(
                        f"ccbt stuck at {handle.status().progress:.3f}, peers {peers}, "
                        f"relay {relay.forwarded}/{relay.dropped}, lt {lt.status()}, "
                        f"{lt.alerts('peer_disconnected')}, {lt.alerts('peer_error')}, "
                        f"{_utp_state(ccbt)}"
                    ) from None
            elapsed = time.monotonic() - start
        finally:
            relay.close()
    rate = LOSSY_SIZE / elapsed / (1 << 20)
    print(f"\nrelay ({direction}): {relay.forwarded} datagrams forwarded, {relay.dropped} dropped,")
    print(f"{relay.syns} SYN(s) from the client, {rate:.1f} MiB/s")
    assert relay.dropped > 0.005 * (relay.forwarded + relay.dropped)
    assert relay.forwarded_bytes > LOSSY_SIZE  # the payload really went through the relay
    done = lt_dir / made.name if ccbt_seeds else tmp_path / "dl" / made.name
    _same(done, lossy_payload)


async def test_a_connection_libtorrent_dropped_is_detected_and_redialled(
    lossy_payload: Path, tmp_path: Path
) -> None:
    """libtorrent loses one packet three times and silently drops the connection: ccbt's hole
    probes go unanswered, the connection is reset, and the engine dials again (a peer that was
    delivering data is redialled after 2 s) and finishes."""
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("127.0.0.1\n")
    settings = loopback_settings(
        network={"enable_utp": True}, security={"ip_filter_path": str(blocklist)}
    )
    made = make_torrent(lossy_payload, None, PIECE, tmp_path / "t.torrent", "v1")
    async with Session(settings, listen_port=0) as ccbt:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        with LibtorrentPeer(made.path, made.save_path, seed=True, utp_only=True) as lt:
            relay = await DeadlyRelay.start(("127.0.0.1", lt.port), loss=0.0)
            try:
                handle.connect_peer(RELAY_HOST, relay.port)
                await handle.wait_finished(timeout=TIMEOUT * 2)
            finally:
                relay.close()
    assert relay.killed >= 3  # libtorrent's utp_num_resends: it gave up on the packet
    assert relay.syns >= 2  # the first connection died; the redial finished the job
    _same(tmp_path / "dl" / made.name, lossy_payload)
