"""Outgoing peer connections per ``network.proxy_*`` and ``network.enable_tcp/enable_utp``.

:func:`dial_peer` is the one place that decides how ``Torrent._connect`` reaches a peer:

* a proxy is set: a TCP tunnel through it (:mod:`ccbt_engine.net.proxy` negotiates), never uTP,
  because a direct uTP dial would show the peer our own address, which is what the proxy hides;
* TCP is off: uTP only (or a clear error when uTP is off too);
* otherwise uTP first with TCP alongside, as before (``open_peer_connection``).

:func:`tracker_http_session` gives the trackers' aiohttp session the same proxy (SOCKS5 through
``aiohttp-socks``, HTTP through aiohttp's own ``proxy=``).

UDP (uTP, the DHT, UDP trackers) and LAN traffic (LSD, UPnP/NAT-PMP) cannot go through a TCP
tunnel. Like libtorrent with an HTTP proxy, they stay direct by default; ``network.proxy_force``
(libtorrent's old ``force_proxy``, qBittorrent's "Disable connections not supported by proxies")
turns them off instead, so nothing but the proxy ever sees our address: see
:func:`udp_block_reason` and docs/network.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from yarl import URL

from ccbt_engine.config import ConfigError, NetworkSettings, Settings
from ccbt_engine.config.secrets import get_secret
from ccbt_engine.net.proxy import ProxyError, make_handshake, udp_block_reason
from ccbt_engine.net.utp_socket import open_peer_connection
from ccbt_engine.tracker.http_tls import set_tls_policy, tls_option

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = [
    "PROXY_KEYS",
    "ProxyConfig",
    "apply_proxy_settings",
    "dial_peer",
    "open_tracker_session",
    "open_tunnel",
    "proxy_config",
    "tracker_http_session",
    "udp_block_reason",
]

log = logging.getLogger(__name__)

P = TypeVar("P", bound=asyncio.BaseProtocol)

#: settings whose change means a new tracker HTTP session and a new keyring look-up
PROXY_KEYS = frozenset(
    {
        "network.proxy_type",
        "network.proxy_host",
        "network.proxy_port",
        "network.proxy_username",
        "network.proxy_force",
    }
)
PASSWORD_KEY = "network.proxy_password"


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    kind: str  # "socks5" | "http"
    host: str
    port: int
    username: str = ""
    password: str = ""

    def __repr__(self) -> str:  # never print the password into a log
        user = f"{self.username}@" if self.username else ""
        return f"ProxyConfig({self.kind}://{user}{self.host}:{self.port})"


def proxy_config(net: NetworkSettings, password: str | None = None) -> ProxyConfig | None:
    """The configured proxy, or None when ``proxy_type`` is "none" or no host is set."""
    if net.proxy_type == "none":
        return None
    if not net.proxy_host.strip():
        log.warning("proxy_type is %s but proxy_host is empty: no proxy used", net.proxy_type)
        return None
    return ProxyConfig(
        net.proxy_type, net.proxy_host.strip(), net.proxy_port, net.proxy_username, password or ""
    )


def _read_password(net: NetworkSettings) -> str:
    """The keyring password (or ``CCBT_NETWORK_PROXY_PASSWORD``); "" without a user name."""
    if not net.proxy_username:
        return ""
    try:
        return get_secret(PASSWORD_KEY) or ""
    except ConfigError as exc:
        log.error("proxy password unavailable, authenticating without it: %s", exc)
        return ""


#: per session: the network settings object the cached config was made from, and the config
_cache: weakref.WeakKeyDictionary[SessionCore, tuple[NetworkSettings, ProxyConfig | None]] = (
    weakref.WeakKeyDictionary()
)


async def session_proxy(session: SessionCore) -> ProxyConfig | None:
    """The session's proxy; the keyring is read (in a thread: it may block on D-Bus) once per
    settings change, not once per connection."""
    net = session.settings.network
    cached = _cache.get(session)
    if cached is not None and cached[0] is net:
        return cached[1]
    if net.proxy_type == "none":
        config = None
    else:
        config = proxy_config(net, await asyncio.to_thread(_read_password, net))
    _cache[session] = (net, config)
    return config


async def open_tunnel(proxy: ProxyConfig, host: str, port: int, timeout: float) -> socket.socket:
    """A connected, non-blocking socket whose far end is ``host:port`` through ``proxy``.

    Raises :class:`ProxyError` (refusal, authentication, garbage), OSError (the proxy itself is
    unreachable) or TimeoutError."""
    loop = asyncio.get_running_loop()
    handshake = make_handshake(proxy.kind, host, port, proxy.username, proxy.password)
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
        if not infos:
            raise ProxyError(f"proxy host {proxy.host!r} has no address")
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot reach the {proxy.kind} proxy {proxy.host}:{proxy.port}: "
                    f"{exc.strerror or exc}",
                ) from exc
            await loop.sock_sendall(sock, handshake.initial())
            while not handshake.done:
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    raise ProxyError(
                        f"{proxy.kind} proxy closed the connection during the handshake"
                    )
                reply = handshake.receive_data(data)
                if reply:
                    await loop.sock_sendall(sock, reply)
        except BaseException:
            sock.close()
            raise
    return sock


def _report_target(factory: Callable[[], P], host: str, port: int) -> Callable[[], P]:
    """The protocol made by ``factory``, but with the peer's address, not the proxy's.

    The transport's peername is the proxy; the connection's ``address`` (used for bans,
    duplicates and the peer list) must be the peer it is tunnelled to. It is set right after the
    protocol's own ``connection_made``, before any byte can arrive.
    """

    def make() -> P:
        proto = factory()
        original = proto.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            original(transport)
            if hasattr(proto, "address"):
                proto.address = (host, port)

        setattr(proto, "connection_made", connection_made)  # noqa: B010 - instance override
        return proto

    return make


async def dial_peer(
    session: SessionCore, factory: Callable[[], P], host: str, port: int, timeout: float
) -> tuple[asyncio.BaseTransport, P]:
    """Connect to one peer the way the settings say (see the module docstring)."""
    net = session.settings.network
    proxy = await session_proxy(session)
    if proxy is not None:
        if not net.enable_tcp:
            raise ConnectionError(
                "network.enable_tcp is false: nothing to tunnel through the proxy"
            )
        loop = asyncio.get_running_loop()
        sock = await open_tunnel(proxy, host, port, timeout)
        try:
            return await loop.create_connection(_report_target(factory, host, port), sock=sock)
        except BaseException:
            sock.close()
            raise
    if not net.enable_tcp:
        utp = session.utp.for_host(host) if session.utp is not None else None
        if utp is None:
            raise ConnectionError(
                "network.enable_tcp is false and uTP is off or has no socket for this address"
            )
        return await utp.connect(factory, host, port, timeout=timeout)
    return await open_peer_connection(session.utp, factory, host, port, timeout)


def tracker_http_session(settings: Settings, password: str = "") -> aiohttp.ClientSession:
    """The aiohttp session trackers announce through, proxied as configured.

    SOCKS5 goes through ``aiohttp-socks`` (a dependency; its connector resolves nothing
    locally: ``rdns``). The password is passed in (read from the keyring by the caller).
    """
    from ccbt_engine import CLIENT_NAME, __version__

    headers = {"User-Agent": f"{CLIENT_NAME}/{__version__}"}
    proxy = proxy_config(settings.network, password)
    if proxy is None:
        return aiohttp.ClientSession(headers=headers)
    if proxy.kind == "http":
        # credentials in the proxy URL: aiohttp sends them as Basic Proxy-Authorization (its
        # session-level ``proxy_auth`` is deprecated)
        url = URL.build(
            scheme="http",
            host=proxy.host,
            port=proxy.port,
            user=proxy.username or None,
            password=(proxy.password if proxy.username else None),
        )
        return aiohttp.ClientSession(headers=headers, proxy=url)
    return aiohttp.ClientSession(headers=headers, connector=_socks_connector(proxy))


def _socks_connector(proxy: ProxyConfig) -> aiohttp.BaseConnector:
    """aiohttp-socks' connector (``rdns``: the proxy resolves names), but its errors become
    :class:`aiohttp.ClientConnectionError`.

    aiohttp-socks raises its own exception types (not ``aiohttp.ClientError``), which the
    tracker client does not expect: a refused password would escape the announcer instead of
    showing as the tracker's error. The message keeps the proxy's words ("Username and
    password authentication failure")."""
    from aiohttp_socks import (
        ProxyConnectionError,
        ProxyConnector,
        ProxyError,
        ProxyTimeoutError,
        ProxyType,
    )

    class SocksConnector(ProxyConnector):
        async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
            try:
                return await super().connect(req, traces, timeout)
            except (ProxyError, ProxyConnectionError, ProxyTimeoutError) as exc:
                raise aiohttp.ClientConnectionError(f"SOCKS5 proxy: {exc}") from exc

    return SocksConnector(
        proxy_type=ProxyType.SOCKS5,
        host=proxy.host,
        port=proxy.port,
        username=proxy.username or None,
        password=proxy.password or None,
        rdns=True,
    )


async def apply_proxy_settings(session: SessionCore, keys: set[str]) -> None:
    """Proxy settings changed live: new tracker session, and UDP/LAN services on or off.

    Running announcers hold the HTTP session they started with, so they are restarted (a
    ``stopped`` announce through the old session, then a fresh one through the new); closing the
    old session under them would make :class:`HttpTracker` open an unproxied one of its own.
    """
    if not keys & PROXY_KEYS:
        return
    old = session.http
    new = await open_tracker_session(session)
    if old is not None:  # security.verify_tls carries over before the restarted announces
        set_tls_policy(new, lambda: tls_option(old))
    session.http = new
    links = [t.trackers for t in session.torrents.values()]
    links += [m.trackers for m in session.magnets.values()]
    await asyncio.gather(*(link.restart() for link in links), return_exceptions=True)
    if old is not None:
        with contextlib.suppress(Exception):
            await old.close()
    await _apply_udp_block(session)


async def _apply_udp_block(session: SessionCore) -> None:
    """Stop (or restart) what :func:`udp_block_reason` governs after a live change."""
    from ccbt_engine.dht.service import apply_dht_settings
    from ccbt_engine.net.lsd import SessionLsd
    from ccbt_engine.portmap.session_hook import apply_portmap_settings

    net = session.settings.network
    blocked = udp_block_reason(net) is not None
    if (session.utp is not None) if blocked else (net.enable_utp and session.utp is None):
        await session._restart_listeners()  # opens uTP only when not blocked (start_listening)
    if (session.dht is not None) if blocked else (net.enable_dht and session.dht is None):
        await apply_dht_settings(session)  # starts the node only when enabled and not blocked
    if blocked and session.lsd is not None:
        await session.lsd.close()
        session.lsd = None
    elif not blocked and net.enable_lsd and session.lsd is None:
        lsd = SessionLsd(session)
        session.lsd = lsd if await lsd.start() else None
    await apply_portmap_settings(session)


async def open_tracker_session(session: SessionCore) -> aiohttp.ClientSession:
    """The session's tracker HTTP client at start (proxied when a proxy is set)."""
    password = await asyncio.to_thread(_read_password, session.settings.network)
    return tracker_http_session(session.settings, password)
