"""Download limits against a libtorrent seeder: per torrent, per peer, and the alt-speed schedule.

``test_engine_limits.py`` covers ccbt's *upload* limits (global and per torrent) as a seeder;
here ccbt downloads and the rate is measured, not just bounded: bytes received over a few
seconds once the one-second burst is spent must be within 15 % of the limit, so a limiter that
is too lax and one that starves the transfer both fail.
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
TOLERANCE = 0.15


async def record(sample: Callable[[], list[int]], seconds: float) -> list[tuple[float, list[int]]]:
    """``sample()`` every 50 ms for ``seconds``: (time, values)."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append((time.monotonic(), sample()))
        await asyncio.sleep(0.05)
    return out


def steady_rate(series: list[tuple[float, int]]) -> float:
    """Bytes per second between the first and the last arrival in ``series``.

    A throttled connection receives in bursts (reading pauses while the bucket is in debt, then
    what the peer sent meanwhile arrives at once, every second or two), so bytes counted over an
    arbitrary window are off by up to one burst. Measured from one burst to another, the
    count is exact: what arrived after the first burst, over the time it took.
    """
    jumps = [i for i in range(1, len(series)) if series[i][1] != series[i - 1][1]]
    assert len(jumps) >= 3, f"too few arrivals to measure a rate: {series}"
    first, last = series[jumps[0]], series[jumps[-1]]
    return (last[1] - first[1]) / (last[0] - first[0])


async def measure(sample: Callable[[], int], seconds: float, warmup: float = 1.5) -> float:
    """The steady rate of ``sample()`` over ``seconds``, after ``warmup`` (the burst)."""
    await asyncio.sleep(warmup)
    series = await record(lambda: [sample()], seconds)
    return steady_rate([(t, v[0]) for t, v in series])


def assert_near(rate: float, limit: float, what: str) -> None:
    assert abs(rate - limit) <= TOLERANCE * limit, (
        f"{what}: {rate / KIB:.0f} KiB/s, limit {limit / KIB:.0f} KiB/s"
    )


async def started(handle: TorrentHandle) -> None:
    """Wait until the first bytes arrived (connections made, requests flowing)."""
    for _ in range(200):
        if handle.status().downloaded > 0:
            return
        await asyncio.sleep(0.05)
    pytest.fail("no data arrived from the libtorrent seeder")


async def test_per_torrent_download_limit(payload_16m: Path, tmp_path: Path) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    limit = 512 * KIB
    async with Session(loopback_settings(), listen_port=0) as ccbt:
        with LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as seeder:
            handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
            handle.set_limits(download=limit)
            handle.connect_peer("127.0.0.1", seeder.port)
            await started(handle)
            rate = await measure(lambda: handle.status().downloaded, 6.0)
    assert_near(rate, limit, "per-torrent limit")


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
            await asyncio.sleep(1.5)  # both peers' bursts are spent
            addresses = sorted(p.address for p in handle.peers())
            assert len(addresses) == 2

            def per_peer_and_total() -> list[int]:
                by_address = {p.address: p.downloaded for p in handle.peers()}
                return [by_address.get(a, 0) for a in addresses] + [handle.status().downloaded]

            series = await record(per_peer_and_total, 8.0)
    rates = [steady_rate([(t, v[i]) for t, v in series]) for i in range(3)]
    assert_near(rates[0], per_peer, f"peer {addresses[0]}")
    assert_near(rates[1], per_peer, f"peer {addresses[1]}")
    assert_near(rates[2], 2 * per_peer, "two peers together")


def _on_weekday(weekday: int, hour: int) -> datetime:
    """A datetime on the next date with ``weekday`` (never today), at ``hour``:00."""
    day = date.today() + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour)


async def test_schedule_switches_the_live_rate(payload_16m: Path, tmp_path: Path) -> None:
    """Normal 1 MiB/s, alternative 256 KiB/s from 10:00 to 12:00: the transfer follows."""
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
            normal = await measure(lambda: handle.status().downloaded, 6.0)
            assert alt.tick(_on_weekday(weekday, 10)) is True
            assert ccbt.alt_speed and ccbt.global_limits()[0] == 256 * KIB
            slow = await measure(lambda: handle.status().downloaded, 8.0, warmup=0)
            assert alt.tick(_on_weekday(weekday, 12)) is False
            assert handle.status().state == "downloading"
    assert_near(normal, 1024 * KIB, "normal limit")
    assert_near(slow, 256 * KIB, "alternative limit")
