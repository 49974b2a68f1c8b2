"""Queueing, seeding limits and moving finished downloads, with real transfers on loopback.

Seeders are a second ccbt session (three torrents in one process) or libtorrent; payloads are
compared by sha256.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session, TorrentHandle
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import (
    LibtorrentPeer,
    MadeTorrent,
    make_payload,
    make_torrent,
    sha256_tree,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PIECE = 64 * 1024


def _same(a: Path, b: Path) -> None:
    left, right = sha256_tree(a), sha256_tree(b)
    assert left == right
    assert left, "empty payload compared"


class Recorder:
    """Every event of a session, in order."""

    def __init__(self, session: Session) -> None:
        self.events: list[ev.Event] = []
        session.subscribe(self.events.append)

    def index(self, pred: Callable[[ev.Event], bool]) -> int:
        return next(i for i, e in enumerate(self.events) if pred(e))

    async def wait(self, pred: Callable[[ev.Event], bool], timeout: float = 120) -> ev.Event:
        async def poll() -> ev.Event:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), timeout)


def _state(handle: TorrentHandle, state: str) -> Callable[[ev.Event], bool]:
    return lambda e: (
        isinstance(e, ev.TorrentStateChanged) and e.info_hash == handle.info_hash and e.new == state
    )


def _finished(handle: TorrentHandle) -> Callable[[ev.Event], bool]:
    return lambda e: isinstance(e, ev.TorrentFinished) and e.info_hash == handle.info_hash


async def test_second_download_starts_only_after_the_first_completes(tmp_path: Path) -> None:
    made = [
        make_torrent(
            make_payload(tmp_path / "src", 3 << 20, 3, seed=i, name=f"p{i}"),
            None,
            PIECE,
            tmp_path / f"p{i}.torrent",
        )
        for i in range(3)
    ]
    # the seeder serves all three at once, a little slowly so each download takes a moment
    seeder_settings = loopback_settings(limits={"max_active_seeds": 0, "global_up_kib": 6144})
    settings = loopback_settings(limits={"max_active_downloads": 1})
    async with (
        Session(seeder_settings, listen_port=0) as seeder,
        Session(settings, listen_port=0) as ccbt,
    ):
        for m in made:
            assert (await seeder.add_torrent(m.path, m.save_path)).status().state == "seeding"
        rec = Recorder(ccbt)
        handles = [await ccbt.add_torrent(m.path, tmp_path / "dl") for m in made]
        for h in handles:
            h.connect_peer("127.0.0.1", seeder.listen_port)
        assert [h.status().state for h in handles[1:]] == ["queued", "queued"]
        assert [h.queue_position for h in handles] == [0, 1, 2]
        for h in handles:
            await h.wait_finished(timeout=120)
        for first, second in itertools.pairwise(handles):
            assert rec.index(_finished(first)) < rec.index(_state(second, "downloading"))
        assert all(h.status().state == "seeding" for h in handles)
    for m in made:
        _same(tmp_path / "dl" / m.name, m.save_path / m.name)


async def test_share_ratio_limit_pauses_the_seed(payload_16m: Path, tmp_path: Path) -> None:
    made = make_torrent(payload_16m, None, 256 * 1024, tmp_path / "t.torrent")
    settings = loopback_settings(limits={"share_ratio_limit": 0.5, "global_up_kib": 4096})
    async with Session(settings, listen_port=0) as ccbt:
        rec = Recorder(ccbt)
        handle = await ccbt.add_torrent(made.path, made.save_path)
        assert handle.status().state == "seeding"
        (tmp_path / "lt").mkdir()
        with LibtorrentPeer(made.path, tmp_path / "lt", seed=False) as leecher:
            await leecher.connect_async("127.0.0.1", ccbt.listen_port)
            event = await rec.wait(lambda e: isinstance(e, ev.SeedingLimitReached))
        assert isinstance(event, ev.SeedingLimitReached)
        assert (event.info_hash, event.reason) == (handle.info_hash, "ratio")
        assert event.ratio >= 0.5
        status = handle.status()
        assert status.state == "paused"
        assert status.uploaded >= made.total_size // 2
        assert status.ratio >= 0.5


async def _download_and_move(
    made: MadeTorrent, tmp_path: Path, target: Path, state_dir: Path
) -> tuple[ev.Event, dict[str, Any]]:
    """Download ``made`` from a ccbt seeder into tmp/dl with move_completed_to = target; wait
    for the move's outcome; then let libtorrent download from the result (it must seed)."""
    settings = loopback_settings(disk={"move_completed_to": str(target)})
    async with Session(loopback_settings(), listen_port=0) as seeder:
        await seeder.add_torrent(made.path, made.save_path)
        async with Session(settings, listen_port=0, state_dir=state_dir) as ccbt:
            rec = Recorder(ccbt)
            handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
            handle.connect_peer("127.0.0.1", seeder.listen_port)
            await handle.wait_finished(timeout=120)
            outcome = await rec.wait(
                lambda e: isinstance(e, ev.StorageMoved | ev.StorageMoveFailed)
            )
            await rec.wait(lambda e: handle.status().state == "seeding")
            await seeder.remove(handle.info_hash)  # from now on only ccbt has the data
            (tmp_path / "lt").mkdir()
            with LibtorrentPeer(made.path, tmp_path / "lt", seed=False) as leecher:
                await leecher.connect_async("127.0.0.1", ccbt.listen_port)
                await leecher.wait_finished_async(120)
            _same(tmp_path / "lt" / made.name, made.save_path / made.name)
            status = handle.status()
            assert status.state == "seeding"
            return outcome, {"save_path": status.save_path}


async def test_move_completed_download_and_keep_seeding(payload_16m: Path, tmp_path: Path) -> None:
    made = make_torrent(payload_16m, None, 256 * 1024, tmp_path / "t.torrent")
    target = tmp_path / "done"
    outcome, status = await _download_and_move(made, tmp_path, target, tmp_path / "state")
    assert isinstance(outcome, ev.StorageMoved), outcome
    assert outcome.new_path == str(target)
    assert status["save_path"] == str(target)
    _same(target / made.name, made.save_path / made.name)
    assert not (tmp_path / "dl" / made.name).exists()
    # resume data follows the move: a restart seeds from the new place without downloading
    async with Session(loopback_settings(), listen_port=0, state_dir=tmp_path / "state") as again:
        (handle,) = again.torrents()
        for _ in range(200):
            if handle.status().state != "checking":
                break
            await asyncio.sleep(0.05)
        assert handle.status().save_path == str(target)
        assert handle.status().state == "seeding"


@pytest.mark.parametrize("failure", ["blocked", "read-only"])
async def test_a_failed_move_loses_nothing(payload_16m: Path, tmp_path: Path, failure: str) -> None:
    made = make_torrent(payload_16m, None, 256 * 1024, tmp_path / "t.torrent")
    target = tmp_path / "done"
    target.mkdir()
    if failure == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions")
        target.chmod(0o555)
    else:
        # a file where one of the torrent's sub-folders must go: fails midway, after some
        # files were already moved (they must come back)
        (target / made.name).mkdir()
        (target / made.name / "dir0").write_bytes(b"in the way")
    try:
        outcome, status = await _download_and_move(made, tmp_path, target, tmp_path / "state")
    finally:
        target.chmod(0o755)
    assert isinstance(outcome, ev.StorageMoveFailed), outcome
    assert outcome.old_path == str(tmp_path / "dl")
    assert status["save_path"] == str(tmp_path / "dl")
    _same(tmp_path / "dl" / made.name, made.save_path / made.name)
    leftovers = [p for p in target.rglob("*") if p.is_file()]
    assert leftovers == ([] if failure == "read-only" else [target / made.name / "dir0"])
