"""Port mapping: NAT-PMP and UPnP message cores, and the service against fake routers.

Network rule: everything here talks to fakes on 127.0.0.1 (tests/portmap_fakes.py). The
autouse fixture makes the real default-gateway lookup fail, so a test that forgot to point
the service at a fake cannot reach a real router either.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.portmap import MappingStatus, PortMapError, PortMapService, natpmp, upnp
from ccbt_engine.portmap.gateway import parse_route_table
from tests.portmap_fakes import (
    EXTERNAL_NATPMP,
    EXTERNAL_UPNP,
    WAN_IP1,
    FakeIgd,
    FakeNatPmp,
    fake_options,
)

PORT = 51413


# the real default-gateway lookup fails (a test that forgot to point the service at a fake
# cannot reach a real router); ``nat`` and ``igd`` are the fakes (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("no_real_gateway")


async def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def by_key(statuses: list[MappingStatus]) -> dict[tuple[str, str], MappingStatus]:
    return {(s.method, s.transport): s for s in statuses}


# -- NAT-PMP messages ------------------------------------------------------------------------
def test_natpmp_mapping_request_layout() -> None:
    data = natpmp.build_mapping_request("TCP", 6881, 6882, 3600)
    assert data == struct.pack("!BBHHHI", 0, 2, 0, 6881, 6882, 3600)
    assert natpmp.build_mapping_request("UDP", 1, 0, 0)[1] == 1
    assert natpmp.build_external_address_request() == b"\x00\x00"
    with pytest.raises(PortMapError):
        natpmp.build_mapping_request("TCP", 0, 1, 1)


def test_natpmp_parses_responses_and_refusals() -> None:
    reply = natpmp.parse_response(struct.pack("!BBHIHHI", 0, 130, 0, 9, 6881, 7000, 60))
    assert reply == natpmp.Mapping("TCP", 9, 6881, 7000, 60)
    ext = natpmp.parse_response(struct.pack("!BBHI", 0, 128, 0, 1) + bytes([198, 51, 100, 1]))
    assert ext == natpmp.ExternalAddress(1, "198.51.100.1")
    with pytest.raises(PortMapError, match="not authorized"):
        natpmp.parse_response(struct.pack("!BBHIHHI", 0, 130, 2, 9, 6881, 0, 0))
    with pytest.raises(PortMapError, match="too short"):
        natpmp.parse_response(b"\x00\x82")


@given(st.binary(max_size=40))
def test_natpmp_parser_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(PortMapError):
        natpmp.parse_response(data)


def test_retransmit_delays_double() -> None:
    assert natpmp.retransmit_delays(4) == [0.25, 0.5, 1.0, 2.0]


# -- UPnP messages ---------------------------------------------------------------------------
def test_ssdp_reply_must_point_at_its_sender() -> None:
    reply = b"HTTP/1.1 200 OK\r\nST: x\r\nLOCATION: http://192.168.1.1:5000/d.xml\r\n\r\n"
    assert upnp.parse_ssdp_reply(reply, "192.168.1.1") == ("x", "http://192.168.1.1:5000/d.xml")
    with pytest.raises(PortMapError, match="not an http URL on"):
        upnp.parse_ssdp_reply(reply, "192.168.1.2")  # a LAN host cannot send us elsewhere
    with pytest.raises(PortMapError):
        upnp.parse_ssdp_reply(b"NOTIFY * HTTP/1.1\r\n\r\n", "192.168.1.1")


def test_description_with_a_dtd_is_refused() -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><root>&a;</root>'
    with pytest.raises(PortMapError, match="DTD"):
        upnp.parse_description(evil, "http://127.0.0.1:1/d.xml")


def test_control_url_must_stay_on_the_device() -> None:
    desc = (
        f"<root><device><serviceList><service><serviceType>{WAN_IP1}</serviceType>"
        "<controlURL>http://10.0.0.9/ctl</controlURL></service></serviceList></device></root>"
    ).encode()
    with pytest.raises(PortMapError, match="not on the device"):
        upnp.parse_description(desc, "http://127.0.0.1:1/d.xml")


def test_soap_fault_carries_the_upnp_code() -> None:
    fault = (
        b"<Envelope><Body><Fault><detail><UPnPError><errorCode>725</errorCode>"
        b"<errorDescription>OnlyPermanentLeasesSupported</errorDescription></UPnPError>"
        b"</detail></Fault></Body></Envelope>"
    )
    with pytest.raises(upnp.UPnPActionError) as info:
        upnp.parse_action_reply(500, fault, "AddPortMapping")
    assert info.value.code == 725


@given(st.binary(max_size=300), st.sampled_from(["127.0.0.1", "10.0.0.1"]))
def test_upnp_parsers_raise_only_their_error(data: bytes, sender: str) -> None:
    for parse in (
        lambda: upnp.parse_ssdp_reply(data, sender),
        lambda: upnp.parse_description(data, f"http://{sender}:80/d.xml"),
        lambda: upnp.parse_action_reply(200, data, "AddPortMapping"),
    ):
        with contextlib.suppress(PortMapError):
            parse()


def test_route_table_default_gateway() -> None:
    table = (
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n"
    )
    assert parse_route_table(table) == "192.168.1.1"
    assert parse_route_table(table.splitlines()[0]) is None


# -- the service against the fakes ------------------------------------------------------------
async def test_natpmp_maps_both_transports_renews_and_deletes(nat: FakeNatPmp) -> None:
    nat.grant = 1  # the router grants one second: renewals at half of it (min_renew lowered)
    seen: list[str] = []
    svc = PortMapService(
        natpmp_enabled=True,
        upnp_enabled=False,
        options=fake_options(natpmp=nat, lifetime=3600, min_renew=0.2),
        on_external_ip=seen.append,
    )
    await svc.start(PORT)
    await svc.wait_settled(10)
    status = by_key(svc.status())
    assert set(status) == {("natpmp", "TCP"), ("natpmp", "UDP")}
    for s in status.values():
        assert (s.state, s.internal_port, s.external_port, s.lifetime) == ("mapped", PORT, PORT, 1)
        assert s.external_ip == EXTERNAL_NATPMP
    assert seen and seen[0] == EXTERNAL_NATPMP
    first = nat.mappings()[:2]
    assert {(r.transport, r.internal_port, r.external_port, r.lifetime) for r in first} == {
        ("TCP", PORT, PORT, 3600),
        ("UDP", PORT, PORT, 3600),
    }
    await until(lambda: len(nat.mappings()) >= 6)  # renewed twice, before each lease ran out
    await svc.stop()
    assert {(r.transport, r.internal_port, r.external_port) for r in nat.deletions()} == {
        ("TCP", PORT, 0),
        ("UDP", PORT, 0),
    }


async def test_natpmp_refusal_is_a_status_not_an_exception(nat: FakeNatPmp) -> None:
    nat.result = 2
    svc = PortMapService(natpmp_enabled=True, upnp_enabled=False, options=fake_options(natpmp=nat))
    await svc.start(PORT)
    await svc.wait_settled(10)
    assert {s.state for s in svc.status()} == {"failed"}
    assert "not authorized" in svc.status()[0].error
    await svc.stop()
    assert not nat.deletions()  # nothing was mapped, nothing to delete


async def test_no_natpmp_answer_fails_after_retransmits() -> None:
    silent = await FakeNatPmp().start()
    port = silent.port
    silent.close()  # nobody listens there now
    svc = PortMapService(
        natpmp_enabled=True,
        upnp_enabled=False,
        options=fake_options(natpmp=None, natpmp_port=port, natpmp_tries=2),
    )
    await svc.start(PORT)
    await svc.wait_settled(10)
    assert {s.state for s in svc.status()} == {"failed"}
    await svc.stop()


async def test_upnp_discovers_maps_renews_and_deletes(igd: FakeIgd) -> None:
    svc = PortMapService(
        natpmp_enabled=False,
        upnp_enabled=True,
        options=fake_options(igd=igd, lifetime=1, min_renew=0.2),
    )
    await svc.start(PORT)
    await svc.wait_settled(10)
    assert WAN_IP1 in igd.searches
    status = by_key(svc.status())
    assert {k: (s.state, s.external_port) for k, s in status.items()} == {
        ("upnp", "TCP"): ("mapped", PORT),
        ("upnp", "UDP"): ("mapped", PORT),
    }
    assert all(s.external_ip == EXTERNAL_UPNP for s in status.values())
    adds = igd.actions("AddPortMapping")
    assert {a.args["NewProtocol"] for a in adds[:2]} == {"TCP", "UDP"}
    for call in adds[:2]:
        assert call.args["NewExternalPort"] == str(PORT)
        assert call.args["NewInternalPort"] == str(PORT)
        assert call.args["NewInternalClient"] == "127.0.0.1"
        assert call.args["NewLeaseDuration"] == "1"
        assert call.args["NewEnabled"] == "1"
    assert igd.actions("GetExternalIPAddress")
    await until(lambda: len(igd.actions("AddPortMapping")) >= 6)  # renewed
    await svc.stop()
    deletes = igd.actions("DeletePortMapping")
    assert {(d.args["NewProtocol"], d.args["NewExternalPort"]) for d in deletes} == {
        ("TCP", str(PORT)),
        ("UDP", str(PORT)),
    }


async def test_upnp_falls_back_to_a_permanent_lease(igd: FakeIgd) -> None:
    igd.only_permanent = True
    svc = PortMapService(
        natpmp_enabled=False, upnp_enabled=True, options=fake_options(igd=igd, lifetime=600)
    )
    await svc.start(PORT)
    await svc.wait_settled(10)
    assert {(s.state, s.lifetime) for s in svc.status()} == {("mapped", 0)}
    leases = [a.args["NewLeaseDuration"] for a in igd.actions("AddPortMapping")]
    assert leases[0] == "600" and "0" in leases
    await svc.stop()
    assert len(igd.actions("DeletePortMapping")) == 2


async def test_no_igd_answer_is_a_failed_status(nat: FakeNatPmp) -> None:
    svc = PortMapService(
        natpmp_enabled=True,
        upnp_enabled=True,
        options=fake_options(natpmp=nat, igd=None, ssdp_wait=0.3),
    )
    await svc.start(PORT)
    await svc.wait_settled(10)
    states = {(s.method, s.state) for s in svc.status()}
    assert states == {("natpmp", "mapped"), ("upnp", "failed")}
    assert "no UPnP internet gateway" in by_key(svc.status())[("upnp", "TCP")].error
    await svc.stop()


async def test_new_port_moves_the_mappings(nat: FakeNatPmp, igd: FakeIgd) -> None:
    svc = PortMapService(
        natpmp_enabled=True, upnp_enabled=True, options=fake_options(natpmp=nat, igd=igd)
    )
    await svc.start(PORT)
    await svc.wait_settled(10)
    await svc.set_port(PORT + 1)
    await svc.wait_settled(10)
    assert {s.internal_port for s in svc.status()} == {PORT + 1}
    assert {s.state for s in svc.status()} == {"mapped"}
    assert {(r.transport, r.internal_port) for r in nat.deletions()} == {
        ("TCP", PORT),
        ("UDP", PORT),
    }
    assert {d.args["NewExternalPort"] for d in igd.actions("DeletePortMapping")} == {str(PORT)}
    await svc.stop()
    assert {r.internal_port for r in nat.deletions()} == {PORT, PORT + 1}
