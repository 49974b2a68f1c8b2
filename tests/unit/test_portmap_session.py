"""Port mapping wired into the session: started by the settings, moved with the listen port,
switched per method, shown by ``Session.port_mapping()`` and removed on shutdown.

Only fakes on 127.0.0.1 are contacted (``portmap_options``); see tests/portmap_fakes.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from ccbt_engine.api import Session
from ccbt_engine.config import Settings
from tests.engine_settings import loopback_settings
from tests.portmap_fakes import EXTERNAL_NATPMP, FakeIgd, FakeNatPmp, fake_options

# the real default-gateway lookup fails (a test that forgot to point the service at a fake
# cannot reach a real router); ``nat`` and ``igd`` are the fakes (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("no_real_gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_network(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"network": settings.network.model_copy(update=changes)})


async def settled(session: Session, timeout: float = 10.0) -> None:
    core = session._core
    assert core.portmap is not None
    await core.portmap.wait_settled(timeout)


async def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def test_product_defaults_map_like_qbittorrent_and_tests_do_not() -> None:
    assert Settings().network.enable_upnp and Settings().network.enable_natpmp
    net = loopback_settings().network
    assert not net.enable_upnp and not net.enable_natpmp


async def test_off_by_default_in_tests(nat: FakeNatPmp) -> None:
    async with Session(loopback_settings(), listen_port=0, portmap_options=fake_options(nat)) as s:
        assert s.port_mapping() == []
        assert s._core.portmap is None
    assert not nat.requests


async def test_session_maps_moves_and_unmaps_its_listen_port(nat: FakeNatPmp, igd: FakeIgd) -> None:
    first, second = free_port(), free_port()
    settings = loopback_settings(
        network={"listen_port": first, "enable_upnp": True, "enable_natpmp": True}
    )
    options = fake_options(nat, igd)
    async with Session(settings, portmap_options=options) as session:
        assert session.listen_port == first
        await settled(session)
        mapped = session.port_mapping()
        assert {(m.method, m.transport, m.state, m.internal_port) for m in mapped} == {
            (method, transport, "mapped", first)
            for method in ("natpmp", "upnp")
            for transport in ("TCP", "UDP")
        }
        assert session._core.external_ip in (EXTERNAL_NATPMP, "203.0.113.9")

        await session.apply_settings(with_network(settings, listen_port=second))
        assert session.listen_port == second
        await settled(session)
        assert {m.internal_port for m in session.port_mapping()} == {second}
        assert {(r.transport, r.internal_port) for r in nat.deletions()} == {
            ("TCP", first),
            ("UDP", first),
        }
        assert {d.args["NewExternalPort"] for d in igd.actions("DeletePortMapping")} == {str(first)}

        # UPnP off: its mappings go, NAT-PMP's stay (re-made by the new service)
        await session.apply_settings(with_network(settings, listen_port=second, enable_upnp=False))
        await settled(session)
        assert {m.method for m in session.port_mapping()} == {"natpmp"}
        upnp_deleted = {
            (d.args["NewProtocol"], d.args["NewExternalPort"])
            for d in igd.actions("DeletePortMapping")
        }
        assert {("TCP", str(second)), ("UDP", str(second))} <= upnp_deleted
    # shutdown removed what was left
    assert {("TCP", second), ("UDP", second)} <= {
        (r.transport, r.internal_port) for r in nat.deletions()
    }
    assert session.port_mapping() == []


async def test_forced_proxy_turns_port_mapping_off(nat: FakeNatPmp) -> None:
    settings = loopback_settings(
        network={
            "enable_natpmp": True,
            "proxy_type": "socks5",
            "proxy_host": "127.0.0.1",
            "proxy_port": 1,
            "proxy_force": True,
        }
    )
    async with Session(settings, listen_port=0, portmap_options=fake_options(nat)) as session:
        assert session.port_mapping() == []
        await session.apply_settings(with_network(settings, proxy_force=False))
        await settled(session)
        assert {m.state for m in session.port_mapping()} == {"mapped"}
        await session.apply_settings(settings)
        assert session.port_mapping() == []
        await until(lambda: len(nat.deletions()) == 2)
