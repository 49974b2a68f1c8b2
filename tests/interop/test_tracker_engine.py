"""The engine with real trackers: peers found only through a tracker, events seen by it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ccbt_engine.api import Session
from ccbt_engine.tracker import HttpTracker, UdpTracker
from tests.engine_settings import loopback_settings
from tests.interop import refpeers
from tests.interop.refpeers import LibtorrentPeer, MiniTracker, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


async def _until_tracker_has_seed(url: str, info_hash: bytes) -> None:
    client = UdpTracker(url, base_timeout=0.5) if url.startswith("udp") else HttpTracker(url)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                got = await client.scrape([info_hash])
                if got and next(iter(got.values())).complete >= 1:
                    return
            except Exception:  # not whitelisted yet, or not answering yet: try again
                pass
            assert time.monotonic() < deadline, f"{url} never saw the libtorrent seeder"
            await asyncio.sleep(0.2)
    finally:
        await client.close()


@pytest.mark.parametrize("transport", ["http", "udp"])
async def test_seeder_found_only_through_opentracker(
    open_tracker: refpeers.OpenTracker, payload_16m: Path, tmp_path: Path, transport: str
) -> None:
    url = open_tracker.announce_url if transport == "http" else open_tracker.udp_url
    made = make_torrent(payload_16m, url, 256 * 1024, tmp_path / "t.torrent")
    open_tracker.allow(made.info_hash)
    with LibtorrentPeer(made.path, made.save_path, seed=True):
        await _until_tracker_has_seed(url, made.info_hash)
        async with Session(loopback_settings(), listen_port=0) as session:
            handle = await session.add_torrent(made.path, tmp_path / "dl")
            await handle.wait_finished(timeout=90)
            sources = {p.source for p in handle.peers()}
            trackers = handle.trackers()
    assert sources <= {"tracker"}
    assert [t.url for t in trackers] == [url]
    # "updating" while the completed announce is in flight; never an error
    assert trackers[0].status in ("working", "updating"), trackers[0].message
    assert trackers[0].last_announce is not None
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload_16m)


async def test_tracker_sees_started_completed_stopped(
    mini_tracker: MiniTracker, payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, mini_tracker.announce_url, 256 * 1024, tmp_path / "t.torrent")
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        session = Session(loopback_settings(), listen_port=0)
        await session.start()
        peer_id = session._core.peer_id  # only to pick our own announces out of the log
        handle = await session.add_torrent(made.path, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", seeder.port)
        await handle.wait_finished(timeout=90)
        await asyncio.sleep(0.5)  # the completed announce goes out in the background
        await session.stop()
    ours = [a for a in mini_tracker.announces if a["peer_id"] == peer_id]
    events = [a["event"] for a in ours]
    assert events[0] == "started"
    assert "completed" in events
    assert events[-1] == "stopped"
    assert events.index("completed") < len(events) - 1
