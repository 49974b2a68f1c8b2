"""ccbt downloading from libtorrent with every connection it makes going through a proxy.

The proxies (tests/proxy_fakes.py) are written from the RFCs and count what they relay. The
seeder never announces (its .torrent has no tracker): ccbt can only learn it from the tracker,
which it must reach through the proxy, and the seeder cannot learn ccbt's address, so every
payload byte has to come down the proxy's tunnel to the seeder.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ccbt_engine import bencode
from ccbt_engine import events as ev
from ccbt_engine.api import Session
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import LibtorrentPeer, MiniTracker, make_torrent, sha256_tree
from tests.proxy_fakes import FakeHttpProxy, FakeSocks5

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

PIECE = 256 * 1024
USER, PASSWORD = "ccbt-user", "s3cret pass"


def _with_tracker(torrent: Path, url: str, out: Path) -> Path:
    """The same info dict (so the same infohash) with an announce URL added."""
    meta = bencode.decode(torrent.read_bytes())
    assert isinstance(meta, dict)
    meta[b"announce"] = url.encode()
    out.write_bytes(bencode.encode(meta))
    return out


def _proxy_settings(kind: str, port: int, **network: object) -> object:
    return loopback_settings(
        network={
            "proxy_type": kind,
            "proxy_host": "127.0.0.1",
            "proxy_port": port,
            "proxy_username": USER,
            **network,
        }
    )


@pytest.mark.parametrize("kind", ["socks5", "http"])
async def test_download_through_proxy(
    kind: str,
    payload_16m: Path,
    tmp_path: Path,
    mini_tracker: MiniTracker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ccbt_engine")  # a failure shows every dial
    monkeypatch.setenv("CCBT_NETWORK_PROXY_PASSWORD", PASSWORD)  # read before the keyring
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "seed.torrent")
    ours = _with_tracker(made.path, mini_tracker.announce_url, tmp_path / "ccbt.torrent")
    tracker_port = int(mini_tracker.announce_url.rsplit(":", 1)[1].split("/")[0])
    proxy_cls = FakeSocks5 if kind == "socks5" else FakeHttpProxy
    async with proxy_cls(username=USER, password=PASSWORD) as proxy:
        settings = _proxy_settings(kind, proxy.port)
        with LibtorrentPeer(made.path, made.save_path, seed=True, tcp_only=True) as seeder:
            mini_tracker.add_peer(made.info_hash, "127.0.0.1", seeder.port)
            async with Session(settings, listen_port=0) as ccbt:  # type: ignore[arg-type]
                gone: list[str] = []  # the seeder is dropped once we are a seed too
                ccbt.subscribe(
                    lambda e: gone.append(e.address) if isinstance(e, ev.PeerDisconnected) else None
                )
                handle = await ccbt.add_torrent(ours, tmp_path / "dl")
                try:
                    status = await handle.wait_finished(timeout=120)
                except TimeoutError:  # say where it stuck: tracker, tunnel or transfer
                    raise AssertionError(
                        f"not finished: {handle.status()}; trackers {handle.trackers()};"
                        f" relays {proxy.relays}; peers {handle.peers()};"
                        f" seeder {seeder.status()}"
                    ) from None
                addresses = {p.address for p in handle.peers()} | set(gone)
    assert status.state == "seeding"
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload_16m)
    assert proxy.auth_failures == 0
    assert proxy.to(tracker_port), f"the announce did not go through the proxy: {proxy.relays}"
    assert [a for a in mini_tracker.announces if int(a.get("port", 0)) == ccbt.listen_port]
    tunnels = proxy.to(seeder.port)
    assert tunnels and all(t.kind == "connect" for t in tunnels)
    assert sum(t.down for t in tunnels) >= made.total_size  # all the payload came through it
    # the connection is listed under the peer's address, not the proxy's
    assert addresses == {f"127.0.0.1:{seeder.port}"}


@pytest.mark.parametrize("kind", ["socks5", "http"])
async def test_wrong_password_is_a_clear_error(
    kind: str,
    payload_16m: Path,
    tmp_path: Path,
    mini_tracker: MiniTracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCBT_NETWORK_PROXY_PASSWORD", "not the password")
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "seed.torrent")
    ours = _with_tracker(made.path, mini_tracker.announce_url, tmp_path / "ccbt.torrent")
    proxy_cls = FakeSocks5 if kind == "socks5" else FakeHttpProxy
    async with proxy_cls(username=USER, password=PASSWORD) as proxy:
        settings = _proxy_settings(kind, proxy.port)
        async with Session(settings, listen_port=0) as ccbt:  # type: ignore[arg-type]
            handle = await ccbt.add_torrent(ours, tmp_path / "dl")
            errors: list[str] = []
            for _ in range(200):
                errors = [t.message for t in handle.trackers() if t.status == "error"]
                if errors:
                    break
                await asyncio.sleep(0.05)
    assert not mini_tracker.announces, "an announce got past a proxy that refused us"
    assert proxy.auth_failures >= 1
    expected = "authentication failure" if kind == "socks5" else "407"
    assert errors and expected in errors[0].lower(), errors
