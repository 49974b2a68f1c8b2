"""Proxy support: the SOCKS5 / HTTP CONNECT handshakes, dialing peers and trackers through
fake proxies on 127.0.0.1 (tests/proxy_fakes.py), and what ``network.proxy_force`` turns off.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.api import Session
from ccbt_engine.config import Settings
from ccbt_engine.create import create_torrent_async
from ccbt_engine.net import proxy_dial
from ccbt_engine.net.proxy import (
    HttpConnectHandshake,
    ProxyError,
    Socks5Handshake,
    make_handshake,
    udp_block_reason,
)
from ccbt_engine.net.proxy_dial import (
    ProxyConfig,
    dial_peer,
    open_tunnel,
    proxy_config,
    tracker_http_session,
)
from ccbt_engine.tracker import AnnounceStats
from ccbt_engine.tracker.http import fetch_bounded
from ccbt_engine.tracker.http_tls import tls_option
from ccbt_engine.tracker.protocol import TrackerError
from ccbt_engine.tracker_link import TrackerLink
from tests.engine_settings import loopback_settings
from tests.proxy_fakes import FakeHttpProxy, FakeSocks5

USER, PASSWORD = "alice", "wonder land"


def proxied(kind: str, port: int, user: str = USER, **network: Any) -> Settings:
    return loopback_settings(
        network={
            "proxy_type": kind,
            "proxy_host": "127.0.0.1",
            "proxy_port": port,
            "proxy_username": user,
            **network,
        }
    )


# -- handshakes (sans-I/O) -------------------------------------------------------------------
def test_socks5_with_auth_speaks_rfc1928_and_rfc1929() -> None:
    hs = Socks5Handshake("127.0.0.1", 6881, "u", "pw")
    assert hs.initial() == b"\x05\x02\x00\x02"
    assert hs.receive_data(b"\x05\x02") == b"\x01\x01u\x02pw"
    assert hs.receive_data(b"\x01\x00") == b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1a\xe1"
    assert not hs.done
    assert hs.receive_data(b"\x05\x00\x00\x01" + bytes(4)) == b""  # split reply
    assert hs.receive_data(b"\x00\x00") == b""
    assert hs.done


def test_socks5_names_go_to_the_proxy_unresolved() -> None:
    hs = Socks5Handshake("peer.example", 80)
    assert hs.initial() == b"\x05\x01\x00"
    assert hs.receive_data(b"\x05\x00") == b"\x05\x01\x00\x03\x0cpeer.example\x00\x50"


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ([b"\x05\x02", b"\x01\x01"], "rejected the user name or password"),
        ([b"\x05\xff"], "accepts none of our authentication methods"),
        ([b"\x05\x02", b"\x01\x00", b"\x05\x05\x00\x01" + bytes(6)], "connection refused"),
        ([b"HTTP/1.1 400"], "not a SOCKS5 proxy"),
    ],
)
def test_socks5_failures_say_what_happened(replies: list[bytes], message: str) -> None:
    hs = Socks5Handshake("127.0.0.1", 1, "u", "p")
    hs.initial()
    with pytest.raises(ProxyError, match=message):
        for reply in replies:
            hs.receive_data(reply)


def test_socks5_without_user_tells_how_to_fix_a_demand_for_auth() -> None:
    hs = Socks5Handshake("127.0.0.1", 1)
    with pytest.raises(ProxyError, match=r"set network\.proxy_username"):
        hs.receive_data(b"\x05\xff")


def test_http_connect_request_and_replies() -> None:
    hs = HttpConnectHandshake("::1", 6881, "u", "p")
    text = hs.initial().decode()
    assert text.startswith("CONNECT [::1]:6881 HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'u:p').decode()}\r\n" in text
    assert hs.receive_data(b"HTTP/1.1 200 Connection established\r\n") == b""
    assert hs.receive_data(b"\r\n") == b"" and hs.done
    bad = HttpConnectHandshake("127.0.0.1", 1, "u", "p")
    with pytest.raises(ProxyError, match=r"rejected the user name or password \(407"):
        bad.receive_data(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    with pytest.raises(ProxyError, match="refused the tunnel: 403"):
        HttpConnectHandshake("127.0.0.1", 1).receive_data(b"HTTP/1.0 403 Forbidden\r\n\r\n")
    with pytest.raises(ProxyError, match="cannot be sent"):
        HttpConnectHandshake("a b", 1)


@given(st.sampled_from(["socks5", "http"]), st.binary(max_size=64), st.booleans())
def test_handshakes_raise_only_proxy_error(kind: str, data: bytes, auth: bool) -> None:
    hs = make_handshake(kind, "127.0.0.1", 6881, "u" if auth else "", "p")
    hs.initial()
    try:
        rng = random.Random(len(data))
        while data:  # in arbitrary pieces: the handshake must not care how bytes arrive
            cut = rng.randint(1, len(data))
            hs.receive_data(data[:cut])
            data = data[cut:]
    except ProxyError:
        pass


def test_oversized_http_reply_is_refused() -> None:
    with pytest.raises(ProxyError, match="exceed"):
        HttpConnectHandshake("127.0.0.1", 1).receive_data(b"HTTP/1.1 200 OK\r\n" + b"X" * 20000)


# -- configuration -------------------------------------------------------------------------
def test_proxy_config_from_settings() -> None:
    assert proxy_config(loopback_settings().network) is None
    assert proxy_config(loopback_settings(network={"proxy_type": "socks5"}).network) is None
    cfg = proxy_config(proxied("socks5", 1080).network, "secret")
    assert cfg == ProxyConfig("socks5", "127.0.0.1", 1080, USER, "secret")
    assert "secret" not in repr(cfg)


def test_udp_block_needs_a_proxy_and_force() -> None:
    assert udp_block_reason(loopback_settings(network={"proxy_force": True}).network) is None
    assert udp_block_reason(proxied("http", 1).network) is None
    reason = udp_block_reason(proxied("http", 1, proxy_force=True).network)
    assert reason is not None and "proxy_force" in reason
    assert "proxy carries only TCP" in (
        proxied("socks5", 1, enable_tcp=False, enable_utp=True).network.no_transport_reason() or ""
    )


# -- dialing through the fakes -------------------------------------------------------------
@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.mark.parametrize("cls", [FakeSocks5, FakeHttpProxy])
async def test_tunnel_reaches_the_target(cls: type[FakeSocks5], echo: int) -> None:
    async with cls(username=USER, password=PASSWORD) as proxy:
        cfg = ProxyConfig("socks5" if cls is FakeSocks5 else "http", "127.0.0.1", proxy.port)
        cfg = ProxyConfig(cfg.kind, cfg.host, cfg.port, USER, PASSWORD)
        sock = await open_tunnel(cfg, "127.0.0.1", echo, timeout=5)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(sock, b"ping")
            assert await loop.sock_recv(sock, 16) == b"ping"
        finally:
            sock.close()
        assert [(r.port, r.kind) for r in proxy.relays] == [(echo, "connect")]


@pytest.mark.parametrize("cls", [FakeSocks5, FakeHttpProxy])
async def test_wrong_password_is_a_clear_proxy_error(cls: type[FakeSocks5], echo: int) -> None:
    async with cls(username=USER, password=PASSWORD) as proxy:
        kind = "socks5" if cls is FakeSocks5 else "http"
        cfg = ProxyConfig(kind, "127.0.0.1", proxy.port, USER, "nope")
        with pytest.raises(ProxyError, match="rejected the user name or password"):
            await open_tunnel(cfg, "127.0.0.1", echo, timeout=5)
        assert proxy.auth_failures == 1 and not proxy.relays


async def test_unreachable_proxy_names_the_proxy() -> None:
    async with FakeSocks5() as gone:
        port = gone.port
    with pytest.raises(OSError, match=f"cannot reach the socks5 proxy 127.0.0.1:{port}"):
        await open_tunnel(ProxyConfig("socks5", "127.0.0.1", port), "127.0.0.1", 1, 5)


class _Core:
    """What dial_peer reads from a session."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.utp = None


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.address: tuple[str, int] = ("", 0)
        self.got: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.address = transport.get_extra_info("peername")[:2]

    def data_received(self, data: bytes) -> None:
        self.got.put_nowait(data)


async def test_dial_peer_reports_the_peer_not_the_proxy(
    echo: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCBT_NETWORK_PROXY_PASSWORD", PASSWORD)
    async with FakeSocks5(username=USER, password=PASSWORD) as proxy:
        core = _Core(proxied("socks5", proxy.port))
        transport, proto = await dial_peer(core, _Proto, "127.0.0.1", echo, 5)  # type: ignore[arg-type]
        try:
            assert proto.address == ("127.0.0.1", echo)  # not the proxy's port
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"hello")
            assert await asyncio.wait_for(proto.got.get(), 5) == b"hello"
        finally:
            transport.close()
        assert proxy.to(echo)


async def test_dial_peer_without_tcp_refuses_under_a_proxy(echo: int) -> None:
    core = _Core(proxied("socks5", 1, enable_tcp=False))
    with pytest.raises(ConnectionError, match="enable_tcp is false"):
        await dial_peer(core, _Proto, "127.0.0.1", echo, 5)  # type: ignore[arg-type]


# -- trackers through the fakes ------------------------------------------------------------
@pytest.fixture
async def http_tracker() -> AsyncIterator[str]:
    async def announce(request: web.Request) -> web.Response:
        return web.Response(body=b"d8:intervali60e5:peers0:e")

    app = web.Application()
    app.router.add_get("/announce", announce)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield f"http://127.0.0.1:{port}/announce"
    await runner.cleanup()


@pytest.mark.parametrize("cls", [FakeSocks5, FakeHttpProxy])
async def test_tracker_requests_go_through_the_proxy(
    cls: type[FakeSocks5], http_tracker: str
) -> None:
    port = int(http_tracker.split(":")[2].split("/")[0])
    async with cls(username=USER, password=PASSWORD) as proxy:
        kind = "socks5" if cls is FakeSocks5 else "http"
        async with tracker_http_session(proxied(kind, proxy.port), PASSWORD) as http:
            body = await fetch_bounded(http, http_tracker + "?info_hash=x", timeout=5)
        assert body.startswith(b"d8:interval")
        assert proxy.to(port)
        async with tracker_http_session(proxied(kind, proxy.port), "wrong") as http:
            with pytest.raises(TrackerError) as info:
                await fetch_bounded(http, http_tracker, timeout=5)
        expected = "authentication failure" if kind == "socks5" else "407"
        assert expected in str(info.value).lower()
        assert len(proxy.to(port)) == 1


def test_udp_trackers_are_listed_as_off_under_force() -> None:
    link = TrackerLink(
        info_hash=b"\x01" * 20,
        peer_id=b"-CC0001-abcdefghijkl",
        tiers=[["udp://127.0.0.1:9/announce"]],
        private=False,
        stats=lambda: AnnounceStats(0, 0, 1),
        on_peers=lambda peers, source: None,
        listen_port=lambda: 6881,
        http=lambda: None,
        udp_blocked=lambda: udp_block_reason(proxied("socks5", 1, proxy_force=True).network),
    )

    async def run() -> list[Any]:
        await link.start()
        try:
            return link.status()
        finally:
            await link.stop()

    [status] = asyncio.run(run())
    assert status.status == "error"
    assert "UDP tracker off: network.proxy_force" in status.message


# -- the session --------------------------------------------------------------------------
async def test_forced_proxy_keeps_udp_services_off(tmp_path: Path) -> None:
    settings = proxied(
        "socks5",
        1,
        proxy_force=True,
        enable_utp=True,
        enable_dht=True,
        dht_bootstrap_nodes=[],
    )
    settings = settings.model_copy(
        update={"disk": settings.disk.model_copy(update={"state_dir": tmp_path})}
    )
    async with Session(settings, listen_port=0) as session:
        core = session._core
        assert core.dht is None and core.utp is None and core.lsd is None
        assert session.port_mapping() == []
        # forcing off again brings uTP back; on again closes it
        relaxed = settings.model_copy(
            update={
                "network": settings.network.model_copy(
                    update={"proxy_force": False, "enable_dht": False}
                )
            }
        )
        await session.apply_settings(relaxed)
        assert core.utp is not None
        await session.apply_settings(
            settings.model_copy(
                update={"network": settings.network.model_copy(update={"enable_dht": False})}
            )
        )
        assert core.utp is None and core.dht is None


async def test_live_proxy_change_reannounces_through_the_new_proxy(
    http_tracker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCBT_NETWORK_PROXY_PASSWORD", PASSWORD)
    (tmp_path / "f.bin").write_bytes(b"x" * 16384)

    port = int(http_tracker.split(":")[2].split("/")[0])
    async with (
        FakeSocks5(username=USER, password=PASSWORD) as proxy,
        Session(loopback_settings(security={"verify_tls": False}), listen_port=0) as session,
    ):
        torrent = await create_torrent_async(tmp_path / "f.bin", trackers=[[http_tracker]])
        path = tmp_path / "f.torrent"
        path.write_bytes(torrent)
        handle = await session.add_torrent(path, tmp_path)
        await _until(lambda: any(t.status == "working" for t in handle.trackers()))
        assert not proxy.relays  # no proxy yet: direct
        old_http = session._core.http
        new = proxied("socks5", proxy.port)
        await session.apply_settings(new.model_copy(update={"security": session.settings.security}))
        new_http = session._core.http
        assert new_http is not old_http and old_http is not None and new_http is not None
        assert old_http.closed
        assert tls_option(new_http) is False  # security.verify_tls kept on the new session
        await _until(lambda: bool(proxy.to(port)))  # announced again, through the proxy
        await _until(lambda: any(t.status == "working" for t in handle.trackers()))


async def _until(pred: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def test_tracker_session_without_proxy_is_plain() -> None:
    async def run() -> None:
        http = tracker_http_session(loopback_settings())
        try:
            assert isinstance(http, aiohttp.ClientSession)
            assert http._default_proxy is None
        finally:
            await http.close()

    asyncio.run(run())
    assert {"network.proxy_type", "network.proxy_force"} <= proxy_dial.PROXY_KEYS
