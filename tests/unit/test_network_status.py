"""``Session.network_status()``: the facts a status bar shows, from a real session on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ccbt_engine.api import NetworkStatus, Session
from ccbt_engine.create import create_torrent
from tests.engine_settings import loopback_settings
from tests.portmap_fakes import EXTERNAL_NATPMP, FakeNatPmp, fake_options

pytestmark = pytest.mark.timeout(60)


async def until(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_fresh_session_listens_but_has_seen_nothing_yet() -> None:
    session = Session(loopback_settings(), listen_port=0)
    assert session.network_status().listen_port == 0  # not started: not listening
    async with session:
        ns = session.network_status()
        assert isinstance(ns, NetworkStatus)
        assert ns.listen_port == session.listen_port > 0
        assert (ns.external_ip, ns.dht_enabled, ns.dht_nodes) == (None, False, 0)
        assert not ns.incoming_seen and not ns.alt_speed
        assert (ns.downloaded, ns.uploaded, ns.mappings) == (0, 0, ())
        session.set_alt_speed(True)
        assert session.network_status().alt_speed
    assert session.network_status().listen_port == 0


async def test_settings_that_reach_no_peer_are_reported_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = Session(loopback_settings(), listen_port=0)
    async with session:
        assert session.network_status().transport_problem is None
        off = loopback_settings(network={"enable_tcp": False, "enable_utp": False})
        with caplog.at_level("WARNING", logger="ccbt_engine.session"):
            await session.apply_settings(off)
        problem = session.network_status().transport_problem
        assert problem is not None and "enable_tcp and network.enable_utp" in problem
        assert any("no peers can be reached" in r.getMessage() for r in caplog.records)
        await session.apply_settings(loopback_settings())
        assert session.network_status().transport_problem is None


async def test_incoming_is_seen_by_the_seeder_only_and_totals_count(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.bin").write_bytes(os.urandom(300_000))
    torrent = create_torrent(data / "file.bin", piece_length=16384, version="v1")
    async with (
        Session(loopback_settings(), listen_port=0) as seeder,
        Session(loopback_settings(), listen_port=0) as leecher,
    ):
        await seeder.add_torrent(torrent, data)
        # nothing wanted yet: the connection stays up (no transfer to finish and end it), so
        # the flag, sampled from the connected peers as a status bar does per tick, sees it
        handle = await leecher.add_torrent(torrent, tmp_path / "dl", file_priorities=[0])
        assert not seeder.network_status().incoming_seen
        handle.connect_peer("127.0.0.1", seeder.listen_port)  # the seeder sees it incoming
        await until(lambda: seeder.network_status().incoming_seen, "an incoming peer")
        handle.set_file_priorities([4])
        await handle.wait_finished(timeout=40)
        assert not leecher.network_status().incoming_seen  # it only dialled out
        assert leecher.network_status().downloaded >= 300_000
        assert seeder.network_status().uploaded >= 300_000
        # sticky: the peer leaving does not make the port unreachable again
        await leecher.remove(handle.info_hash)
        await until(lambda: not seeder.statuses()[0].num_peers, "the peer to leave")
        assert seeder.network_status().incoming_seen


async def test_dht_nodes_and_port_mappings_show_up(tmp_path: Path) -> None:
    nat = await FakeNatPmp().start()
    try:
        dht_on = {"enable_dht": True}
        no_boot = {**dht_on, "dht_bootstrap_nodes": []}  # loopback only, never a public node
        first = loopback_settings(network=no_boot, disk={"state_dir": str(tmp_path / "s1")})
        async with Session(first, listen_port=0) as boot:
            net = {
                **dht_on,
                "enable_natpmp": True,
                "dht_bootstrap_nodes": [f"127.0.0.1:{boot.listen_port}"],
            }
            settings = loopback_settings(network=net, disk={"state_dir": str(tmp_path / "s2")})
            async with Session(settings, listen_port=0, portmap_options=fake_options(nat)) as s:
                await until(lambda: s.network_status().dht_nodes >= 1, "a DHT node")
                await until(
                    lambda: {m.state for m in s.network_status().mappings} == {"mapped"},
                    "NAT-PMP mappings",
                )
                ns = s.network_status()
                assert ns.dht_enabled
                assert {(m.method, m.transport) for m in ns.mappings} == {
                    ("natpmp", "TCP"),
                    ("natpmp", "UDP"),
                }
                assert ns.external_ip == EXTERNAL_NATPMP  # what the router said
    finally:
        nat.close()
