"""HTTP tracker client against well-behaved and hostile aiohttp trackers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from ccbt_engine.bencode import encode
from ccbt_engine.tracker.http import MAX_REDIRECTS, HttpTracker, fetch_bounded
from ccbt_engine.tracker.protocol import (
    MAX_REPLY_SIZE,
    AnnounceRequest,
    Event,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
)

IH = bytes(range(0xEC, 0x100))
PID = b"-CC0001-" + bytes(range(12))
REQ = AnnounceRequest(IH, PID, 6881, 0, 0, 100, Event.STARTED, key=1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp app on 127.0.0.1 whose routes each test defines."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.hits: dict[str, int] = {}
        self.last_query: dict[str, bytes] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    def route(self, path: str, handler: Handler) -> None:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.hits[path] = self.hits.get(path, 0) + 1
            return await handler(request)

        self.app.router.add_get(path, counted)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    yield s
    await s.stop()


def raw_query(request: web.Request) -> dict[str, bytes]:
    import urllib.parse

    out = {}
    for part in request.query_string.split("&"):
        k, _, v = part.partition("=")
        out[k] = urllib.parse.unquote_to_bytes(v)
    return out


def reply(value: object, **kw: object) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=encode(value), **kw)  # type: ignore[arg-type]

    return handler


async def test_announce_and_scrape_round_trip(server: Server) -> None:
    seen: dict[str, bytes] = {}

    async def announce(request: web.Request) -> web.StreamResponse:
        seen.update(raw_query(request))
        peers = bytes([127, 0, 0, 1, 0x1A, 0xE1])
        return web.Response(body=encode({"interval": 900, "peers": peers, "tracker id": b"T"}))

    server.route("/x/announce", announce)
    server.route("/x/scrape", reply({"files": {IH: {"complete": 1, "incomplete": 2}}}))
    await server.start()
    t = HttpTracker(server.url("/x/announce"))
    try:
        r = await t.announce(REQ)
        assert r.interval == 900 and r.peers == [("127.0.0.1", 6881)] and r.tracker_id == b"T"
        assert seen["info_hash"] == IH and seen["peer_id"] == PID  # binary survived yarl
        assert seen["event"] == b"started" and seen["compact"] == b"1"
        assert t.can_scrape
        assert await t.scrape([IH]) == {IH: ScrapeResult(1, 0, 2)}
    finally:
        await t.close()


async def test_failure_reason_surfaces_as_tracker_failure(server: Server) -> None:
    server.route("/announce", reply({"failure reason": "unregistered torrent"}))
    await server.start()
    t = HttpTracker(server.url("/announce"))
    with pytest.raises(TrackerFailure, match="unregistered torrent"):
        await t.announce(REQ)
    await t.close()


async def test_garbage_reply_is_a_clear_tracker_error(server: Server) -> None:
    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html><body>Welcome to nginx!</body></html>")

    server.route("/announce", html)
    await server.start()
    t = HttpTracker(server.url("/announce"))
    with pytest.raises(TrackerError, match=r"not bencoded.*nginx"):
        await t.announce(REQ)
    await t.close()


async def test_http_error_status(server: Server) -> None:
    async def fail(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="busy")

    server.route("/announce", fail)
    await server.start()
    t = HttpTracker(server.url("/announce"))
    with pytest.raises(TrackerError, match="HTTP 503"):
        await t.announce(REQ)
    await t.close()


async def test_timeout(server: Server) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    server.route("/announce", hang)
    await server.start()
    t = HttpTracker(server.url("/announce"), timeout=0.3)
    start = time.monotonic()
    with pytest.raises(TrackerError, match="timed out"):
        await t.announce(REQ)
    assert time.monotonic() - start < 2.0
    await t.close()


async def test_redirect_loop_is_bounded(server: Server) -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/announce?" + request.query_string)

    server.route("/announce", loop)
    await server.start()
    t = HttpTracker(server.url("/announce"))
    with pytest.raises(TrackerError, match="redirects"):
        await t.announce(REQ)
    assert server.hits["/announce"] == MAX_REDIRECTS + 1
    await t.close()


async def test_a_few_redirects_are_followed(server: Server) -> None:
    async def hop(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        if n < MAX_REDIRECTS:
            raise web.HTTPFound(f"/r{n + 1}/announce?" + request.query_string)
        assert raw_query(request)["info_hash"] == IH
        return web.Response(body=encode({"interval": 5, "peers": b""}))

    server.route("/r{n}/announce", hop)
    await server.start()
    t = HttpTracker(server.url("/r0/announce"))
    assert (await t.announce(REQ)).interval == 5
    await t.close()


def _huge(total: int, *, declare_length: bool) -> Handler:
    chunk = b"d5:peers" + b"x" * (64 * 1024 - 8)

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if declare_length:
            resp.content_length = total
        await resp.prepare(request)
        sent = 0
        try:
            while sent < total:
                await resp.write(chunk)
                sent += len(chunk)
        except (ConnectionResetError, ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return resp

    return handler


@pytest.mark.parametrize("declare_length", [False, True])
async def test_100mb_body_is_abandoned_quickly_with_bounded_memory(
    server: Server, declare_length: bool
) -> None:
    server.route("/announce", _huge(100 * 1024 * 1024, declare_length=declare_length))
    await server.start()
    t = HttpTracker(server.url("/announce"))
    tracemalloc.start()
    try:
        start = time.monotonic()
        with pytest.raises(TrackerError, match="exceeds"):
            await t.announce(REQ)
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await t.close()
    assert elapsed < 3.0
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


async def test_gzip_reply_is_inflated(server: Server) -> None:
    body = gzip.compress(encode({"interval": 77, "peers": b""}))

    async def gz(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    server.route("/announce", gz)
    await server.start()
    t = HttpTracker(server.url("/announce"))
    assert (await t.announce(REQ)).interval == 77
    await t.close()


async def test_gzip_bomb_is_refused_with_bounded_memory(server: Server) -> None:
    bomb = gzip.compress(b"d5:peers" + b"0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < MAX_REPLY_SIZE

    async def gz(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    server.route("/announce", gz)
    await server.start()
    t = HttpTracker(server.url("/announce"))
    tracemalloc.start()
    try:
        with pytest.raises(TrackerError, match="decompressed"):
            await t.announce(REQ)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await t.close()
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


async def test_connection_refused_and_bad_url() -> None:
    t = HttpTracker("http://127.0.0.1:1/announce", timeout=2.0)
    with pytest.raises(TrackerError):
        await t.announce(REQ)
    await t.close()
    t = HttpTracker("http://127.0.0.1:99999/announce", timeout=2.0)
    with pytest.raises(TrackerError):
        await t.announce(REQ)
    await t.close()


async def test_scrape_unsupported_url() -> None:
    t = HttpTracker("http://127.0.0.1:1/tracker")
    assert not t.can_scrape
    with pytest.raises(TrackerError, match="scrape"):
        await t.scrape([IH])
    await t.close()


async def test_borrowed_session_is_not_closed(server: Server) -> None:
    server.route("/announce", reply({"interval": 1, "peers": b""}))
    await server.start()
    async with aiohttp.ClientSession() as session:
        t = HttpTracker(server.url("/announce"), session=session)
        await t.announce(REQ)
        await t.close()
        assert not session.closed
        body = await fetch_bounded(session, server.url("/announce"), limit=100)
        assert body.startswith(b"d8:interval")
