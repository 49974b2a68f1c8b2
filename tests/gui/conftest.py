"""GUI test fixtures: an isolated config folder per test, synthetic statuses, a small torrent."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ccbt_engine.api import TorrentStatus

T = TypeVar("T")


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test reads or writes the real ~/.config (settings, gui-state.ini), binds 0.0.0.0 or
    talks to anything beyond loopback."""
    cfg = tmp_path / "config"
    cfg.mkdir()
    monkeypatch.setenv("CCBT_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("CCBT_NETWORK_LISTEN_INTERFACES", "127.0.0.1")
    # loopback only: no DHT bootstrap, LSD multicast or router port mapping from GUI tests
    for key in ("ENABLE_DHT", "ENABLE_LSD", "ENABLE_UPNP", "ENABLE_NATPMP"):
        monkeypatch.setenv(f"CCBT_NETWORK_{key}", "false")
    monkeypatch.setenv("CCBT_GUI_SERVER_NAME", f"ccbt-test-{tmp_path.name}")
    monkeypatch.setenv("CCBT_STATE_DIR", str(tmp_path / "state"))  # no torrents from other tests
    yield cfg


def make_status(i: int = 0, **changes: Any) -> TorrentStatus:
    """A plausible status; tests override the fields they care about."""
    size = 10_000_000 + i
    base: dict[str, Any] = dict(
        info_hash=f"{i:040x}",
        info_hash_v2=None,
        name=f"torrent {i:03d}",
        state="downloading",
        progress=0.0,
        wanted_size=size,
        wanted_done=0,
        total_size=size,
        selected_size=size,
        download_rate=0.0,
        upload_rate=0.0,
        num_peers=0,
        num_seeds=0,
        downloaded=0,
        uploaded=0,
        ratio=0.0,
        eta=None,
        save_path="/tmp/x",
        added_time=1_700_000_000.0 + i,
        time_active=0.0,
        error=None,
        num_pieces=40,
        piece_length=262144,
        pieces_have=0,
        hash_failures=0,
        wasted=0,
        checking_progress=0.0,
        sequential=False,
        download_limit=0,
        upload_limit=0,
    )
    base.update(changes)
    return TorrentStatus(**base)


def changed(s: TorrentStatus, **kw: Any) -> TorrentStatus:
    return dataclasses.replace(s, **kw)


@pytest.fixture
def run_async(qapp: Any) -> Iterator[Any]:
    """Run a coroutine on a qasync loop (Qt events and asyncio together), then close it."""
    import qasync

    loops: list[Any] = []

    def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        loop = qasync.QEventLoop(qapp, already_running=False)
        loops.append(loop)
        asyncio.set_event_loop(loop)
        result: T = loop.run_until_complete(asyncio.wait_for(coro, timeout))
        return result

    yield run
    for loop in loops:
        loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def small_torrent(tmp_path: Path) -> tuple[Path, Path]:
    """(payload folder, .torrent) of three files, made with the engine's own creator."""
    from ccbt_engine.create import create_torrent

    data = tmp_path / "payload" / "album"
    (data / "cd1").mkdir(parents=True)
    (data / "cd1" / "a.bin").write_bytes(b"a" * 40_000)
    (data / "cd1" / "b.bin").write_bytes(b"b" * 30_000)
    (data / "notes.txt").write_bytes(b"n" * 5_000)
    torrent = tmp_path / "album.torrent"
    torrent.write_bytes(create_torrent(data, piece_length=16384, version="v1"))
    return data, torrent
