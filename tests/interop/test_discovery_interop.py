"""Discovery extensions against libtorrent: BEP 9 metadata both ways, BEP 11 PEX both ways.

libtorrent sends its first ut_pex message to a peer as soon as it has two or more peers, then
once a minute; every test here orders its connections so that the first message is the one that
matters, which keeps the file well under two minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.api import Session
from ccbt_engine.magnet import Magnet
from ccbt_engine.metainfo import parse_torrent
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import (
    LibtorrentPeer,
    MadeTorrent,
    MiniTracker,
    make_torrent,
    sha256_tree,
)
from tests.unit.test_ext_magnet import HostileMetadataPeer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SCRIPT = Path(__file__).with_name("lt_discovery_peer.py")
PIECE = 64 * 1024
PEX_SOURCE = 4  # libtorrent peer_info.source bit
#: slow enough that leechers stay leechers (seeds disconnect each other) while PEX happens
THROTTLE = {"upload_rate_limit": 200_000}


class LtDiscoveryPeer(LibtorrentPeer):
    """A :class:`LibtorrentPeer` that can start from a magnet link and list its peers."""

    def __init__(self, torrent: Path | None, save_path: Path, *, magnet: str = "", **kw: Any):
        super().__init__(torrent or Path("-"), save_path, **kw)
        self.magnet = magnet

    def argv(self) -> list[str]:
        argv = super().argv()
        argv[1] = str(SCRIPT)
        if self.magnet:
            i = argv.index("--torrent")
            argv[i : i + 2] = ["--magnet", self.magnet]
        return argv

    def peers(self) -> list[dict[str, Any]]:
        return list(self.send({"cmd": "peers"})["peers"])


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


@pytest.fixture
def made(payload_16m: Path, tmp_path: Path) -> MadeTorrent:
    return make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent", "hybrid")


def _magnet(made: MadeTorrent, peers: list[tuple[str, int]] = (), **kw: Any) -> str:  # type: ignore[assignment]
    return Magnet(
        info_hash_v1=made.info_hash_v1,
        info_hash_v2=made.info_hash_v2,
        display_name=made.name,
        peers=list(peers),
        **kw,
    ).to_uri()


async def _until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_ccbt_fetches_metadata_from_libtorrent(
    ccbt: Session, made: MadeTorrent, payload_16m: Path, tmp_path: Path
) -> None:
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        uri = _magnet(made, [("127.0.0.1", seeder.port)])
        handle = await ccbt.add_magnet(uri, tmp_path / "dl")
        assert handle.status().state == "metadata"
        status = await handle.wait_finished(timeout=60)
    assert status.state == "seeding" and status.hash_failures == 0
    assert handle.info.info_hash_v1 == made.info_hash_v1
    assert handle.info.info_hash_v2 == made.info_hash_v2
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload_16m)


async def test_libtorrent_fetches_metadata_from_ccbt(
    ccbt: Session, made: MadeTorrent, payload_16m: Path, tmp_path: Path
) -> None:
    await ccbt.add_torrent(made.path, made.save_path)
    (tmp_path / "lt").mkdir()
    with LtDiscoveryPeer(None, tmp_path / "lt", seed=False, magnet=_magnet(made)) as leecher:
        await asyncio.to_thread(leecher.connect, "127.0.0.1", ccbt.listen_port)
        await leecher.wait_finished_async(60)
        assert leecher.alerts("metadata_received"), leecher.output_tail()
    assert sha256_tree(tmp_path / "lt" / made.name) == sha256_tree(payload_16m)


async def test_ccbt_learns_a_peer_from_libtorrent_pex(
    ccbt: Session, made: MadeTorrent, tmp_path: Path
) -> None:
    """libtorrent A seeds, libtorrent B is connected to A; ccbt knows only A."""
    with (
        LtDiscoveryPeer(made.path, made.save_path, seed=True, extra_settings=THROTTLE) as a,
        LtDiscoveryPeer(made.path, tmp_path / "b", seed=False) as b,
    ):
        await asyncio.to_thread(b.connect, "127.0.0.1", a.port)
        await asyncio.to_thread(b.wait_for, lambda s: s["num_peers"] >= 1, 20)
        # B would otherwise learn ccbt from A's PEX and dial it first (then it is "incoming")
        await asyncio.to_thread(
            b.apply_settings, {"enable_outgoing_tcp": False, "enable_outgoing_utp": False}
        )
        handle = await ccbt.add_torrent(made.path, tmp_path / "ccbt")
        handle.connect_peer("127.0.0.1", a.port)

        def learned_b() -> bool:
            return any(
                p.address == f"127.0.0.1:{b.port}" and p.source == "pex" for p in handle.peers()
            )

        await _until(learned_b, 30, f"ccbt connected to B ({b.port}) through PEX")


async def test_libtorrent_learns_a_peer_from_ccbt_pex(
    ccbt: Session, made: MadeTorrent, tmp_path: Path
) -> None:
    """ccbt is connected to libtorrent seeds X and Y; libtorrent Z knows only ccbt."""
    with (
        LtDiscoveryPeer(made.path, made.save_path, seed=True, extra_settings=THROTTLE) as x,
        LtDiscoveryPeer(made.path, made.save_path, seed=True, extra_settings=THROTTLE) as y,
        LtDiscoveryPeer(made.path, tmp_path / "z", seed=False) as z,
    ):
        handle = await ccbt.add_torrent(made.path, tmp_path / "ccbt")
        handle.connect_peer("127.0.0.1", x.port)
        handle.connect_peer("127.0.0.1", y.port)
        await _until(lambda: len(handle.peers()) >= 2, 20, "ccbt connected to X and Y")
        await asyncio.to_thread(z.connect, "127.0.0.1", ccbt.listen_port)
        wanted = {x.port, y.port}
        deadline = time.monotonic() + 30
        via_pex: list[dict[str, Any]] = []
        while not via_pex and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            peers = await asyncio.to_thread(z.peers)
            via_pex = [p for p in peers if p["port"] in wanted and p["source"] & PEX_SOURCE]
        assert via_pex, f"Z never connected to X or Y via PEX: {peers}"


async def test_select_only_magnet_from_libtorrent(
    ccbt: Session, made: MadeTorrent, payload_16m: Path, tmp_path: Path
) -> None:
    """BEP 53: only the files named by so= are downloaded (indices of the info dict's list)."""
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        uri = _magnet(made, [("127.0.0.1", seeder.port)], select_only=[0, 2])
        handle = await ccbt.add_magnet(uri, tmp_path / "dl")
        await handle.wait_finished(timeout=60)
        files = handle.files()
    chosen = [f for f in files if f.priority > 0]
    assert [f.index for f in chosen] == [0, 2]
    for f in files:
        path = tmp_path / "dl" / f.path
        if f.priority > 0:
            assert path.read_bytes() == (made.save_path / f.path).read_bytes()
        elif not f.is_pad and f.size > 4 * PIECE:
            assert not path.exists() or path.stat().st_size < f.size  # skipped, not fetched


async def test_bad_metadata_is_rejected_and_fetched_from_libtorrent(
    ccbt: Session, made: MadeTorrent, payload_16m: Path, tmp_path: Path
) -> None:
    """A hostile peer answers ut_metadata with bytes that do not hash to the infohash."""
    size = len(parse_torrent(made.path.read_bytes()).info.raw_info)
    hostile = HostileMetadataPeer(made.info_hash, size)
    await hostile.start()
    try:
        with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
            uri = _magnet(made, [("127.0.0.1", hostile.port)])
            handle = await ccbt.add_magnet(uri, tmp_path / "dl")
            await _until(lambda: handle.status().hash_failures == 1, 20, "the bad metadata")
            handle.connect_peer("127.0.0.1", seeder.port)
            await handle.wait_finished(timeout=60)
    finally:
        await hostile.stop()
    assert hostile.requests > 0
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload_16m)


async def test_magnet_finds_libtorrent_through_its_tracker(
    ccbt: Session, made: MadeTorrent, payload_16m: Path, tmp_path: Path, mini_tracker: MiniTracker
) -> None:
    """No x.pe: the metadata phase announces to the magnet's tr= tracker to find the seeder."""
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        mini_tracker.add_peer(made.info_hash, "127.0.0.1", seeder.port)
        uri = _magnet(made, trackers=[mini_tracker.announce_url])
        handle = await ccbt.add_magnet(uri, tmp_path / "dl")
        await handle.wait_finished(timeout=60)
        assert [p.source for p in handle.peers()] in ([], ["tracker"])
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload_16m)
