"""Peers that could not be reached, or dropped, are dialled again with back-off."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import ccbt_engine.torrent as torrent_mod
from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import free_port


async def test_unreachable_peer_is_retried_until_it_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torrent_mod, "RETRY_BASE", 0.3)  # the real back-off starts at 30 s
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.bin").write_bytes(os.urandom(400_000))
    torrent = create_torrent(data / "f.bin", version="v1")
    port = free_port()
    tcp = loopback_settings(network={"enable_utp": False})  # a refused TCP dial fails at once
    async with Session(tcp, listen_port=0) as leecher:
        handle = await leecher.add_torrent(torrent, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", port)  # nobody listens there yet: the dial fails
        core = leecher._core  # observing internals: the retry schedule is not in the facade
        t = core.torrents[bytes.fromhex(handle.info_hash)]
        for _ in range(100):
            if ("127.0.0.1", port) in t._retry_due:
                break
            await asyncio.sleep(0.05)
        assert t._failures[("127.0.0.1", port)] >= 1
        async with Session(tcp, listen_port=port) as seeder:
            await seeder.add_torrent(torrent, data)
            status = await handle.wait_finished(timeout=20)
    assert status.wanted_done == status.wanted_size
    assert (tmp_path / "dl" / "f.bin").read_bytes() == (data / "f.bin").read_bytes()


async def test_banned_peers_are_not_retried(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(50_000))
    torrent = create_torrent(tmp_path / "f.bin", version="v1")
    async with Session(loopback_settings(), listen_port=0) as session:
        handle = await session.add_torrent(torrent, tmp_path / "dl")
        t = session._core.torrents[bytes.fromhex(handle.info_hash)]
        t.banned["127.0.0.9"] = "test"
        t._schedule_retry(("127.0.0.9", 6881), "tracker")
        t._schedule_retry(("127.0.0.8", 6881), "tracker")
        assert ("127.0.0.9", 6881) not in t._retry_due
        assert ("127.0.0.8", 6881) in t._retry_due
        for _ in range(torrent_mod.RETRY_MAX_TRIES):
            t._schedule_retry(("127.0.0.8", 6881), "tracker")
        assert ("127.0.0.8", 6881) not in t._failures  # gave up and forgot it
