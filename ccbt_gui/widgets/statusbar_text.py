"""What the status bar says, from a :class:`~ccbt_engine.api.NetworkStatus` (no Qt here).

Kept apart from the widgets so the wording (which is what users read when they wonder why
nothing downloads) is tested without a QApplication, and the widget module stays about layout.
"""

from __future__ import annotations

from enum import StrEnum

from ccbt_engine.api import MappingStatus, NetworkStatus
from ccbt_gui import formatting as fmt


class Connection(StrEnum):
    """qBittorrent's three connection states."""

    #: an incoming peer got through: the listen port is reachable from outside
    CONNECTED = "connected"
    #: listening, but no incoming connection yet: a NAT or firewall may be in the way
    FIREWALLED = "firewalled"
    #: not listening (the engine is not running), or no peer connection can be made at all
    DISCONNECTED = "disconnected"


CONNECTION_LABELS = {
    Connection.CONNECTED: "Connected",
    Connection.FIREWALLED: "Firewalled",
    Connection.DISCONNECTED: "Disconnected",
}

_METHODS = {"natpmp": "NAT-PMP", "upnp": "UPnP"}


def connection_state(ns: NetworkStatus | None) -> Connection:
    """As qBittorrent decides it: reachability is proven only by an incoming connection, so
    a port mapping that succeeded still reads "firewalled" until a peer actually gets in."""
    if ns is None or ns.listen_port <= 0 or ns.transport_problem:
        return Connection.DISCONNECTED
    return Connection.CONNECTED if ns.incoming_seen else Connection.FIREWALLED


def mapping_line(m: MappingStatus) -> str:
    """One mapping, e.g. ``NAT-PMP TCP 6881: mapped → 203.0.113.7:6881, lease 2h 0m``."""
    head = f"{_METHODS.get(m.method, m.method)} {m.transport} {m.internal_port}: {m.state}"
    if m.state == "mapped":
        where = f"{m.external_ip or '?'}:{m.external_port or m.internal_port}"
        lease = "permanent" if m.lifetime == 0 else f"lease {fmt.duration(m.lifetime)}"
        return f"{head} → {where}, {lease}"
    if m.state == "failed" and m.error:
        return f"{head} ({m.error})"
    return head


def connection_tooltip(ns: NetworkStatus | None) -> str:
    """Everything that explains the icon: port, address, incoming, each mapping's state."""
    state = connection_state(ns)
    title = f"Connection status: {CONNECTION_LABELS[state]}"
    if ns is None:
        return f"{title}\nThe engine is not running."
    if ns.transport_problem:
        return f"{title}\n{ns.transport_problem[0].upper()}{ns.transport_problem[1:]}."
    if state is Connection.DISCONNECTED:
        return f"{title}\nNot listening for peers."
    lines = [
        title,
        f"Listening port: {ns.listen_port}",
        f"External IP: {ns.external_ip or 'not known yet'}",
        f"Incoming connections seen: {'yes' if ns.incoming_seen else 'no'}",
    ]
    if state is Connection.FIREWALLED:
        lines.append("No peer has connected to us yet: the port may be blocked or not forwarded.")
    if ns.mappings:
        lines.append("Port mapping:")
        lines += [f"  {mapping_line(m)}" for m in ns.mappings]
    else:
        lines.append("Port mapping: off")
    return "\n".join(lines)


def dht_text(ns: NetworkStatus | None) -> str:
    if ns is None:
        return "DHT: –"
    if not ns.dht_enabled:
        return "DHT: off"
    return f"DHT: {ns.dht_nodes} node" + ("" if ns.dht_nodes == 1 else "s")


def rates_text(down: float, up: float, downloaded: int | None, uploaded: int | None) -> str:
    """``↓ 4.2 MiB/s (1.3 GiB)   ↑ 310.0 KiB/s (120.0 MiB)``; totals left out when unknown."""
    down_part = f"↓ {fmt.rate_always(down)}"
    up_part = f"↑ {fmt.rate_always(up)}"
    if downloaded is not None and uploaded is not None:
        down_part += f" ({fmt.size(downloaded)})"
        up_part += f" ({fmt.size(uploaded)})"
    return f"{down_part}   {up_part}"
