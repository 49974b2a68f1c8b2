"""A bare magnet link (``xt`` only: no ``tr=``, no ``x.pe=``) completes from a libtorrent seeder
that only the DHT knows about.

Three DHT nodes on 127.0.0.1 and nothing else: libtorrent's (the seeder, which announces the
swarm), WebTorrent's ``bittorrent-dht`` under node, and ccbt's, which bootstraps off the other
two. The only way ccbt can learn the seeder's address is a DHT ``get_peers`` answer, so a
finished download proves the whole chain: magnet -> DHT lookup -> BEP 9 metadata -> pieces.

v2-only magnets (``btmh`` without ``btih``) and their BEP 52 piece-layer fetch are tested over a
direct connection in ``test_v2_magnet.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Literal

import pytest

from ccbt_engine.api import PeerStatus, Session, TorrentHandle
from ccbt_engine.config import Settings
from ccbt_engine.magnet import Magnet
from ccbt_engine.magnet_fetch import MagnetHandle
from tests.engine_settings import loopback_settings
from tests.interop import refpeers
from tests.interop.refpeers import LibtorrentPeer, make_payload, make_torrent, sha256_tree
from tests.interop.test_dht_interop import LO, NpmDhtNode, lt_dht_settings, npm_dht

__all__ = ["npm_dht"]  # the fixture, re-exported so pytest finds it in this module

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

#: slow enough that the download lasts a few seconds, so the peers snapshot taken while it runs
#: sees the seeder (libtorrent drops seed-to-seed connections as soon as ccbt is done)
SEED_RATE = 1_500_000
#: payload bytes (a hybrid .torrent's own size also counts its BEP 47 pad files)
PAYLOAD_SIZE = 6 << 20


def _dht_settings(tmp_path: Path, *bootstrap: int) -> Settings:
    """Loopback settings with the DHT switched back on, bootstrapping only off ``bootstrap``."""
    return loopback_settings(
        network={
            "enable_dht": True,
            "dht_bootstrap_nodes": [f"{LO}:{port}" for port in bootstrap],
        },
        disk={"state_dir": str(tmp_path / "state")},
    )


async def _watch_peers(handle: TorrentHandle, seen: list[PeerStatus]) -> None:
    """Record every peer row the handle shows (metadata phase and download) until cancelled."""
    while True:
        seen.extend(handle.peers())
        await asyncio.sleep(0.1)


def _made(tmp_path: Path, version: Literal["v1", "hybrid"]) -> refpeers.MadeTorrent:
    payload = make_payload(tmp_path / "payload", PAYLOAD_SIZE, 4, seed=7)
    return make_torrent(payload, None, 256 * 1024, tmp_path / "t.torrent", version)


async def _fetch_over_dht(
    npm: NpmDhtNode, made: refpeers.MadeTorrent, uri: str, tmp_path: Path
) -> None:
    """Seed ``made`` from libtorrent, add ``uri`` to a DHT-only ccbt session and check it all."""
    seeder = LibtorrentPeer(
        made.path,
        made.save_path,
        seed=True,
        extra_settings={**lt_dht_settings(npm.port), "upload_rate_limit": SEED_RATE},
    )
    await seeder.start_async()
    seen: list[PeerStatus] = []
    try:
        settings = _dht_settings(tmp_path, seeder.port, npm.port)
        async with Session(settings, listen_port=0) as session:
            handle = await session.add_magnet(uri, tmp_path / "dl")
            assert isinstance(handle, MagnetHandle)
            assert handle.status().state == "metadata"
            watcher = asyncio.create_task(_watch_peers(handle, seen))
            try:
                await handle.wait_metadata(timeout=40)
                status = await handle.wait_finished(timeout=40)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            assert status.state == "seeding"
            assert status.name == made.name
            assert status.total_size == PAYLOAD_SIZE
            core = session._core
            assert core.dht is not None and core.dht.stats["lookups"] >= 1
            # both loopback bootstrap nodes answered: libtorrent's and WebTorrent's
            for port in (seeder.port, npm.port):
                contact = core.dht.tables[4].find_addr((LO, port))
                assert contact is not None and contact.last_reply is not None, port
    finally:
        await seeder.stop_async()
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(made.save_path / made.name)
    seeder_rows = [p for p in seen if p.address == f"{LO}:{seeder.port}"]
    assert seeder_rows, f"seeder never in the peers snapshot: {[p.address for p in seen]}"
    # ccbt's own get_peers found the seeder; libtorrent, which finds ccbt's announce in the same
    # DHT and binds its outgoing connections to its listen port, may also dial in ("incoming")
    sources = {p.source for p in seeder_rows}
    assert "dht" in sources and sources <= {"dht", "incoming"}, seeder_rows
    assert any(p.downloaded > 0 for p in seeder_rows)  # the data came from the DHT-found seeder


async def test_bare_btih_magnet_completes_from_a_seeder_found_only_via_dht(
    npm_dht: NpmDhtNode, tmp_path: Path
) -> None:
    made = _made(tmp_path, "v1")
    assert made.info_hash_v1 is not None
    uri = f"magnet:?xt=urn:btih:{made.info_hash_v1.hex()}"  # nothing but the infohash
    await _fetch_over_dht(npm_dht, made, uri, tmp_path)


async def test_bare_hybrid_magnet_completes_from_a_seeder_found_only_via_dht(
    npm_dht: NpmDhtNode, tmp_path: Path
) -> None:
    made = _made(tmp_path, "hybrid")
    assert made.info_hash_v1 is not None and made.info_hash_v2 is not None
    uri = Magnet(info_hash_v1=made.info_hash_v1, info_hash_v2=made.info_hash_v2).to_uri()
    assert "tr=" not in uri and "x.pe=" not in uri and "urn:btmh:" in uri
    await _fetch_over_dht(npm_dht, made, uri, tmp_path)
