"""Multitracker announcer (BEP 12) against scripted HTTP and UDP trackers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from ccbt_engine.bencode import encode
from ccbt_engine.tracker.announcer import Announcer, AnnounceStats, TrackerStatus
from ccbt_engine.tracker.protocol import ScrapeResult

from .test_tracker_udp import start_fake

IH = bytes(range(0xEC, 0x100))
PID = b"-CC0001-" + bytes(range(12))


class FakeHttpTracker:
    """One tracker: records every announce and answers according to ``mode``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "ok"
        self.delay = 0.0
        self.interval = 1800
        self.min_interval: int | None = None
        self.peer_port = 6000
        self.announces: list[dict[str, bytes]] = []
        self.times: list[float] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.name}/announce"

    @property
    def events(self) -> list[str]:
        return [a.get("event", b"").decode() for a in self.announces]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(f"/{self.name}/announce", self.announce)
        app.router.add_get(f"/{self.name}/scrape", self.scrape)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def announce(self, request: web.Request) -> web.StreamResponse:
        q = {}
        for part in request.query_string.split("&"):
            k, _, v = part.partition("=")
            q[k] = urllib.parse.unquote_to_bytes(v)
        self.announces.append(q)
        self.times.append(time.monotonic())
        await asyncio.sleep(self.delay)
        if self.mode == "hang":
            await asyncio.sleep(10)
        if self.mode == "garbage":
            return web.Response(text="<html>oops</html>")
        if self.mode == "failure":
            return web.Response(body=encode({"failure reason": f"{self.name} refuses"}))
        if self.mode == "huge":
            resp = web.StreamResponse()
            await resp.prepare(request)
            chunk = b"x" * 65536
            try:
                for _ in range(100 * 16):  # 100 MB
                    await resp.write(chunk)
            except (ConnectionError, RuntimeError):
                pass
            return resp
        reply: dict[str, Any] = {
            "interval": self.interval,
            "peers": bytes([127, 0, 0, 1]) + self.peer_port.to_bytes(2, "big"),
            "complete": 2,
            "incomplete": 3,
            "tracker id": f"id-{self.name}",
        }
        if self.min_interval is not None:
            reply["min interval"] = self.min_interval
        if self.mode == "warning":
            reply["warning message"] = "slow down"
        return web.Response(body=encode(reply))

    async def scrape(self, request: web.Request) -> web.StreamResponse:
        files = {IH: {"complete": 7, "downloaded": 8, "incomplete": 9}}
        return web.Response(body=encode({"files": files}))


@pytest.fixture
async def trackers() -> AsyncIterator[Callable[[str], Any]]:
    made: list[FakeHttpTracker] = []

    async def make(name: str) -> FakeHttpTracker:
        t = FakeHttpTracker(name)
        await t.start()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.stop()


class Harness:
    def __init__(self, tiers: list[list[str]], **kw: Any) -> None:
        self.peers: list[tuple[list[tuple[str, int]], str]] = []
        self.stats = AnnounceStats(uploaded=10, downloaded=20, left=30)
        kw.setdefault("http_timeout", 2.0)
        kw.setdefault("min_announce_interval", 0.05)
        kw.setdefault("retry_base", 0.05)
        kw.setdefault("rng", random.Random(1))
        self.announcer = Announcer(
            info_hash=IH,
            peer_id=PID,
            port=6881,
            tiers=tiers,
            stats=lambda: self.stats,
            on_peers=lambda peers, url: self.peers.append((peers, url)),
            udp_base_timeout=0.05,
            udp_max_retries=1,
            **kw,
        )

    def by_url(self) -> dict[str, TrackerStatus]:
        return {s.url: s for s in self.announcer.status()}


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_started_then_completed_then_stopped(trackers: Any) -> None:
    a = await trackers("a")
    h = Harness([[a.url]])
    assert h.by_url()[a.url].status == "not contacted"
    await h.announcer.start()
    await until(lambda: h.by_url()[a.url].status == "working")
    q = a.announces[0]
    assert q["event"] == b"started" and q["info_hash"] == IH and q["peer_id"] == PID
    assert (q["uploaded"], q["downloaded"], q["left"], q["port"]) == (b"10", b"20", b"30", b"6881")
    assert h.peers == [([("127.0.0.1", 6000)], a.url)]
    st = h.by_url()[a.url]
    assert (st.seeds, st.peers, st.tier, st.message) == (2, 3, 0, "")
    assert st.last_announce is not None and st.next_announce is not None
    assert st.next_announce - st.last_announce == pytest.approx(1800, abs=5)

    h.stats = AnnounceStats(uploaded=10, downloaded=50, left=0)
    await h.announcer.completed()
    await until(lambda: len(a.announces) == 2)
    assert a.events[1] == "completed" and a.announces[1]["left"] == b"0"
    assert a.announces[1]["trackerid"] == b"id-a"  # tracker id echoed

    await h.announcer.stop()
    assert a.events == ["started", "completed", "stopped"]
    assert a.announces[2]["numwant"] == b"0"


async def test_failover_within_tier_then_promotion(trackers: Any) -> None:
    bad, good = await trackers("bad"), await trackers("good")
    bad.mode = "failure"
    # Pick a shuffle that puts the failing tracker first, so failover is exercised.
    for seed in range(50):
        h = Harness([[bad.url, good.url]], rng=random.Random(seed))
        if h.announcer.status()[0].url == bad.url:
            break
    assert h.announcer.status()[0].url == bad.url
    await h.announcer.start()
    await until(lambda: h.by_url()[good.url].status == "working")
    st = h.by_url()
    assert st[bad.url].status == "error" and st[bad.url].message == "bad refuses"
    # The working tracker moved to the front of its tier.
    assert [s.url for s in h.announcer.status()] == [good.url, bad.url]
    h.announcer.force_reannounce()
    await until(lambda: len(good.announces) == 2)
    assert len(bad.announces) == 1  # the promoted tracker is tried first now
    await h.announcer.stop()
    # Only the tracker that heard "started" hears "stopped".
    assert good.events == ["started", "", "stopped"]
    assert bad.events == ["started"]


@pytest.mark.parametrize("mode", ["garbage", "huge", "hang", "failure"])
async def test_hostile_tier_is_recorded_and_next_tier_used(trackers: Any, mode: str) -> None:
    hostile, fallback = await trackers("hostile"), await trackers("fallback")
    hostile.mode = mode
    h = Harness([[hostile.url], [fallback.url]], http_timeout=0.5)
    started = time.monotonic()
    await h.announcer.start()
    await until(lambda: h.by_url()[fallback.url].status == "working")
    assert time.monotonic() - started < 3.0
    st = h.by_url()
    assert st[hostile.url].status == "error" and st[hostile.url].message
    assert st[fallback.url].tier == 1
    assert h.peers == [([("127.0.0.1", 6000)], fallback.url)]
    await h.announcer.stop(timeout=1.0)
    assert hostile.events[-1] == "started"  # never got "stopped": it never accepted "started"


async def test_reannounce_on_interval_with_floor(trackers: Any) -> None:
    a = await trackers("a")
    a.interval = 0  # a broken tracker asking to be hammered
    h = Harness([[a.url]], min_announce_interval=0.2)
    await h.announcer.start()
    await until(lambda: len(a.announces) >= 3)
    await h.announcer.stop()
    assert a.events[:3] == ["started", "", ""]
    gaps = [b - x for x, b in zip(a.times, a.times[1:3], strict=False)]
    assert all(g >= 0.18 for g in gaps), gaps


async def test_force_reannounce_respects_min_interval(trackers: Any) -> None:
    a = await trackers("a")
    a.min_interval = 1
    h = Harness([[a.url]])
    await h.announcer.start()
    await until(lambda: len(a.announces) == 1)
    h.announcer.force_reannounce()
    await until(lambda: len(a.announces) == 2, timeout=3.0)
    assert a.times[1] - a.times[0] >= 0.9
    await h.announcer.stop()


async def test_all_fail_backs_off_and_retries(trackers: Any) -> None:
    a = await trackers("a")
    a.mode = "garbage"
    h = Harness([[a.url]], retry_base=0.05)
    await h.announcer.start()
    await until(lambda: len(a.announces) >= 3)
    a.mode = "ok"
    await until(lambda: h.by_url()[a.url].status == "working")
    await h.announcer.stop()
    assert a.events.count("started") >= 4  # every retry still says started
    gaps = [b - x for x, b in zip(a.times, a.times[1:], strict=False)]
    assert gaps[1] > gaps[0]  # exponential back-off


async def test_warning_message_is_shown_while_working(trackers: Any) -> None:
    a = await trackers("a")
    a.mode = "warning"
    h = Harness([[a.url]])
    await h.announcer.start()
    await until(lambda: h.by_url()[a.url].status == "working")
    assert h.by_url()[a.url].message == "slow down"
    await h.announcer.stop()


async def test_stop_is_bounded_when_trackers_hang(trackers: Any) -> None:
    a = await trackers("a")
    h = Harness([[a.url]])
    await h.announcer.start()
    await until(lambda: h.by_url()[a.url].status == "working")
    a.mode = "hang"
    start = time.monotonic()
    await h.announcer.stop(timeout=0.3)
    assert time.monotonic() - start < 1.0
    assert a.events == ["started", "stopped"]


async def test_scrape_updates_status(trackers: Any) -> None:
    a = await trackers("a")
    h = Harness([[a.url, "http://127.0.0.1:1/no-scrape-here"]])
    assert await h.announcer.scrape() == {a.url: ScrapeResult(7, 8, 9)}
    st = h.by_url()[a.url]
    assert (st.seeds, st.downloaded, st.peers) == (7, 8, 9)
    await h.announcer.stop()


async def test_status_is_frozen_unsupported_and_duplicate_urls(trackers: Any) -> None:
    a = await trackers("a")
    h = Harness([[a.url, "wss://tracker.example/ws", a.url], [a.url], []], private=True)
    assert h.announcer.private
    st = h.announcer.status()
    assert len(st) == 2  # duplicates dropped, empty tier dropped
    ws = next(s for s in st if s.url.startswith("wss"))
    assert ws.status == "error" and "unsupported" in ws.message
    with pytest.raises(dataclasses.FrozenInstanceError):
        st[0].status = "working"  # type: ignore[misc]
    await h.announcer.start()
    await until(lambda: h.by_url()[a.url].status == "working")
    await h.announcer.stop()


async def test_shuffle_within_tier_happens_once() -> None:
    urls = [f"http://127.0.0.1:1/t{i}/announce" for i in range(8)]
    orders = {
        tuple(s.url for s in Harness([urls], rng=random.Random(seed)).announcer.status())
        for seed in range(5)
    }
    assert len(orders) > 1  # shuffled
    h = Harness([urls, ["http://127.0.0.1:1/last/announce"]])
    first = [s.url for s in h.announcer.status()]
    assert sorted(first[:8]) == sorted(urls) and first[8].endswith("/last/announce")
    assert [s.url for s in h.announcer.status()] == first  # stable between calls


async def test_udp_tracker_in_a_tier() -> None:
    proto, url = await start_fake()
    h = Harness([[url]])
    try:
        await h.announcer.start()
        await until(lambda: h.by_url()[url].status == "working")
        assert h.peers == [([("127.0.0.1", 6881)], url)]
        assert (h.by_url()[url].seeds, h.by_url()[url].peers) == (4, 3)
        await h.announcer.stop()
        events = [int.from_bytes(p[80:84], "big") for p in proto.received if len(p) == 98]
        assert events == [2, 3]  # started, stopped
    finally:
        assert proto.transport is not None
        proto.transport.close()


async def test_completed_called_during_an_announce_is_not_lost(trackers: Any) -> None:
    a = await trackers("a")
    a.delay = 0.3
    h = Harness([[a.url]])
    await h.announcer.start()
    await until(lambda: len(a.announces) == 1)  # "started" is in flight
    await h.announcer.completed()
    await until(lambda: len(a.announces) == 2)
    assert a.events == ["started", "completed"]
    await h.announcer.stop()


async def test_a_failing_stats_callback_is_an_error_not_a_dead_announcer(trackers: Any) -> None:
    a = await trackers("a")
    calls = [0]

    def flaky() -> AnnounceStats:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("stats broke")
        return AnnounceStats(0, 0, 1)

    h = Harness([[a.url]])
    h.announcer._stats = flaky
    await h.announcer.start()
    await until(lambda: "internal error" in h.by_url()[a.url].message)
    await until(lambda: h.by_url()[a.url].status == "working")
    assert a.events == ["started"]
    await h.announcer.stop()
