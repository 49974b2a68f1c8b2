"""The asyncio shell of port mapping: one :class:`PortMapService` per session.

It maps the listen port for TCP and UDP (uTP and the DHT share the UDP port) with every enabled
method at once (NAT-PMP and UPnP; a router speaks one, the other fails harmlessly), renews
before the lease runs out, learns the external address, and deletes its mappings on stop.

Where the requests go is a :class:`PortMapOptions`: the NAT-PMP gateway and the SSDP address are
injectable so tests point them at fakes on 127.0.0.1; the real defaults (the default gateway,
239.255.255.250:1900) are used only when nothing else is given. A mapping failure is a status,
never an exception out of the service: a session without a cooperative router works as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from ccbt_engine.portmap import natpmp, upnp
from ccbt_engine.portmap.errors import PortMapError
from ccbt_engine.portmap.gateway import default_gateway

__all__ = ["MappingStatus", "PortMapOptions", "PortMapService"]

log = logging.getLogger(__name__)

Method = Literal["natpmp", "upnp"]
State = Literal["pending", "mapped", "failed"]
TRANSPORTS: tuple[natpmp.Transport, ...] = ("TCP", "UDP")


@dataclass(frozen=True, slots=True)
class PortMapOptions:
    """Where requests go and how long to wait; the defaults are the real network's."""

    #: NAT-PMP gateway; None = the default gateway from /proc/net/route (Linux)
    natpmp_gateway: str | None = None
    natpmp_port: int = natpmp.NATPMP_PORT
    #: where M-SEARCH is sent (a unicast 127.0.0.1 port in tests)
    ssdp_address: tuple[str, int] = upnp.SSDP_ADDRESS
    #: seconds to collect SSDP answers (routers answer within MX = 2 s)
    ssdp_wait: float = 2.5
    lifetime: int = natpmp.DEFAULT_LIFETIME
    natpmp_tries: int = 4
    http_timeout: float = 5.0
    #: seconds before a failed method tries again
    retry_after: float = 300.0
    #: renewals come at half the lease, but never more often than this (a router granting a
    #: few seconds must not make us hammer it; tests lower it to see renewals quickly)
    min_renew: float = 30.0
    #: a permanent UPnP mapping (lease 0) is re-added this often: a rebooted router forgets it
    permanent_refresh: float = 1800.0
    description: str = "ccBitTorrent"


@dataclass(frozen=True, slots=True)
class MappingStatus:
    """One mapping as the GUI/CLI shows it."""

    method: Method
    transport: str  # "TCP" | "UDP"
    internal_port: int
    external_port: int | None
    state: State
    #: why it failed (or "" when mapped/pending)
    error: str
    external_ip: str | None
    #: seconds granted; 0 = permanent (UPnP routers that refuse leases)
    lifetime: int


class _NatPmpProtocol(asyncio.DatagramProtocol):
    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if addr[0] == self.gateway and not self.queue.full():  # RFC 6886 3.1: only the gateway
            self.queue.put_nowait(data)


class _NatPmpClient:
    """Request/response with retransmission over one UDP socket to the gateway."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _NatPmpProtocol) -> None:
        self.transport = transport
        self.proto = proto

    @classmethod
    async def open(cls, gateway: str, port: int) -> _NatPmpClient:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _NatPmpProtocol(gateway), remote_addr=(gateway, port)
        )
        return cls(transport, proto)

    async def request(
        self,
        payload: bytes,
        expect: Callable[[natpmp.ExternalAddress | natpmp.Mapping], bool],
        tries: int,
    ) -> natpmp.ExternalAddress | natpmp.Mapping:
        for delay in natpmp.retransmit_delays(tries):
            self.transport.sendto(payload)
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                try:
                    data = await asyncio.wait_for(self.proto.queue.get(), left)
                except TimeoutError:
                    break
                reply = natpmp.parse_response(data)  # a refusal raises PortMapError at once
                if expect(reply):
                    return reply
        raise PortMapError("no NAT-PMP answer from the gateway")

    def close(self) -> None:
        self.transport.close()


class _SsdpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not self.replies.full():
            self.replies.put_nowait((data, str(addr[0])))


class PortMapService:
    """Maps one port with NAT-PMP and/or UPnP until stopped; see the module docstring."""

    def __init__(
        self,
        *,
        natpmp_enabled: bool,
        upnp_enabled: bool,
        options: PortMapOptions | None = None,
        on_external_ip: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options if options is not None else PortMapOptions()
        self.natpmp_enabled = natpmp_enabled
        self.upnp_enabled = upnp_enabled
        self._on_external_ip = on_external_ip
        self.port = 0
        self._status: dict[tuple[Method, str], MappingStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []
        #: what to undo on stop or port change: (method, transport, external port)
        self._natpmp: _NatPmpClient | None = None
        self._natpmp_mapped: set[str] = set()
        self._igd: upnp.IgdService | None = None
        self._upnp_mapped: dict[str, int] = {}
        self._http: aiohttp.ClientSession | None = None
        self.external_ip: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, port: int) -> None:
        """Begin mapping ``port`` in the background; returns at once."""
        self.port = port
        if self._http is None and self.upnp_enabled:
            # never the trackers' session: that one may go through a proxy; the router is local
            self._http = aiohttp.ClientSession(trust_env=False)
        for method, enabled, run in (
            ("natpmp", self.natpmp_enabled, self._natpmp_loop),
            ("upnp", self.upnp_enabled, self._upnp_loop),
        ):
            if not enabled:
                continue
            for transport in TRANSPORTS:
                self._set(method, transport, "pending")  # type: ignore[arg-type]
            self._tasks.append(asyncio.create_task(run(port), name=f"portmap-{method}"))

    async def set_port(self, port: int) -> None:
        """The listen port changed: remove the old mappings, map the new port."""
        if port == self.port:
            return
        await self._halt()
        self._status.clear()
        await self.start(port)

    async def stop(self) -> None:
        """Delete every mapping we made (bounded time) and close the sockets."""
        await self._halt()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def wait_settled(self, timeout: float) -> None:
        """Until no mapping is pending (tests, and the CLI's one-shot status)."""
        async with asyncio.timeout(timeout):
            while any(s.state == "pending" for s in self._status.values()):
                await asyncio.sleep(0.05)

    def status(self) -> list[MappingStatus]:
        return sorted(self._status.values(), key=lambda s: (s.method, s.transport))

    async def _halt(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await asyncio.gather(self._natpmp_unmap(), self._upnp_unmap())
        if self._natpmp is not None:
            self._natpmp.close()
            self._natpmp = None

    # -- status ----------------------------------------------------------------------------
    def _set(
        self,
        method: Method,
        transport: str,
        state: State,
        *,
        error: str = "",
        external_port: int | None = None,
        lifetime: int = 0,
    ) -> None:
        self._status[(method, transport)] = MappingStatus(
            method, transport, self.port, external_port, state, error, self.external_ip, lifetime
        )

    def _learned_ip(self, address: str) -> None:
        if address in ("", "0.0.0.0"):
            return
        self.external_ip = address
        self._status = {k: replace(s, external_ip=address) for k, s in self._status.items()}
        if self._on_external_ip is not None:
            self._on_external_ip(address)

    # -- NAT-PMP ---------------------------------------------------------------------------
    async def _natpmp_loop(self, port: int) -> None:
        opts = self.options
        while True:
            try:
                wait = await self._natpmp_once(port)
            except (PortMapError, OSError) as exc:
                reason = str(exc) or type(exc).__name__
                log.info("NAT-PMP: port %d not mapped: %s", port, reason)
                for transport in TRANSPORTS:
                    self._set("natpmp", transport, "failed", error=reason)
                if self._natpmp is not None:
                    self._natpmp.close()
                    self._natpmp = None
                wait = opts.retry_after
            await asyncio.sleep(wait)

    async def _natpmp_once(self, port: int) -> float:
        """Map both transports; returns seconds until the renewal (half the shortest lease)."""
        opts = self.options
        if self._natpmp is None:
            gateway = opts.natpmp_gateway or await asyncio.to_thread(default_gateway)
            if gateway is None:
                raise PortMapError("no default IPv4 gateway found (NAT-PMP reads /proc/net/route)")
            self._natpmp = await _NatPmpClient.open(gateway, opts.natpmp_port)
        client = self._natpmp
        with contextlib.suppress(PortMapError):  # a router may map without telling its address
            ext = await client.request(
                natpmp.build_external_address_request(),
                lambda r: isinstance(r, natpmp.ExternalAddress),
                opts.natpmp_tries,
            )
            assert isinstance(ext, natpmp.ExternalAddress)
            self._learned_ip(ext.address)
        granted: list[int] = []
        for transport in TRANSPORTS:
            reply = await client.request(
                natpmp.build_mapping_request(transport, port, port, opts.lifetime),
                lambda r, t=transport: (
                    isinstance(r, natpmp.Mapping)  # type: ignore[misc]
                    and r.transport == t
                    and r.internal_port == port
                ),
                opts.natpmp_tries,
            )
            assert isinstance(reply, natpmp.Mapping)
            self._natpmp_mapped.add(transport)
            granted.append(reply.lifetime)
            self._set(
                "natpmp",
                transport,
                "mapped",
                external_port=reply.external_port,
                lifetime=reply.lifetime,
            )
            log.info(
                "NAT-PMP: %s %d mapped to external port %d for %d s",
                transport,
                port,
                reply.external_port,
                reply.lifetime,
            )
        return max(opts.min_renew, min(granted) / 2)

    async def _natpmp_unmap(self) -> None:
        client = self._natpmp
        if client is None:
            return
        for transport in sorted(self._natpmp_mapped):
            with contextlib.suppress(PortMapError, OSError):
                await client.request(
                    natpmp.build_mapping_request(transport, self.port, 0, 0),  # type: ignore[arg-type]
                    lambda r: isinstance(r, natpmp.Mapping),
                    2,
                )
        self._natpmp_mapped.clear()

    # -- UPnP ------------------------------------------------------------------------------
    async def _upnp_loop(self, port: int) -> None:
        opts = self.options
        while True:
            try:
                wait = await self._upnp_once(port)
            except (PortMapError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                log.info("UPnP: port %d not mapped: %s", port, reason)
                for transport in TRANSPORTS:
                    self._set("upnp", transport, "failed", error=reason)
                self._igd = None
                wait = opts.retry_after
            await asyncio.sleep(wait)

    async def _upnp_once(self, port: int) -> float:
        opts = self.options
        if self._igd is None:
            self._igd = await self._discover()
        igd = self._igd
        local_ip = await self._local_address(igd)
        with contextlib.suppress(PortMapError):
            reply = await self._soap(igd, "GetExternalIPAddress", *upnp.get_external_ip(igd))
            self._learned_ip(reply.get("NewExternalIPAddress", ""))
        lease = opts.lifetime
        for transport in TRANSPORTS:
            try:
                await self._upnp_add(igd, transport, port, local_ip, lease)
            except upnp.UPnPActionError as exc:
                if exc.code != 725:  # OnlyPermanentLeasesSupported: IGD:1 routers
                    raise
                lease = 0
                await self._upnp_add(igd, transport, port, local_ip, lease)
            self._set("upnp", transport, "mapped", external_port=port, lifetime=lease)
            log.info(
                "UPnP: %s %d mapped on %s (lease %d s)", transport, port, igd.control_url, lease
            )
        # a permanent mapping is re-added now and then: a rebooted router forgets it
        return max(opts.min_renew, lease / 2) if lease else opts.permanent_refresh

    async def _upnp_add(
        self, igd: upnp.IgdService, transport: str, port: int, local_ip: str, lease: int
    ) -> None:
        body, action = upnp.add_port_mapping(
            igd, transport, port, local_ip, port, lease, self.options.description
        )
        await self._soap(igd, "AddPortMapping", body, action)
        self._upnp_mapped[transport] = port

    async def _upnp_unmap(self) -> None:
        igd = self._igd
        if igd is None:
            return
        for transport, port in sorted(self._upnp_mapped.items()):
            with contextlib.suppress(PortMapError, OSError, aiohttp.ClientError, TimeoutError):
                await self._soap(
                    igd, "DeletePortMapping", *upnp.delete_port_mapping(igd, transport, port)
                )
        self._upnp_mapped.clear()

    async def _discover(self) -> upnp.IgdService:
        """M-SEARCH for every WAN connection type; the first description that parses wins."""
        opts = self.options
        loop = asyncio.get_running_loop()
        host, port = opts.ssdp_address
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        sock.bind(("127.0.0.1" if host.startswith("127.") else "0.0.0.0", 0))
        transport, proto = await loop.create_datagram_endpoint(_SsdpProtocol, sock=sock)
        errors: list[str] = []
        try:
            for target in upnp.SEARCH_TARGETS:
                transport.sendto(upnp.build_msearch(target, host, port), (host, port))
            deadline = loop.time() + opts.ssdp_wait
            seen: set[str] = set()
            while (left := deadline - loop.time()) > 0:
                try:
                    data, sender = await asyncio.wait_for(proto.replies.get(), left)
                except TimeoutError:
                    break
                try:
                    _, location = upnp.parse_ssdp_reply(data, sender)
                    if location in seen:
                        continue
                    seen.add(location)
                    return upnp.parse_description(await self._fetch(location), location)
                except (PortMapError, aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(str(exc) or type(exc).__name__)
        finally:
            transport.close()
        why = errors[-1] if errors else f"no answer within {opts.ssdp_wait:g} s"
        raise PortMapError(f"no UPnP internet gateway found: {why}")

    async def _fetch(self, url: str) -> bytes:
        assert self._http is not None
        async with asyncio.timeout(self.options.http_timeout):
            async with self._http.get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise PortMapError(f"device description {url[:100]}: HTTP {resp.status}")
                return await _read_bounded(resp)

    async def _soap(
        self, igd: upnp.IgdService, name: str, body: bytes, action: str
    ) -> dict[str, str]:
        assert self._http is not None
        headers = {"Content-Type": 'text/xml; charset="utf-8"', "SOAPAction": action}
        async with asyncio.timeout(self.options.http_timeout):
            async with self._http.post(
                igd.control_url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                return upnp.parse_action_reply(resp.status, await _read_bounded(resp), name)

    async def _local_address(self, igd: upnp.IgdService) -> str:
        """Our address on the router's side (AddPortMapping's NewInternalClient)."""
        host = urlsplit(igd.control_url).hostname or "127.0.0.1"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect((host, 1900))  # no packet is sent: this only picks the route
            return str(sock.getsockname()[0])
        finally:
            sock.close()


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length > upnp.MAX_XML:
        raise PortMapError(f"reply of {resp.content_length} bytes exceeds {upnp.MAX_XML}")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > upnp.MAX_XML:
            raise PortMapError(f"reply exceeds {upnp.MAX_XML} bytes")
    return bytes(body)
