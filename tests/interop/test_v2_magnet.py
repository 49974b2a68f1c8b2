"""v2-only magnet links (``xt=urn:btmh:1220…``) against libtorrent, both directions.

The info dict of a v2 torrent names each file by its merkle root only; the piece layers that
check pieces come from peers as BEP 52 hash requests. So a v2-only magnet downloads only if
the downloader asks for them and the seeder answers with correct proofs: ccbt asking
libtorrent, and libtorrent asking ccbt.

The payload has a file of several pieces (more than 512 with 16 KiB pieces: two requests, the
second one padded), one smaller than a piece, one of exactly two pieces and a mid-sized one in
a folder, so pads, single-piece files and multi-range layers are all crossed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session
from ccbt_engine.bencode import decode, encode
from ccbt_engine.extensions.metadata import encode_data
from ccbt_engine.magnet import Magnet
from ccbt_engine.magnet_fetch import MagnetHandle
from ccbt_engine.merkle import num_uncles
from ccbt_engine.metainfo import load_torrent, parse_torrent
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.hashes import HashRequest, encode_hashes, parse_hash_message
from ccbt_engine.state import torrent_file_bytes
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import LibtorrentPeer, MadeTorrent, make_torrent, sha256_tree
from tests.scripted_peer import ScriptedServer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

SCRIPT = Path(__file__).with_name("lt_discovery_peer.py")
SIZES = {
    "big.bin": 8 * 1024 * 1024 + 100_000,  # > 512 pieces of 16 KiB: two hash requests
    "small.bin": 5_000,  # smaller than a piece: no piece layer at all
    "two.bin": 32 * 1024,  # exactly two 16 KiB pieces
    "sub/mid.bin": 300_000,
}


class LtMagnetPeer(LibtorrentPeer):
    """A :class:`LibtorrentPeer` started from a magnet link (``lt_discovery_peer.py``)."""

    def __init__(self, save_path: Path, magnet: str, **kw: Any) -> None:
        super().__init__(Path("-"), save_path, seed=False, **kw)
        self.magnet = magnet

    def argv(self) -> list[str]:
        argv = super().argv()
        argv[1] = str(SCRIPT)
        i = argv.index("--torrent")
        argv[i : i + 2] = ["--magnet", self.magnet]
        return argv


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v2payload") / "v2data"
    rng = random.Random(52)
    for rel, size in SIZES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


def _v2_magnet(made: MadeTorrent, peers: list[tuple[str, int]]) -> str:
    """The magnet a v2-only client would hand out: the v2 infohash and nothing of v1."""
    uri = Magnet(info_hash_v2=made.info_hash_v2, display_name=made.name, peers=peers).to_uri()
    assert "urn:btmh:1220" in uri and "urn:btih:" not in uri
    return uri


async def _until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("piece", [16 * 1024, 64 * 1024])
async def test_ccbt_downloads_v2_magnet_from_libtorrent(
    ccbt: Session, payload: Path, tmp_path: Path, piece: int
) -> None:
    made = make_torrent(payload, None, piece, tmp_path / "t.torrent", "v2")
    banned: list[ev.PeerBanned] = []
    ccbt.subscribe(lambda e: banned.append(e) if isinstance(e, ev.PeerBanned) else None)
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        uri = _v2_magnet(made, [("127.0.0.1", seeder.port)])
        handle = await ccbt.add_magnet(uri, tmp_path / "dl")
        status = await handle.wait_finished(timeout=120)
    assert status.state == "seeding"
    assert status.hash_failures == 0
    assert not banned
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload)
    # the reconstructed torrent carries the piece layers libtorrent wrote into its .torrent
    original = load_torrent(made.path).info
    assert handle.info.info_hash_v2 == made.info_hash_v2
    assert handle.info.piece_layers == original.piece_layers
    assert len(original.piece_layers) == 3 if piece == 16 * 1024 else 2
    exported = parse_torrent(torrent_file_bytes(None, handle.info))
    assert exported.info.piece_layers == original.piece_layers


@pytest.mark.parametrize("piece", [16 * 1024, 64 * 1024])
@pytest.mark.parametrize("version", ["v2", "hybrid"])
async def test_libtorrent_downloads_v2_magnet_from_ccbt(
    ccbt: Session, payload: Path, tmp_path: Path, version: str, piece: int
) -> None:
    made = make_torrent(payload, None, piece, tmp_path / "t.torrent", version)  # type: ignore[arg-type]
    seed = await ccbt.add_torrent(made.path, made.save_path)
    await _until(lambda: seed.status().state == "seeding", 60, "ccbt to seed")
    (tmp_path / "lt").mkdir()
    with LtMagnetPeer(tmp_path / "lt", _v2_magnet(made, [])) as leecher:
        await asyncio.to_thread(leecher.connect, "127.0.0.1", ccbt.listen_port)
        await leecher.wait_finished_async(120)
        assert leecher.alerts("metadata_received"), leecher.output_tail()
        assert not leecher.alerts("hash_failed"), leecher.output_tail()
    assert sha256_tree(tmp_path / "lt" / made.name) == sha256_tree(payload)
    # the layers came from us: at least one answer per file larger than a piece
    server = seed._t.hash_server
    assert server.served >= len(load_torrent(made.path).info.piece_layers)
    assert server.rejected == 0


class HostileHashPeer(ScriptedServer):
    """Serves the (true) metadata, then answers hash requests with hashes that do not prove.

    ``mode``: ``"nodes"`` sends random range hashes with random uncles; ``"uncles"`` sends the
    true range (copied from the real torrent) but forged uncles, so only the proof catches it;
    ``"silent"`` never answers them.
    """

    def __init__(self, raw_info: bytes, layers: dict[bytes, bytes], mode: str) -> None:
        self.raw_info = raw_info
        self.info_hash = hashlib.sha256(raw_info).digest()[:20]
        self.layers = layers
        self.mode = mode
        self.hash_requests = 0

    def _forge(self, req: HashRequest) -> bytes:
        rng = random.Random(req.index)
        n_uncles = num_uncles(req.length, req.proof_layers)
        if self.mode == "nodes":
            hashes = [rng.randbytes(32) for _ in range(req.length + n_uncles)]
        else:
            layer = self.layers[req.pieces_root]
            nodes = [layer[i : i + 32] for i in range(0, len(layer), 32)]
            nodes = nodes[req.index : req.index + req.length]
            nodes += [bytes(32)] * (req.length - len(nodes))
            hashes = nodes + [rng.randbytes(32) for _ in range(n_uncles)]
        return encode_hashes(req, hashes)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = len(self.raw_info)
        try:
            await reader.readexactly(68)
            writer.write(wire.encode_handshake(self.info_hash, b"-XX0000-hostilehash1"))
            hs = encode({b"m": {b"ut_metadata": 7}, b"metadata_size": size})
            writer.write(wire.encode_extended(0, hs) + wire.encode_have_all())
            await writer.drain()
            their_id = 0
            while True:
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                body = await reader.readexactly(length)
                if length >= 1 and body[0] == 21:
                    self.hash_requests += 1
                    req = parse_hash_message(21, body[1:])
                    assert isinstance(req, HashRequest)
                    if self.mode != "silent":
                        writer.write(self._forge(req))
                elif length >= 2 and body[0] == 20 and body[1] == 0:
                    their_id = decode(body[2:], strict=False)[b"m"][b"ut_metadata"]
                elif length >= 2 and body[0] == 20:
                    piece = decode(body[2:])[b"piece"]
                    chunk = self.raw_info[piece * 16384 : (piece + 1) * 16384]
                    writer.write(wire.encode_extended(their_id, encode_data(piece, size, chunk)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("mode", ["nodes", "uncles"])
async def test_forged_hashes_are_rejected_and_fetched_from_libtorrent(
    ccbt: Session, payload: Path, tmp_path: Path, mode: str
) -> None:
    made = make_torrent(payload, None, 16 * 1024, tmp_path / "t.torrent", "v2")
    original = load_torrent(made.path).info
    hostile = HostileHashPeer(original.raw_info, original.piece_layers, mode)
    await hostile.start()
    banned: list[ev.PeerBanned] = []
    ccbt.subscribe(lambda e: banned.append(e) if isinstance(e, ev.PeerBanned) else None)
    try:
        handle = await ccbt.add_magnet(
            _v2_magnet(made, [("127.0.0.1", hostile.port)]), tmp_path / "dl"
        )
        await _until(lambda: bool(banned), 30, "the forging peer to be banned")
        assert hostile.hash_requests >= 1
        assert isinstance(handle, MagnetHandle)
        assert not handle.has_metadata  # nothing of the forged layers went anywhere
        with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
            handle.connect_peer("127.0.0.1", seeder.port)
            status = await handle.wait_finished(timeout=120)
    finally:
        await hostile.stop()
    assert [b.address for b in banned] == [f"127.0.0.1:{hostile.port}"]
    assert status.state == "seeding" and status.hash_failures == 0
    assert handle.info.piece_layers == original.piece_layers
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload)


async def test_ccbt_to_ccbt_v2_magnet_and_restart(
    ccbt: Session, payload: Path, tmp_path: Path
) -> None:
    """Both halves of ccbt against each other; then the downloader restarts from its state
    folder alone (no peer): the saved .torrent copy must carry the fetched piece layers, or the
    recheck could not pass a single piece of a multi-piece file."""
    made = make_torrent(payload, None, 64 * 1024, tmp_path / "t.torrent", "v2")
    layers = load_torrent(made.path).info.piece_layers
    seed = await ccbt.add_torrent(made.path, made.save_path)
    await _until(lambda: seed.status().state == "seeding", 60, "ccbt to seed")
    state = tmp_path / "state"
    async with Session(loopback_settings(), listen_port=0, state_dir=state) as other:
        uri = _v2_magnet(made, [("127.0.0.1", ccbt.listen_port)])
        handle = await other.add_magnet(uri, tmp_path / "dl")
        status = await handle.wait_finished(timeout=60)
        assert status.state == "seeding" and status.hash_failures == 0
        assert handle.info.piece_layers == layers
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload)
    saved = load_torrent(state / "torrents" / f"{made.info_hash.hex()}.torrent")
    assert saved.info.piece_layers == layers
    for f in (state / "torrents").glob("*.resume"):  # force a full recheck from the copy
        f.unlink()
    async with Session(loopback_settings(), listen_port=0, state_dir=state) as again:
        (restored,) = again.torrents()
        await _until(lambda: restored.status().state == "seeding", 60, "the recheck")
        assert restored.status().hash_failures == 0
        assert restored.info.piece_layers == layers
        assert restored.status().pieces_have == restored.status().num_pieces  # all rechecked


async def test_pause_and_resume_during_the_layer_fetch(
    ccbt: Session, payload: Path, tmp_path: Path
) -> None:
    """A pause while the layers are being fetched keeps the info dict; resume fetches on."""
    made = make_torrent(payload, None, 16 * 1024, tmp_path / "t.torrent", "v2")
    original = load_torrent(made.path).info
    silent = HostileHashPeer(original.raw_info, original.piece_layers, "silent")
    await silent.start()
    try:
        uri = _v2_magnet(made, [("127.0.0.1", silent.port)])
        handle = await ccbt.add_magnet(uri, tmp_path / "dl")
        await _until(lambda: silent.hash_requests >= 1, 30, "the first hash request")
    finally:
        await silent.stop()  # no redial to it after the resume
    await handle.pause()
    assert handle.status().state == "paused"
    await handle.resume()
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        handle.connect_peer("127.0.0.1", seeder.port)
        status = await handle.wait_finished(timeout=120)
    assert status.state == "seeding" and status.hash_failures == 0
    assert handle.info.piece_layers == original.piece_layers
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload)
