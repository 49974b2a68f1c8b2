"""ccbt as a seeder under load and under limits, judged by libtorrent leechers.

The engine-level unit tests check limits between two ccbt sessions; here a client nobody here wrote
does the downloading, so a choking or throttling bug that ccbt's own leecher would happen to
tolerate still shows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ccbt_engine.api import Session, TorrentHandle
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import LibtorrentPeer, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

MIB = 1024 * 1024
PIECE = 256 * 1024


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


def _payload_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


async def test_two_libtorrent_leechers_at_once(
    ccbt: Session, payload_16m: Path, tmp_path: Path
) -> None:
    """Both leechers get an upload slot (unchoked together) and both complete."""
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    handle = await ccbt.add_torrent(made.path, made.save_path)
    assert handle.status().state == "seeding"
    # throttled so the transfers surely overlap (32 MiB at 8 MiB/s: ~4 s)
    handle.set_limits(upload=8 * MIB)
    leechers = [
        LibtorrentPeer(made.path, tmp_path / f"lt{i}", seed=False, tcp_only=True) for i in range(2)
    ]
    both_unchoked = False
    try:
        for lt in leechers:
            await lt.start_async()
            await lt.connect_async("127.0.0.1", ccbt.listen_port)
        while not all(lt.finished for lt in leechers):
            peers = handle.peers()
            # "U": we upload to it (it is interested and we do not choke it)
            if sum("U" in p.flags for p in peers) == 2:
                both_unchoked = True
            await asyncio.sleep(0.05)
            for lt in leechers:
                if not lt.running:
                    pytest.fail(f"libtorrent leecher died:\n{lt.output_tail()}")
        for lt in leechers:
            await lt.wait_finished_async(60)
    finally:
        for lt in leechers:
            await lt.stop_async()
    assert both_unchoked, "ccbt never served both leechers at the same time"
    source = sha256_tree(payload_16m)
    for i in range(2):
        assert sha256_tree(tmp_path / f"lt{i}" / made.name) == source
    # the only seed sent every piece at least once (the leechers may trade the rest via PEX)
    assert handle.status().uploaded >= _payload_size(payload_16m)


@pytest.mark.parametrize("scope", ["torrent", "session"])
async def test_upload_limit_holds_against_libtorrent(
    ccbt: Session, payload_16m: Path, tmp_path: Path, scope: str
) -> None:
    """16 MiB at 4 MiB/s: one second of burst, then at least ~3 s more."""
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    handle: TorrentHandle = await ccbt.add_torrent(made.path, made.save_path)
    if scope == "torrent":
        handle.set_limits(upload=4 * MIB)
        assert handle.status().upload_limit == 4 * MIB
    else:
        ccbt.set_limits(upload=4 * MIB)
    with LibtorrentPeer(made.path, tmp_path / "lt", seed=False, tcp_only=True) as leecher:
        start = time.monotonic()
        await leecher.connect_async("127.0.0.1", ccbt.listen_port)
        await leecher.wait_finished_async(60)
        elapsed = time.monotonic() - start
    assert elapsed >= 2.7, f"16 MiB at 4 MiB/s took only {elapsed:.2f}s"
    assert sha256_tree(tmp_path / "lt" / made.name) == sha256_tree(payload_16m)
