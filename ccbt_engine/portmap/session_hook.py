"""Port mapping as part of a session: started, re-pointed and stopped with the listen port.

``SessionCore`` holds a :class:`PortMapService` in ``portmap`` while ``network.enable_upnp`` or
``network.enable_natpmp`` is on (and no forced proxy forbids it: a router forwarding our port
would expose the address the proxy hides). ``SessionCore.portmap_options`` says where requests
go; it is None for the real network and set to fakes on 127.0.0.1 by tests.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ccbt_engine.net.proxy import udp_block_reason
from ccbt_engine.portmap.service import MappingStatus, PortMapService

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = [
    "PORTMAP_KEYS",
    "apply_portmap_settings",
    "port_mapping_status",
    "start_session_portmap",
    "stop_session_portmap",
]

log = logging.getLogger(__name__)

#: settings whose change may mean other mappings (the listen port itself is compared directly,
#: since a restart of the listeners with port 0 picks a new one without a settings key changing)
PORTMAP_KEYS = frozenset(
    {
        "network.enable_upnp",
        "network.enable_natpmp",
        "network.listen_port",
        "network.listen_interfaces",
        "network.enable_ipv6",
        "network.proxy_force",
        "network.proxy_type",
        "network.proxy_host",
    }
)


def _wanted(session: SessionCore) -> tuple[bool, bool]:
    """(NAT-PMP, UPnP) as the settings ask, both off under a forced proxy."""
    net = session.settings.network
    if udp_block_reason(net) is not None:
        return False, False
    return net.enable_natpmp, net.enable_upnp


async def start_session_portmap(session: SessionCore) -> None:
    """Begin mapping the listen port if a method is enabled; returns at once (mapping runs in
    the background, and a router that never answers must not delay the session's start)."""
    natpmp_on, upnp_on = _wanted(session)
    if not natpmp_on and not upnp_on:
        return

    def learned(address: str) -> None:
        # what the router says beats nothing; a peer's ``yourip`` may still refine it later
        if session.external_ip is None:
            session.external_ip = address

    service = PortMapService(
        natpmp_enabled=natpmp_on,
        upnp_enabled=upnp_on,
        options=session.portmap_options,
        on_external_ip=learned,
    )
    session.portmap = service
    await service.start(session.listen_port)


async def stop_session_portmap(session: SessionCore) -> None:
    """Delete our mappings on the router (bounded in time) and forget the service."""
    service, session.portmap = session.portmap, None
    if service is not None:
        await service.stop()


async def apply_portmap_settings(session: SessionCore) -> None:
    """After a settings change: other methods mean a new service; a new listen port means
    removing the old mappings and adding the new ones; anything else changes nothing."""
    if not session.started:
        return
    natpmp_on, upnp_on = _wanted(session)
    service = session.portmap
    if service is not None and (service.natpmp_enabled, service.upnp_enabled) == (
        natpmp_on,
        upnp_on,
    ):
        await service.set_port(session.listen_port)
        return
    await stop_session_portmap(session)
    await start_session_portmap(session)


def port_mapping_status(session: SessionCore) -> list[MappingStatus]:
    """Every mapping with its state; empty when port mapping is off."""
    return session.portmap.status() if session.portmap is not None else []
