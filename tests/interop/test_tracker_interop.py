"""Tracker clients against trackers nobody here wrote: Debian's opentracker and WebTorrent's
``bittorrent-tracker`` (npm), over HTTP and UDP (and UDP over IPv6 where the tracker has it).

What the tracker saw is checked from the tracker's side: scrape counts, another peer's
announce reply, and (for bittorrent-tracker) its own log of start/update/complete/stop events.
A libtorrent seeder announcing to the same trackers must show up in our peer lists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.tracker import (
    Announcer,
    AnnounceRequest,
    AnnounceStats,
    Event,
    HttpTracker,
    ScrapeResult,
    UdpTracker,
)
from tests.interop import refpeers

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
NPM_PREFIX = ROOT / ".npm-tools"
BTT_PACKAGE = NPM_PREFIX / "node_modules" / "bittorrent-tracker" / "package.json"

# The package's own CLI (bin/cmd.js) imports its WebRTC client, whose native module cannot be
# built offline; the server alone needs none of it. This is the CLI's server setup, minus ws.
_BTT_RUNNER = """
import Server from 'bittorrent-tracker/server'
const [port, intervalMs, v6] = process.argv.slice(1)
const server = new Server({ http: true, udp: true, ws: false, stats: true,
                            interval: Number(intervalMs) })
server.on('error', err => console.log('error ' + err.message))
server.on('warning', err => console.log('warning ' + err.message))
for (const ev of ['start', 'update', 'complete', 'stop']) {
  server.on(ev, addr => console.log(ev + ' ' + addr))
}
server.listen(Number(port), { http: '127.0.0.1', udp4: '127.0.0.1', udp6: v6 },
              () => console.log('ready'))
"""


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAVE_V6 = _ipv6_loopback()


class BittorrentTracker(refpeers._ManagedProcess):
    """WebTorrent's tracker server under node, on 127.0.0.1 (HTTP + UDP) and ::1 (UDP)."""

    name = "bittorrent-tracker"

    def __init__(self, interval_ms: int = 1000) -> None:
        super().__init__()
        self.interval_ms = interval_ms
        self.lines: list[str] = []
        self._ready = threading.Event()

    def _on_stdout_line(self, line: str) -> None:
        super()._on_stdout_line(line)
        self.lines.append(line)
        if line == "ready":
            self._ready.set()

    def start(self, timeout: float = 15.0) -> int:
        node = shutil.which("node")
        if node is None:
            raise refpeers.RefPeerError("node is not installed")
        if not BTT_PACKAGE.exists():
            subprocess.run(
                [str(ROOT / "scripts" / "install-npm-tools.sh")], timeout=300, check=False
            )
        if not BTT_PACKAGE.exists():
            raise refpeers.RefPeerError("npm package bittorrent-tracker missing")
        self.port = refpeers.free_port()
        v6 = "::1" if HAVE_V6 else ""
        argv = [node, "--input-type=module", "-e", _BTT_RUNNER, str(self.port)]
        self._spawn([*argv, str(self.interval_ms), v6], cwd=NPM_PREFIX)
        if not self._ready.wait(timeout):
            self.stop()
            raise refpeers.RefPeerError("bittorrent-tracker did not start:\n" + self.output_tail())
        return self.port

    def _polite_stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()  # node exits at once on SIGTERM

    def saw(self, event: str, port: int) -> bool:
        return any(ln.startswith(event + " ") and ln.endswith(f":{port}") for ln in self.lines)


@dataclass
class Tracker:
    """One tracker endpoint under test."""

    url: str
    allow: Callable[[bytes], None]
    #: "host" the tracker reports for peers announcing over this endpoint.
    host: str
    process: Any
    #: Where the second peer "B" announces (another endpoint of the same tracker when this one
    #: cannot show what we need), and the host B is reported with.
    b_url: str = ""
    b_host: str = "127.0.0.1"

    def client(self) -> HttpTracker | UdpTracker:
        url = self.b_url or self.url
        if url.startswith("udp:"):
            return UdpTracker(url, base_timeout=0.5, max_retries=2)
        return HttpTracker(url, timeout=5.0)


ENDPOINTS = ["opentracker-http", "opentracker-udp", "bttracker-http", "bttracker-udp"]
if HAVE_V6:
    ENDPOINTS.append("bttracker-udp6")


@pytest.fixture(params=ENDPOINTS)
def tracker(request: pytest.FixtureRequest) -> Iterator[Tracker]:
    kind, transport = request.param.split("-")
    if kind == "opentracker":
        ot = refpeers.OpenTracker()
        try:
            ot.start()
        except refpeers.RefPeerError as exc:
            pytest.skip(f"opentracker unavailable: {exc}")
        url = ot.announce_url if transport == "http" else ot.udp_url
        try:
            yield Tracker(url, ot.allow, "127.0.0.1", ot)
        finally:
            ot.stop()
        return
    bt = BittorrentTracker()
    try:
        port = bt.start()
    except refpeers.RefPeerError as exc:
        pytest.skip(f"bittorrent-tracker unavailable: {exc}")
    url = {
        "http": f"http://127.0.0.1:{port}/announce",
        "udp": f"udp://127.0.0.1:{port}",
        "udp6": f"udp://[::1]:{port}",
    }[transport]
    tracker = Tracker(url, lambda ih: None, "127.0.0.1", bt)
    if transport == "udp6":
        # bittorrent-tracker never sends IPv6 peers over UDP (only its HTTP replies carry
        # peers6), so B looks at the swarm over HTTP, where our ::1 address must show up.
        tracker.host, tracker.b_url = "::1", f"http://127.0.0.1:{port}/announce"
    try:
        yield tracker
    finally:
        bt.stop()


async def until(pred: Callable[[], bool], timeout: float, what: object) -> None:
    """Wait for ``pred``; ``what`` (or what it returns, if callable) explains a timeout."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {detail}")
        await asyncio.sleep(0.02)


async def test_announce_reannounce_scrape_stop(tracker: Tracker) -> None:
    ih = os.urandom(20)
    tracker.allow(ih)
    our_port, b_port = 40001, 40002
    stats = AnnounceStats(uploaded=0, downloaded=0, left=1000)
    seen: list[tuple[list[tuple[str, int]], str]] = []
    ann = Announcer(
        info_hash=ih,
        peer_id=b"-CC0001-" + os.urandom(6).hex().encode(),
        port=our_port,
        tiers=[[tracker.url]],
        stats=lambda: stats,
        on_peers=lambda peers, url: seen.append((peers, url)),
        udp_base_timeout=0.5,
        min_announce_interval=0.5,
        # opentracker reloads its whitelist on its own thread: if our first announce beats
        # the reload it is refused, and the retry must come soon.
        retry_base=0.5,
    )
    b = tracker.client()
    b_id = b"-XX0001-" + os.urandom(6).hex().encode()

    def b_req(event: Event, left: int) -> AnnounceRequest:
        return AnnounceRequest(ih, b_id, b_port, 0, 1000 - left, left, event, numwant=50)

    async def counts() -> ScrapeResult:
        return (await ann.scrape(timeout=5.0))[tracker.url]

    try:
        # started: the tracker now has one leecher, and hands us out to another peer.
        await ann.start()
        await until(lambda: ann.status()[0].status == "working", 10, ann.status)
        assert await counts() == ScrapeResult(complete=0, downloaded=0, incomplete=1)
        reply = await b.announce(b_req(Event.STARTED, 1000))
        assert (tracker.host, our_port) in reply.peers

        # re-announce (no event) as a seed: the tracker moves B from leechers to seeds.
        # (bittorrent-tracker counts that as a download, opentracker only counts "completed")
        await b.announce(b_req(Event.NONE, 0))
        c = await counts()
        assert (c.complete, c.incomplete) == (1, 1)
        downloads_before = c.downloaded

        # completed, through the announcer.
        stats = AnnounceStats(uploaded=0, downloaded=1000, left=0)
        await ann.completed()
        await until(
            lambda: ann.status()[0].seeds == 2 and ann.status()[0].peers == 0, 10, "completed"
        )
        c = await counts()
        assert (c.complete, c.incomplete, c.downloaded) == (2, 0, downloads_before + 1)
        # The announcer saw B in its peer lists by now.
        assert any((tracker.b_host, b_port) in peers for peers, _ in seen)

        if isinstance(tracker.process, BittorrentTracker):
            # This tracker says interval=1 s: the announcer re-announces on its own.
            bt = tracker.process
            await until(lambda: bt.saw("update", our_port), 10, "interval re-announce")
            assert bt.saw("start", our_port) and bt.saw("complete", our_port)

        # stopped: gone from the swarm, and from other peers' lists.
        await ann.stop(timeout=5.0)
        reply = await b.announce(b_req(Event.NONE, 0))
        assert (tracker.host, our_port) not in reply.peers
        assert reply.complete == 1 and reply.incomplete == 0
        if isinstance(tracker.process, BittorrentTracker):
            bt = tracker.process  # its log line may trail its reply a little
            await until(lambda: bt.saw("stop", our_port), 5, "stop in the tracker's log")
    finally:
        await ann.stop(timeout=1.0)
        await b.close()


@pytest.fixture
async def both_trackers() -> AsyncIterator[tuple[refpeers.OpenTracker, BittorrentTracker]]:
    ot, bt = refpeers.OpenTracker(), BittorrentTracker()
    try:
        ot.start()
    except refpeers.RefPeerError as exc:
        pytest.skip(f"opentracker unavailable: {exc}")
    try:
        bt.start()
    except refpeers.RefPeerError as exc:
        ot.stop()
        pytest.skip(f"bittorrent-tracker unavailable: {exc}")
    try:
        yield ot, bt
    finally:
        bt.stop()
        ot.stop()


async def test_libtorrent_seeder_is_in_our_peer_list(
    both_trackers: tuple[refpeers.OpenTracker, BittorrentTracker], tmp_path: Path
) -> None:
    ot, bt = both_trackers
    urls = [ot.announce_url, ot.udp_url, f"http://127.0.0.1:{bt.port}/announce"]
    urls.append(f"udp://127.0.0.1:{bt.port}")
    payload = refpeers.make_payload(tmp_path / "data", 200_000, 2, seed=5)
    made = refpeers.make_torrent(payload, urls, 16384, tmp_path / "t.torrent")
    ot.allow(made.info_hash)
    seeder = refpeers.LibtorrentPeer(
        made.path,
        made.save_path,
        seed=True,
        # One tier per URL; libtorrent would stop at the first that works otherwise.
        extra_settings={"announce_to_all_tiers": True, "announce_to_all_trackers": True},
    )
    lt_port = await asyncio.to_thread(seeder.start)
    try:
        for url in urls:
            found = await _peers_once_seen(url, made)
            assert ("127.0.0.1", lt_port) in found, (url, found)
    finally:
        await asyncio.to_thread(seeder.stop)


async def _peers_once_seen(url: str, made: refpeers.MadeTorrent) -> list[tuple[str, int]]:
    """Wait until ``url`` knows a seed of ``made``, then return the peers our announce gets."""
    found: list[tuple[str, int]] = []
    ann = Announcer(
        info_hash=made.info_hash,
        peer_id=b"-CC0001-" + os.urandom(6).hex().encode(),
        port=40100,
        tiers=[[url]],
        stats=lambda: AnnounceStats(0, 0, made.total_size),
        on_peers=lambda peers, _url: found.extend(peers),
        udp_base_timeout=0.5,
        retry_base=0.5,
    )
    try:
        # libtorrent announces in the background: scrape until this tracker has it.
        deadline = time.monotonic() + 15
        while (await ann.scrape(timeout=5)).get(url, ScrapeResult(0, 0, 0)).complete < 1:
            assert time.monotonic() < deadline, f"{url} never saw libtorrent"
            await asyncio.sleep(0.1)
        await ann.start()
        await until(lambda: bool(found), 10, ann.status)
    finally:
        await ann.stop(timeout=2.0)
    return found
