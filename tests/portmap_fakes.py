"""A NAT-PMP gateway and a UPnP internet gateway device on 127.0.0.1, for tests.

Written from RFC 6886 and the UPnP IGD:1/2 WANIPConnection spec, recording every request, so
tests see exactly what ccbt asked a router for. Nothing here sends multicast or talks to any
address but 127.0.0.1: the SSDP responder is a plain unicast UDP socket that ccbt is pointed at
through ``PortMapOptions.ssdp_address``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Self

from aiohttp import web

from ccbt_engine.portmap import PortMapOptions

__all__ = ["FakeIgd", "FakeNatPmp", "NatPmpRequest", "SoapCall", "fake_options"]

EXTERNAL_NATPMP = "203.0.113.7"
EXTERNAL_UPNP = "203.0.113.9"
WAN_IP1 = "urn:schemas-upnp-org:service:WANIPConnection:1"


def fake_options(
    natpmp: FakeNatPmp | None = None, igd: FakeIgd | None = None, **more: object
) -> PortMapOptions:
    """Options pointing only at the fakes (an unused method gets an address nobody answers
    on loopback, never the real gateway or the SSDP multicast group)."""
    values: dict[str, object] = {
        "natpmp_gateway": "127.0.0.1",
        "natpmp_port": natpmp.port if natpmp is not None else 9,
        "ssdp_address": ("127.0.0.1", igd.ssdp_port if igd is not None else 9),
        "ssdp_wait": 1.0,
        "natpmp_tries": 3,
        "http_timeout": 2.0,
    }
    values.update(more)
    return PortMapOptions(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NatPmpRequest:
    transport: str  # "TCP" | "UDP"
    internal_port: int
    external_port: int
    lifetime: int
    at: float


@dataclass
class FakeNatPmp(asyncio.DatagramProtocol):
    """Grants every mapping for ``min(asked, grant)`` seconds, or refuses with ``result``."""

    grant: int = 7200
    result: int = 0
    port: int = 0
    requests: list[NatPmpRequest] = field(default_factory=list)
    address_requests: int = 0
    _transport: asyncio.DatagramTransport | None = None
    _started: float = field(default_factory=time.monotonic)

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def mappings(self) -> list[NatPmpRequest]:
        return [r for r in self.requests if r.lifetime > 0]

    def deletions(self) -> list[NatPmpRequest]:
        return [r for r in self.requests if r.lifetime == 0]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self._transport is not None
        epoch = int(time.monotonic() - self._started)
        if len(data) < 2 or data[0] != 0:
            return
        op = data[1]
        if op == 0 and len(data) == 2:
            self.address_requests += 1
            reply = struct.pack("!BBHI", 0, 128, self.result, epoch)
            reply += ipaddress.IPv4Address(EXTERNAL_NATPMP).packed
        elif op in (1, 2) and len(data) == 12:
            _, _, _, internal, external, lifetime = struct.unpack("!BBHHHI", data)
            transport = "UDP" if op == 1 else "TCP"
            self.requests.append(
                NatPmpRequest(transport, internal, external, lifetime, time.monotonic())
            )
            granted = min(lifetime, self.grant)
            mapped = (external or internal) if lifetime else 0
            reply = struct.pack(
                "!BBHIHHI", 0, 128 + op, self.result, epoch, internal, mapped, granted
            )
        else:
            return
        self._transport.sendto(reply, addr)


@dataclass(frozen=True)
class SoapCall:
    action: str
    args: dict[str, str]
    at: float


def _description(control: str) -> bytes:
    return f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
 <specVersion><major>1</major><minor>0</minor></specVersion>
 <device>
  <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
  <deviceList><device>
   <deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
   <deviceList><device>
    <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
    <serviceList><service>
     <serviceType>{WAN_IP1}</serviceType>
     <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
     <controlURL>{control}</controlURL>
     <eventSubURL>/evt</eventSubURL>
     <SCPDURL>/scpd.xml</SCPDURL>
    </service></serviceList>
   </device></deviceList>
  </device></deviceList>
 </device>
</root>""".encode()


def _envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f"{inner}</s:Body></s:Envelope>"
    ).encode()


def _fault(code: int, text: str) -> bytes:
    return _envelope(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{text}</errorDescription>"
        "</UPnPError></detail></s:Fault>"
    )


@dataclass
class FakeIgd(asyncio.DatagramProtocol):
    """SSDP search responder (unicast) + device description + WANIPConnection:1 control."""

    #: IGD:1 routers that only accept lease 0 answer other leases with error 725
    only_permanent: bool = False
    ssdp_port: int = 0
    http_port: int = 0
    searches: list[str] = field(default_factory=list)
    calls: list[SoapCall] = field(default_factory=list)
    _udp: asyncio.DatagramTransport | None = None
    _runner: web.AppRunner | None = None

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_get("/desc.xml", self._desc)
        app.router.add_post("/ctl", self._control)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.http_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._udp = udp
        self.ssdp_port = udp.get_extra_info("sockname")[1]
        return self

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def actions(self, name: str) -> list[SoapCall]:
        return [c for c in self.calls if c.action == name]

    # -- SSDP ------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self._udp is not None
        lines = data.decode("latin-1").split("\r\n")
        if not lines[0].startswith("M-SEARCH * HTTP/1.1"):
            return
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        st = headers.get("st", "")
        self.searches.append(st)
        if st != WAN_IP1:
            return  # this router has only WANIPConnection:1
        reply = (
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\n"
            f"LOCATION: http://127.0.0.1:{self.http_port}/desc.xml\r\n"
            f"SERVER: fake/1.0 UPnP/1.0 igd/1.0\r\nST: {st}\r\nUSN: uuid:fake::{st}\r\n\r\n"
        )
        self._udp.sendto(reply.encode(), addr)

    # -- HTTP ------------------------------------------------------------------------------
    async def _desc(self, request: web.Request) -> web.Response:
        return web.Response(body=_description("/ctl"), content_type="text/xml")

    async def _control(self, request: web.Request) -> web.Response:
        soap_action = request.headers.get("SOAPAction", "").strip('"')
        service, _, action = soap_action.partition("#")
        root = ET.fromstring(await request.read())
        args: dict[str, str] = {}
        for elem in root.iter():
            if elem.tag.rsplit("}", 1)[-1] == action:
                args = {c.tag.rsplit("}", 1)[-1]: (c.text or "") for c in elem}
        self.calls.append(SoapCall(action, args, time.monotonic()))
        if service != WAN_IP1:
            return web.Response(status=500, body=_fault(401, "Invalid Action"))
        if action == "GetExternalIPAddress":
            inner = (
                f'<u:GetExternalIPAddressResponse xmlns:u="{WAN_IP1}">'
                f"<NewExternalIPAddress>{EXTERNAL_UPNP}</NewExternalIPAddress>"
                "</u:GetExternalIPAddressResponse>"
            )
        elif action in ("AddPortMapping", "DeletePortMapping"):
            permanent_only = action == "AddPortMapping" and self.only_permanent
            if permanent_only and args.get("NewLeaseDuration") != "0":
                return web.Response(status=500, body=_fault(725, "OnlyPermanentLeasesSupported"))
            inner = f'<u:{action}Response xmlns:u="{WAN_IP1}"></u:{action}Response>'
        else:
            return web.Response(status=500, body=_fault(401, "Invalid Action"))
        return web.Response(body=_envelope(inner), content_type="text/xml")
