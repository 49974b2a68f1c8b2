"""The queue in a real session (loopback, no peers): states, positions, moves, live settings,
seeding limits. Transfers with real peers are in tests/interop/test_queue_interop.py."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session, SessionError, TorrentHandle
from ccbt_engine.create import create_torrent
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)


def _make(tmp_path: Path, name: str, size: int = 40_000) -> bytes:
    data = tmp_path / "src" / name
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(os.urandom(size))
    return create_torrent(data, version="v1", piece_length=16384)


async def _until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _states(handles: list[TorrentHandle]) -> list[str]:
    return [h.status().state for h in handles]


def _settings(**limits: Any) -> Any:
    return loopback_settings(limits=limits)


async def test_downloads_beyond_the_limit_are_queued_in_order(tmp_path: Path) -> None:
    async with Session(_settings(max_active_downloads=1), listen_port=0) as session:
        hs = [
            await session.add_torrent(_make(tmp_path, n), tmp_path / "dl") for n in ("a", "b", "c")
        ]
        await _until(lambda: _states(hs) == ["downloading", "queued", "queued"], "queueing")
        assert [h.queue_position for h in hs] == [0, 1, 2]
        assert [h.status().queue_position for h in hs] == [0, 1, 2]

        assert session.queue_move(hs[2], "top")  # c overtakes the running a
        await _until(lambda: _states(hs) == ["queued", "queued", "downloading"], "move to top")
        assert [h.queue_position for h in hs] == [1, 2, 0]
        assert not hs[2].queue_move("up")  # already at the top
        assert hs[2].queue_move("bottom")
        await _until(lambda: _states(hs) == ["downloading", "queued", "queued"], "to bottom")
        assert session.queue_move(hs[1].info_hash, "down")
        assert [h.queue_position for h in hs] == [0, 2, 1]

        # settings apply live: a second slot starts the next in queue order (c, then b)
        await session.apply_settings(_settings(max_active_downloads=2))
        await _until(lambda: _states(hs) == ["downloading", "queued", "downloading"], "2 slots")

        await hs[0].pause()  # a paused torrent frees its slot and is "paused", not "queued"
        await _until(lambda: _states(hs) == ["paused", "downloading", "downloading"], "pause")
        await hs[0].resume()  # first in the queue: takes its slot back from the last one, b
        await _until(lambda: _states(hs) == ["downloading", "queued", "downloading"], "resume")

        await hs[2].remove()
        await _until(lambda: _states(hs[:2]) == ["downloading", "downloading"], "removal")
        assert [h.queue_position for h in hs] == [0, 1, -1]
        with pytest.raises(SessionError):
            hs[2].queue_move("up")

        await session.apply_settings(_settings(max_active_downloads=0))  # 0 = unlimited
        extra = await session.add_torrent(_make(tmp_path, "d"), tmp_path / "dl")
        await _until(lambda: extra.status().state == "downloading", "unlimited")


async def test_seeds_have_their_own_limit(tmp_path: Path) -> None:
    settings = _settings(max_active_downloads=1, max_active_seeds=1)
    async with Session(settings, listen_port=0) as session:
        seeds = [
            await session.add_torrent(_make(tmp_path, n), tmp_path / "src") for n in ("s1", "s2")
        ]
        download = await session.add_torrent(_make(tmp_path, "d1"), tmp_path / "dl")
        await _until(
            lambda: _states([*seeds, download]) == ["seeding", "queued", "downloading"], "seeds"
        )
        await seeds[0].pause()
        await _until(lambda: _states(seeds) == ["paused", "seeding"], "next seed")


async def test_queue_events_and_snapshot(tmp_path: Path) -> None:
    async with Session(_settings(max_active_downloads=1), listen_port=0) as session:
        changes: list[tuple[str, str]] = []
        session.subscribe(
            lambda e: (
                changes.append((e.info_hash or "", e.new))
                if isinstance(e, ev.TorrentStateChanged)
                else None
            )
        )
        a = await session.add_torrent(_make(tmp_path, "a"), tmp_path / "dl")
        b = await session.add_torrent(_make(tmp_path, "b"), tmp_path / "dl")
        await _until(lambda: b.status().state == "queued", "queued")
        assert (b.info_hash, "queued") in changes
        assert (b.info_hash, "downloading") not in changes
        first = {s.info_hash: s for s in session.statuses()}
        assert first[b.info_hash].state == "queued" and first[b.info_hash].queue_position == 1
        await a.remove()
        await _until(lambda: b.status().state == "downloading", "b starts")


async def test_slow_torrents_do_not_block_the_queue(tmp_path: Path) -> None:
    async with Session(_settings(max_active_downloads=1), listen_port=0) as session:
        a = await session.add_torrent(_make(tmp_path, "a"), tmp_path / "dl")
        b = await session.add_torrent(_make(tmp_path, "b"), tmp_path / "dl")
        await _until(lambda: _states([a, b]) == ["downloading", "queued"], "queue")
        queue = session._core.queue
        assert queue._tick_task is not None
        queue._tick_task.cancel()  # this test drives the clock itself
        # a has no peers at all: a minute later it is slow, and b gets a slot
        await queue.tick(time.monotonic() + 61)
        await _until(lambda: _states([a, b]) == ["downloading", "downloading"], "slow skipped")
        await session.apply_settings(_settings(max_active_downloads=1, skip_slow_torrents=False))
        await _until(lambda: _states([a, b]) == ["downloading", "queued"], "slow counted")


async def test_seed_time_limit_pauses_with_an_event(tmp_path: Path) -> None:
    settings = _settings(seed_time_limit_min=1)
    async with Session(settings, listen_port=0) as session:
        reached: list[ev.SeedingLimitReached] = []
        session.subscribe(
            lambda e: reached.append(e) if isinstance(e, ev.SeedingLimitReached) else None
        )
        seed = await session.add_torrent(_make(tmp_path, "s"), tmp_path / "src")
        await _until(lambda: seed.status().state == "seeding", "seeding")
        queue = session._core.queue
        await queue.tick(time.monotonic() + 30)
        assert seed.status().state == "seeding" and not reached
        await queue.tick(time.monotonic() + 61)
        assert seed.status().state == "paused"
        assert [(e.info_hash, e.reason) for e in reached] == [(seed.info_hash, "seed_time")]
        assert reached[0].seeding_time >= 60


async def test_move_storage_on_request(tmp_path: Path) -> None:
    async with Session(_settings(), listen_port=0) as session:
        events: list[ev.Event] = []
        session.subscribe(events.append)
        raw = _make(tmp_path, "s", size=100_000)
        original = (tmp_path / "src" / "s").read_bytes()
        seed = await session.add_torrent(raw, tmp_path / "src")
        await _until(lambda: seed.status().state == "seeding", "seeding")

        blocked = tmp_path / "blocked"
        blocked.mkdir()
        (blocked / "s").write_bytes(b"someone else's file")
        assert not await seed.move_storage(blocked)
        assert seed.status().save_path == str(tmp_path / "src")
        await _until(lambda: seed.status().state == "seeding", "seeding again")
        assert (tmp_path / "src" / "s").read_bytes() == original
        assert (blocked / "s").read_bytes() == b"someone else's file"
        failed = [e for e in events if isinstance(e, ev.StorageMoveFailed)]
        assert len(failed) == 1 and "already exists" in failed[0].message

        assert await seed.move_storage(tmp_path / "elsewhere")
        await _until(lambda: seed.status().state == "seeding", "seeding from the new place")
        assert seed.status().save_path == str(tmp_path / "elsewhere")
        assert (tmp_path / "elsewhere" / "s").read_bytes() == original
        assert not (tmp_path / "src" / "s").exists()
        assert any(isinstance(e, ev.StorageMoved) for e in events)
        moving = [e for e in events if isinstance(e, ev.TorrentStateChanged) and e.new == "moving"]
        assert len(moving) == 2
        await seed.force_recheck()  # the data really is where the torrent now reads it
        await _until(lambda: seed.status().state == "seeding", "rechecked")
        assert seed.status().pieces_have == seed.status().num_pieces


async def test_a_magnet_joins_the_queue_with_its_metadata(tmp_path: Path) -> None:
    async with Session(_settings(), listen_port=0) as session:
        magnet = await session.add_magnet("magnet:?xt=urn:btih:" + "ab" * 20, tmp_path)
        assert magnet.queue_position == -1
        assert magnet.status().queue_position == -1
        with pytest.raises(SessionError):
            session.queue_move(magnet, "top")
