"""The Prometheus exporter: real session values on /metrics, served and stopped live, and a
scrape over loopback while one ccbt session downloads from another."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccbt_engine import __version__
from ccbt_engine import events as ev
from ccbt_engine.api import Session
from ccbt_engine.config import Settings
from ccbt_engine.config.model import ObservabilitySettings
from ccbt_engine.create import create_torrent
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)

KIB = 1024
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metrics_settings(port: int, **sections: dict[str, Any]) -> Settings:
    obs = {"enable_metrics": True, "metrics_port": port, **sections.pop("observability", {})}
    return loopback_settings(observability=obs, **sections)


async def scrape(port: int, accept: str = "") -> tuple[str, Samples]:
    headers = {"Accept": accept} if accept else {}
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        assert reply.status == 200
        text = await reply.text()
        content_type = reply.headers["Content-Type"]
    samples: Samples = {}
    if "openmetrics" in content_type:
        return content_type, samples
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return content_type, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def refused(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await pred()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_defaults_bind_loopback_and_are_off() -> None:
    obs = ObservabilitySettings()
    assert (obs.enable_metrics, obs.metrics_host, obs.metrics_port) == (False, "127.0.0.1", 9090)


async def test_off_by_default_serves_nothing() -> None:
    async with Session(loopback_settings(), listen_port=0) as session:
        assert session._core.metrics.server is None


async def test_session_values_and_event_counters(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "f.bin"
    data.write_bytes(random.Random(1).randbytes(200 * KIB))
    torrent = create_torrent(data, piece_length=64 * KIB, version="v1", workers=1)
    async with Session(metrics_settings(port), listen_port=0) as session:
        await session.add_torrent(torrent, tmp_path)  # complete data: seeding
        await session.add_torrent(
            create_torrent(data, piece_length=32 * KIB, version="v1", workers=1),
            tmp_path / "elsewhere",
            paused=True,
        )
        session.events.publish(ev.PieceHashFailed(info_hash="00" * 20, piece=1, peers=()))
        session.events.publish(ev.PeerBanned(address="127.0.0.9", reason="test"))
        session.set_limits(download=5000, upload=0)
        content_type, samples = await scrape(port)
    assert content_type.startswith("text/plain")
    assert value(samples, "ccbt_torrents", state="seeding") == 1
    assert value(samples, "ccbt_torrents", state="paused") == 1
    assert value(samples, "ccbt_torrents", state="downloading") == 0
    assert value(samples, "ccbt_hash_failures_total") == 1
    assert value(samples, "ccbt_peers_banned_total") == 1
    assert value(samples, "ccbt_rate_limit_bytes", direction="download") == 5000
    assert value(samples, "ccbt_peers_connected") == 0
    assert value(samples, "ccbt_dht_nodes") == 0
    assert ("ccbt_disk_queue_jobs", ()) in samples
    assert value(samples, "ccbt_build_info", version=__version__) == 1


async def test_openmetrics_when_asked() -> None:
    port = free_port()
    async with Session(metrics_settings(port), listen_port=0):
        content_type, _ = await scrape(port, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")


async def test_enable_move_and_disable_live() -> None:
    first, second = free_port(), free_port()
    settings = loopback_settings()
    async with Session(settings, listen_port=0) as session:
        assert await refused(first)
        on = metrics_settings(first)
        await session.apply_settings(on)
        await scrape(first)
        moved = on.model_copy(
            update={"observability": on.observability.model_copy(update={"metrics_port": second})}
        )
        await session.apply_settings(moved)
        assert await refused(first)
        await scrape(second)
        await session.apply_settings(settings)
        assert await refused(second)
    assert await refused(second)


async def test_busy_port_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with Session(metrics_settings(port), listen_port=0) as session:
            assert session._core.metrics.server is None
            assert session.listen_port > 0
    assert any("metrics not served" in r.getMessage() for r in caplog.records)


async def test_scrape_while_a_torrent_transfers(tmp_path: Path) -> None:
    """Two sessions on loopback; the leecher's rate limit keeps the transfer going for a few
    seconds, during which /metrics must show it in progress."""
    size = 3 * 1024 * KIB
    data = tmp_path / "seed" / "payload.bin"
    data.parent.mkdir()
    data.write_bytes(random.Random(7).randbytes(size))
    torrent = create_torrent(data, piece_length=64 * KIB, version="v1", workers=1)
    port = free_port()
    leech_settings = metrics_settings(port, limits={"global_down_kib": 1024})
    async with (
        Session(loopback_settings(), listen_port=0) as seeder,
        Session(leech_settings, listen_port=0) as leecher,
    ):
        await seeder.add_torrent(torrent, data.parent)
        handle = await leecher.add_torrent(torrent, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", seeder.listen_port)

        async def mid_transfer() -> Samples | None:
            _, samples = await scrape(port)
            got = value(samples, "ccbt_downloaded_bytes_total")
            if 0 < got < size and value(samples, "ccbt_peers_connected") >= 1:
                return samples
            return None

        during = await until(mid_transfer, what="a scrape during the transfer")
        assert value(during, "ccbt_torrents", state="downloading") == 1
        await handle.wait_finished(timeout=60)
        _, after = await scrape(port)
    assert value(after, "ccbt_torrents", state="seeding") == 1
    assert value(after, "ccbt_torrents", state="downloading") == 0
    assert value(after, "ccbt_downloaded_bytes_total") >= size
    assert value(after, "ccbt_torrents_finished_total") == 1
    assert value(after, "ccbt_hash_failures_total") == 0
    assert (tmp_path / "dl" / "payload.bin").read_bytes() == data.read_bytes()
