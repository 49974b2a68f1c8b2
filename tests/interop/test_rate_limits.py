"""Rate limits against libtorrent: global, per torrent and per peer, down and up, and the
alternative speed limits with their schedule.

The rate is *measured*, not just bounded, and so is its steadiness: after the one-second burst a
full bucket allows, bytes are counted in consecutive one-second windows. The mean over the run
must be within :data:`MEAN_TOLERANCE` of the limit (a limiter that is too lax and one that starves
the transfer both fail), and every window within :data:`WINDOW_TOLERANCE` (a limiter that lets the
whole request pipeline arrive at once and then pauses reading for seconds fails: its windows swing
between 0 and several times the limit). The window bound is wide enough for a loaded 2-core
machine, where the event loop can be late by a few hundred milliseconds.

ccbt counts its own bytes here (``downloaded``/``uploaded`` as blocks arrive or are written to the
socket); the peers are separate libtorrent processes with no limits of their own, so whatever
pacing there is, is ccbt's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from ccbt_engine.api import Session, TorrentHandle
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import LibtorrentPeer, make_torrent

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

KIB = 1024
PIECE = 256 * KIB
MEAN_TOLERANCE = 0.10
WINDOW_TOLERANCE = 0.25
#: seconds after the first bytes before measuring: the bucket's one-second burst is spent
WARMUP = 1.5

Series = list[tuple[float, list[int]]]


async def record(sample: Callable[[], list[int]], seconds: float) -> Series:
    """``sample()`` every 50 ms for ``seconds``: (time, values)."""
    out: Series = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append((time.monotonic(), sample()))
        await asyncio.sleep(0.05)
    out.append((time.monotonic(), sample()))
    return out


def column(series: Series, i: int) -> list[tuple[float, int]]:
    return [(t, values[i]) for t, values in series]


def window_rates(series: list[tuple[float, int]], width: float = 1.0) -> list[float]:
    """Bytes per second in consecutive windows of at least ``width`` seconds."""
    rates = []
    start_t, start_v = series[0]
    for t, v in series[1:]:
        if t - start_t >= width:
            rates.append((v - start_v) / (t - start_t))
            start_t, start_v = t, v
    return rates


def assert_steady(series: list[tuple[float, int]], limit: float, what: str) -> None:
    """Mean within :data:`MEAN_TOLERANCE`; each 1 s window within :data:`WINDOW_TOLERANCE`."""
    (t0, v0), (t1, v1) = series[0], series[-1]
    mean = (v1 - v0) / (t1 - t0)
    windows = window_rates(series)
    shown = ", ".join(f"{w / KIB:.0f}" for w in windows)
    report = (
        f"{what}: mean {mean / KIB:.0f} KiB/s, 1 s windows [{shown}] KiB/s, "
        f"limit {limit / KIB:.0f} KiB/s"
    )
    print(report)
    assert len(windows) >= 4, report
    assert abs(mean - limit) <= MEAN_TOLERANCE * limit, report
    assert all(abs(w - limit) <= WINDOW_TOLERANCE * limit for w in windows), report


async def started(handle: TorrentHandle, upload: bool = False) -> None:
    """Wait until the first bytes moved (connections made, requests flowing)."""
    for _ in range(300):
        status = handle.status()
        if (status.uploaded if upload else status.downloaded) > 0:
            return
        await asyncio.sleep(0.05)
    pytest.fail("no data moved between ccbt and libtorrent")


@pytest.mark.parametrize("scope", ["session", "torrent"])
async def test_shared_download_limit(payload_16m: Path, tmp_path: Path, scope: str) -> None:
    """Two seeders under a global or per-torrent limit: the sum holds it, neither is starved."""
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    limit = 512 * KIB
    async with Session(loopback_settings(), listen_port=0) as ccbt:
        with (
            LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as one,
            LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as two,
        ):
            handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
            if scope == "session":
                ccbt.set_limits(download=limit)
            else:
                handle.set_limits(download=limit)
            handle.connect_peer("127.0.0.1", one.port)
            handle.connect_peer("127.0.0.1", two.port)
            await started(handle)
            await asyncio.sleep(WARMUP)
            addresses = sorted(p.address for p in handle.peers())
            assert len(addresses) == 2

            def per_peer_and_total() -> list[int]:
                by_address = {p.address: p.downloaded for p in handle.peers()}
                return [by_address.get(a, 0) for a in addresses] + [handle.status().downloaded]

            series = await record(per_peer_and_total, 6.0)
    assert_steady(column(series, 2), limit, f"{scope} download limit, both seeders")
    for i in (0, 1):
        (t0, v0), (t1, v1) = column(series, i)[0], column(series, i)[-1]
        assert (v1 - v0) / (t1 - t0) >= limit / 8, f"seeder {addresses[i]} starved"


async def test_per_peer_download_limit(payload_16m: Path, tmp_path: Path) -> None:
    """Two seeders, a per-peer limit: each peer gets it, the torrent gets their sum."""
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    per_peer = 256 * KIB
    settings = loopback_settings(limits={"per_peer_down_kib": per_peer // KIB})
    async with Session(settings, listen_port=0) as ccbt:
        with (
            LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as one,
            LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as two,
        ):
            handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
            handle.connect_peer("127.0.0.1", one.port)
            handle.connect_peer("127.0.0.1", two.port)
            for _ in range(200):
                if len([p for p in handle.peers() if p.downloaded]) == 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(WARMUP)  # both peers' bursts are spent
            addresses = sorted(p.address for p in handle.peers())
            assert len(addresses) == 2

            def per_peer_and_total() -> list[int]:
                by_address = {p.address: p.downloaded for p in handle.peers()}
                return [by_address.get(a, 0) for a in addresses] + [handle.status().downloaded]

            series = await record(per_peer_and_total, 8.0)
    assert_steady(column(series, 0), per_peer, f"peer {addresses[0]}")
    assert_steady(column(series, 1), per_peer, f"peer {addresses[1]}")
    assert_steady(column(series, 2), 2 * per_peer, "two peers together")


@pytest.mark.parametrize("scope", ["session", "torrent", "peer"])
async def test_upload_limits(payload_16m: Path, tmp_path: Path, scope: str) -> None:
    """ccbt seeds to two libtorrent leechers under a global, per-torrent or per-peer limit."""
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    per_peer = 256 * KIB
    total = 2 * per_peer
    limits = {"per_peer_up_kib": per_peer // KIB} if scope == "peer" else {}
    async with Session(loopback_settings(limits=limits), listen_port=0) as ccbt:
        handle = await ccbt.add_torrent(made.path, made.save_path)
        assert handle.status().state == "seeding"
        if scope == "session":
            ccbt.set_limits(upload=total)
        elif scope == "torrent":
            handle.set_limits(upload=total)
        with (
            LibtorrentPeer(made.path, tmp_path / "lt1", seed=False, tcp_only=True) as one,
            LibtorrentPeer(made.path, tmp_path / "lt2", seed=False, tcp_only=True) as two,
        ):
            await one.connect_async("127.0.0.1", ccbt.listen_port)
            await two.connect_async("127.0.0.1", ccbt.listen_port)
            for _ in range(300):
                if len([p for p in handle.peers() if p.uploaded]) == 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(WARMUP)
            addresses = sorted(p.address for p in handle.peers())
            assert len(addresses) == 2

            def per_peer_and_total() -> list[int]:
                by_address = {p.address: p.uploaded for p in handle.peers()}
                return [by_address.get(a, 0) for a in addresses] + [handle.status().uploaded]

            series = await record(per_peer_and_total, 7.0)
    assert_steady(column(series, 2), total, f"{scope} upload limit, both leechers")
    if scope == "peer":
        assert_steady(column(series, 0), per_peer, f"leecher {addresses[0]}")
        assert_steady(column(series, 1), per_peer, f"leecher {addresses[1]}")
    else:  # a shared limit is shared: neither leecher is starved
        for i in (0, 1):
            (t0, v0), (t1, v1) = column(series, i)[0], column(series, i)[-1]
            assert (v1 - v0) / (t1 - t0) >= total / 8, f"leecher {addresses[i]} starved"


def _on_weekday(weekday: int, hour: int) -> datetime:
    """A datetime on the next date with ``weekday`` (never today), at ``hour``:00."""
    day = date.today() + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour)


async def test_schedule_switches_the_live_rate(payload_16m: Path, tmp_path: Path) -> None:
    """Global 1 MiB/s, alternative 256 KiB/s from 10:00 to 12:00: the transfer follows."""
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    weekday = (date.today().weekday() + 3) % 7  # the real clock is never inside the window
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    settings = loopback_settings(
        limits={
            "global_down_kib": 1024,
            "alt_down_kib": 256,
            "alt_schedule_enabled": True,
            "alt_schedule_from": "10:00",
            "alt_schedule_to": "12:00",
            "alt_days": [names[weekday]],
        }
    )
    async with Session(settings, listen_port=0) as ccbt:
        alt = ccbt._core.alt_speed
        await alt.close()  # this test is the clock: no tick from the real one in between
        with LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as seeder:
            handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
            assert alt.tick(_on_weekday(weekday, 9)) is False
            handle.connect_peer("127.0.0.1", seeder.port)
            await started(handle)
            await asyncio.sleep(WARMUP)
            normal = await record(lambda: [handle.status().downloaded], 5.0)
            assert alt.tick(_on_weekday(weekday, 10)) is True
            assert ccbt.alt_speed and ccbt.global_limits()[0] == 256 * KIB
            # what was requested at the old rate is in flight for a moment
            await asyncio.sleep(0.5)
            slow = await record(lambda: [handle.status().downloaded], 6.0)
            assert alt.tick(_on_weekday(weekday, 12)) is False
            assert ccbt.global_limits()[0] == 1024 * KIB
            assert handle.status().state == "downloading"
    assert_steady(column(normal, 0), 1024 * KIB, "normal global limit")
    assert_steady(column(slow, 0), 256 * KIB, "alternative limit")
