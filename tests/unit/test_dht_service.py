"""The DHT inside the session: started from settings, torrents find each other through it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from ccbt_engine.dht.node import DHTConfig, DHTNode
from ccbt_engine.dht.service import parse_host_port, peer_loop
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)


def test_parse_host_port() -> None:
    assert parse_host_port("router.bittorrent.com:6881") == ("router.bittorrent.com", 6881)
    assert parse_host_port("[::1]:7") == ("::1", 7)
    for bad in ("nohost", "host:", ":5", "h:0", "h:70000", "h:x"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


async def test_loopback_node_never_resolves_or_contacts_public_bootstrap_nodes() -> None:
    cfg = DHTConfig(bootstrap=(("example.invalid", 6881), ("192.0.2.1", 6881)), query_timeout=0.2)
    node = DHTNode(cfg)
    await node.start(["127.0.0.1"])
    try:
        assert await node.bootstrap() == 0
        assert node.stats["sent"] == 0
        assert node._bootstrap_addrs == [("192.0.2.1", 6881)]  # the name was never resolved
    finally:
        await node.stop()


async def test_two_sessions_find_each_other_only_through_the_dht(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.bin").write_bytes(os.urandom(700_000))
    torrent = create_torrent(data / "file.bin", version="v1")  # no trackers
    dht_on = {"enable_dht": True}
    async with Session(
        loopback_settings(network=dht_on, disk={"state_dir": str(tmp_path / "s1")}), listen_port=0
    ) as seeder:
        boot = {**dht_on, "dht_bootstrap_nodes": [f"127.0.0.1:{seeder.listen_port}"]}
        leech_settings = loopback_settings(network=boot, disk={"state_dir": str(tmp_path / "s2")})
        async with Session(leech_settings, listen_port=0) as leecher:
            # The DHT shares the listen port number (dht_port = 0).
            assert leecher._core.dht is not None and leecher._core.dht.port == leecher.listen_port
            await seeder.add_torrent(torrent, data)
            handle = await leecher.add_torrent(torrent, tmp_path / "dl")
            status = await handle.wait_finished(timeout=40)
            assert status.state == "seeding"
        assert (tmp_path / "s2" / "dht.json").exists()
    assert (tmp_path / "dl" / "file.bin").read_bytes() == (data / "file.bin").read_bytes()


async def test_private_torrents_stay_out_of_the_dht(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_bytes(b"x" * 50_000)
    torrent = create_torrent(data / "f", version="v1", private=True)
    async with Session(loopback_settings(network={"enable_dht": True}), listen_port=0) as s:
        await s.add_torrent(torrent, data)
        await asyncio.sleep(0.3)
        assert s._core.dht is not None and s._core.dht.stats["lookups"] == 0


async def test_peer_loop_retries_quickly_then_hands_peers_over() -> None:
    a = DHTNode(DHTConfig(query_timeout=0.3))
    await a.start(["127.0.0.1"])
    b = DHTNode(DHTConfig(bootstrap=(("127.0.0.1", a.port),), query_timeout=0.3))
    await b.start(["127.0.0.1"])
    got: list[tuple[str, int]] = []
    ih = os.urandom(20)
    task = asyncio.create_task(peer_loop(lambda: b, ih, lambda peers, src: got.extend(peers)))
    try:
        await asyncio.sleep(0.5)
        assert got == []  # nobody has announced yet
        a.store.add(ih, "127.0.0.1", 5555, a._clock())
        await asyncio.wait_for(_until(lambda: bool(got)), 10)  # the 5 s retry finds it
        assert got == [("127.0.0.1", 5555)]
    finally:
        task.cancel()
        await b.stop()
        await a.stop()


async def _until(pred: Callable[[], bool]) -> None:
    while not pred():
        await asyncio.sleep(0.05)


async def test_dht_switched_on_and_off_live(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_bytes(b"y" * 50_000)
    torrent = create_torrent(data / "f", version="v1")
    state = {"state_dir": str(tmp_path / "s")}
    async with Session(loopback_settings(disk=state), listen_port=0) as s:
        await s.add_torrent(torrent, data)
        core = s._core
        assert core.dht is None
        on = loopback_settings(network={"enable_dht": True}, disk=state)
        assert "network.enable_dht" in await s.apply_settings(on)
        assert core.dht is not None and core.dht.port == s.listen_port
        assert await core.dht.ping(("127.0.0.1", core.dht.port)) == core.dht.node_id  # answers
        await s.apply_settings(loopback_settings(disk=state))
        assert core.dht is None
