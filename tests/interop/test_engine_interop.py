"""ccbt's engine moving real data with clients nobody here wrote (libtorrent, aria2).

Every test starts its reference peers on loopback and compares payloads by sha256.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session
from ccbt_engine.storage import files
from tests.engine_settings import loopback_settings
from tests.interop import refpeers
from tests.interop.hostile import BITFIELD, PSTR, UNCHOKE, full_bitfield, message
from tests.interop.refpeers import Aria2Peer, LibtorrentPeer, MiniTracker, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PIECE = 256 * 1024


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


def _same(a: Path, b: Path) -> None:
    left, right = sha256_tree(a), sha256_tree(b)
    assert left == right
    assert left, "empty payload compared"


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid", "v1-hash-ahead"])
async def test_ccbt_downloads_from_libtorrent(
    ccbt: Session,
    payload_64m: Path,
    tmp_path: Path,
    version: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ahead = version.endswith("-hash-ahead")  # every piece hashed on the loop as it arrives
    if ahead:
        monkeypatch.setattr(files, "HASH_AHEAD_QUEUE", 0)
    made = make_torrent(
        payload_64m,
        None,
        PIECE,
        tmp_path / "t.torrent",
        version.removesuffix("-hash-ahead"),  # type: ignore[arg-type]
    )
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", seeder.port)
        status = await handle.wait_finished(timeout=120)
    assert status.state == "seeding"
    assert status.hash_failures == 0
    if ahead:
        assert handle._t.storage.pieces_hashed_ahead == handle.info.num_pieces
    _same(tmp_path / "dl" / made.name, payload_64m)


async def test_libtorrent_downloads_from_ccbt(
    ccbt: Session, payload_64m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_64m, None, PIECE, tmp_path / "t.torrent", "hybrid")
    handle = await ccbt.add_torrent(made.path, made.save_path)
    assert handle.status().state == "seeding"
    (tmp_path / "lt").mkdir()
    with LibtorrentPeer(made.path, tmp_path / "lt", seed=False) as leecher:
        leecher.connect("127.0.0.1", ccbt.listen_port)
        await asyncio.to_thread(leecher.wait_finished, 120)
    payload_size = sum(f.stat().st_size for f in payload_64m.rglob("*") if f.is_file())
    assert handle.status().uploaded >= payload_size  # pad files are never sent
    _same(tmp_path / "lt" / made.name, payload_64m)


async def test_ccbt_downloads_from_aria2(
    ccbt: Session, aria2c: str, payload_64m: Path, tmp_path: Path, mini_tracker: MiniTracker
) -> None:
    made = make_torrent(payload_64m, mini_tracker.announce_url, PIECE, tmp_path / "t.torrent")
    with Aria2Peer(made.path, made.save_path, seed=True) as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", seeder.port)
        await handle.wait_finished(timeout=120)
    _same(tmp_path / "dl" / made.name, payload_64m)


async def test_aria2_downloads_from_ccbt(
    ccbt: Session, aria2c: str, payload_64m: Path, tmp_path: Path, mini_tracker: MiniTracker
) -> None:
    made = make_torrent(payload_64m, mini_tracker.announce_url, PIECE, tmp_path / "t.torrent")
    await ccbt.add_torrent(made.path, made.save_path)
    mini_tracker.add_peer(made.info_hash, "127.0.0.1", ccbt.listen_port)
    (tmp_path / "aria").mkdir()
    with Aria2Peer(made.path, tmp_path / "aria", seed=False) as leecher:
        await asyncio.to_thread(leecher.wait_finished, 120)
    _same(tmp_path / "aria" / made.name, payload_64m)


async def test_three_party_swarm(
    ccbt: Session, aria2c: str, payload_64m: Path, tmp_path: Path, mini_tracker: MiniTracker
) -> None:
    """libtorrent seeds (throttled, so the leechers must trade); ccbt and aria2 both finish."""
    made = make_torrent(payload_64m, mini_tracker.announce_url, PIECE, tmp_path / "t.torrent")
    throttle = {"upload_rate_limit": 8 * 1024 * 1024}
    (tmp_path / "aria").mkdir()
    with LibtorrentPeer(made.path, made.save_path, seed=True, extra_settings=throttle) as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "ccbt")
        mini_tracker.add_peer(made.info_hash, "127.0.0.1", ccbt.listen_port)
        with Aria2Peer(made.path, tmp_path / "aria", seed=False, seed_after_download=True) as aria:
            handle.connect_peer("127.0.0.1", seeder.port)
            handle.connect_peer("127.0.0.1", aria.port)
            await handle.wait_finished(timeout=150)
            await asyncio.to_thread(aria.wait_finished, 150)
    _same(tmp_path / "ccbt" / made.name, payload_64m)
    _same(tmp_path / "aria" / made.name, payload_64m)
    status = handle.status()
    # the throttled seeder alone could not have fed both leechers this fast: they traded
    assert status.uploaded > 0, "ccbt never uploaded to aria2"


class CorruptPeer:
    """A hostile seeder speaking the real wire by hand: claims every piece, sends garbage.

    It listens on 127.0.0.2 so that banning its address does not ban the honest peers, which
    all live on 127.0.0.1.
    """

    def __init__(self, info_hash: bytes, num_pieces: int) -> None:
        self.info_hash = info_hash
        self.num_pieces = num_pieces
        self.blocks_sent = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.2", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readexactly(68)
            writer.write(PSTR + bytes(8) + self.info_hash + b"-XX0001-" + os.urandom(12))
            writer.write(message(BITFIELD, full_bitfield(self.num_pieces)) + message(UNCHOKE))
            while True:
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                if length == 0:
                    continue
                body = await reader.readexactly(length)
                if body[0] == 6:  # request → garbage block
                    index, begin, size = struct.unpack(">III", body[1:13])
                    writer.write(struct.pack(">IBII", 9 + size, 7, index, begin) + os.urandom(size))
                    self.blocks_sent += 1
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("ahead", [False, True], ids=["pool-hash", "hash-ahead"])
async def test_corrupt_peer_is_banned_and_piece_refetched(
    payload_16m: Path, tmp_path: Path, ahead: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the corrupt pieces are failed by the loop's SHA-1 as their blocks came, or by the pool's
    monkeypatch.setattr(files, "HASH_AHEAD_QUEUE", 0 if ahead else 1 << 30)
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    num_pieces = -(-made.total_size // PIECE)
    bad = CorruptPeer(made.info_hash, num_pieces)
    await bad.start()
    banned: list[ev.PeerBanned] = []
    failed: list[ev.PieceHashFailed] = []
    settings = loopback_settings(security={"ban_after_hash_failures": 2})
    throttle = {"upload_rate_limit": 4 * 1024 * 1024}
    async with Session(settings, listen_port=0) as session:
        session.subscribe(lambda e: banned.append(e) if isinstance(e, ev.PeerBanned) else None)
        session.subscribe(lambda e: failed.append(e) if isinstance(e, ev.PieceHashFailed) else None)
        with LibtorrentPeer(
            made.path, made.save_path, seed=True, extra_settings=throttle
        ) as seeder:
            handle = await session.add_torrent(made.path, tmp_path / "dl")
            handle.connect_peer("127.0.0.2", bad.port)  # the liar first
            await asyncio.sleep(0.5)
            handle.connect_peer("127.0.0.1", seeder.port)
            status = await handle.wait_finished(timeout=120)
            peers_at_end = {p.address for p in handle.peers()}
            hashed_ahead = handle._t.storage.pieces_hashed_ahead
    await bad.stop()
    assert (hashed_ahead > 0) is ahead
    assert bad.blocks_sent > 0
    assert status.hash_failures >= 2
    assert any("127.0.0.2" in p for e in failed for p in e.peers)
    assert [e.address for e in banned] and all("127.0.0.2" in e.address for e in banned)
    assert "hash check" in banned[0].reason
    assert not any(a.startswith("127.0.0.2") for a in peers_at_end)
    _same(tmp_path / "dl" / made.name, payload_16m)


async def test_skipped_files_are_never_written(
    ccbt: Session, payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    probe = await ccbt.add_torrent(made.path, tmp_path / "probe", paused=True)
    files = probe.files()
    await probe.remove()
    # skip every other real file
    priorities = [0 if (i % 2 and not f.is_pad) else 4 for i, f in enumerate(files)]
    skipped = [f.path for f, p in zip(files, priorities, strict=True) if p == 0]
    wanted = [f.path for f, p in zip(files, priorities, strict=True) if p and not f.is_pad]
    assert skipped and wanted
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl", file_priorities=priorities)
        handle.connect_peer("127.0.0.1", seeder.port)
        status = await handle.wait_finished(timeout=120)
        assert status.wanted_done == status.wanted_size < made.total_size
    source = sha256_tree(made.save_path)
    for rel in skipped:
        assert not (tmp_path / "dl" / rel).exists(), f"skipped file {rel} was created"
    got = sha256_tree(tmp_path / "dl")
    for rel in wanted:
        assert got[rel] == source[rel]


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CCBT_CONFIG_DIR=str(tmp_path / "config"),
        CCBT_LOCAL_CONFIG=str(tmp_path / "none.toml"),
        CCBT_NETWORK_LISTEN_INTERFACES='["127.0.0.1"]',
    )
    return env


def _ccbt(*args: str) -> list[str]:
    return [sys.executable, "-m", "ccbt_engine", *args]


def _download_args(torrent: Path, out: Path, seeder_port: int) -> list[str]:
    return _ccbt(
        "download",
        str(torrent),
        "-o",
        str(out),
        "--port",
        "0",
        "--peer",
        f"127.0.0.1:{seeder_port}",
    )


def test_cli_download_completes(payload_16m: Path, tmp_path: Path) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        proc = subprocess.run(
            _download_args(made.path, tmp_path / "dl", seeder.port),
            env=_cli_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    _same(tmp_path / "dl" / made.name, payload_16m)


def test_cli_ctrl_c_stops_cleanly_and_resumes(payload_16m: Path, tmp_path: Path) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    # our own download limit (config via environment) keeps the first run going for a while
    slow_env = dict(_cli_env(tmp_path), CCBT_LIMITS_GLOBAL_DOWN_KIB="2048")
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        args = _download_args(made.path, tmp_path / "dl", seeder.port)
        proc = subprocess.Popen(
            args, env=slow_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        partial = sum(f.stat().st_size for f in (tmp_path / "dl").rglob("*") if f.is_file())
        assert partial > 0, "nothing was kept from the interrupted run"
        # what was written is kept: a second run finishes from there
        done = subprocess.run(
            args, env=_cli_env(tmp_path), capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    _same(tmp_path / "dl" / made.name, payload_16m)


async def test_cli_seed_serves_libtorrent(payload_16m: Path, tmp_path: Path) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    port = refpeers.free_port()
    proc = subprocess.Popen(
        _ccbt("seed", str(made.path), "--data", str(made.save_path), "--port", str(port)),
        env=_cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        # the seeder prints this once its data is checked and it serves the torrent
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 30)
        assert f"listening on port {port}" in line
        (tmp_path / "lt").mkdir()
        with LibtorrentPeer(made.path, tmp_path / "lt", seed=False, tcp_only=True) as leecher:
            leecher.connect("127.0.0.1", port)
            await leecher.wait_finished_async(60)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    _same(tmp_path / "lt" / made.name, payload_16m)
