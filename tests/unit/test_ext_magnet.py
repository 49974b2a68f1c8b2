"""Magnet links end to end between ccbt sessions on loopback: BEP 9 metadata fetch, BEP 53
select-only, hostile metadata, BEP 11 PEX between three sessions."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.api import Session, SessionError
from ccbt_engine.bencode import decode, encode
from ccbt_engine.create import create_torrent
from ccbt_engine.extensions.donthave import LtDontHave
from ccbt_engine.extensions.metadata import MAX_METADATA_SIZE, encode_data
from ccbt_engine.magnet import Magnet
from ccbt_engine.magnet_fetch import MagnetHandle
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.protocol import wire
from tests.engine_settings import loopback_settings
from tests.scripted_peer import ScriptedServer

pytestmark = pytest.mark.timeout(60)

PIECE = 64 * 1024


def _session() -> Session:
    return Session(loopback_settings(), listen_port=0)


async def _until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.02)


def _folder(root: Path, sizes: list[int], seed: int = 1) -> Path:
    folder = root / "payload"
    folder.mkdir(parents=True)
    rnd = random.Random(seed)
    for i, size in enumerate(sizes):
        (folder / f"f{i}.bin").write_bytes(rnd.randbytes(size))
    return folder


@pytest.fixture
async def seeder() -> AsyncIterator[Session]:
    async with _session() as session:
        yield session


@pytest.fixture
async def leecher() -> AsyncIterator[Session]:
    async with _session() as session:
        yield session


def _magnet(raw: bytes, peers: list[tuple[str, int]], **kw: Any) -> str:
    meta = parse_torrent(raw)
    return Magnet(
        info_hash_v1=meta.info.info_hash_v1,
        info_hash_v2=meta.info.info_hash_v2,
        display_name=meta.info.name,
        peers=peers,
        **kw,
    ).to_uri()


@pytest.mark.parametrize("version", ["v1", "hybrid"])
async def test_magnet_fetches_metadata_and_downloads(
    seeder: Session, leecher: Session, tmp_path: Path, version: str
) -> None:
    folder = _folder(tmp_path, [300_000, 5, 700_000])
    raw = create_torrent(folder, piece_length=PIECE, version=version, workers=1)  # type: ignore[arg-type]
    await seeder.add_torrent(raw, tmp_path)
    uri = _magnet(raw, [("127.0.0.1", seeder.listen_port)])
    handle = await leecher.add_magnet(uri, tmp_path / "dl")
    assert isinstance(handle, MagnetHandle)
    status = handle.status()
    assert status.name == "payload"
    assert status.state in ("metadata", "downloading", "checking")
    assert [h.info_hash for h in leecher.torrents()] == [handle.info_hash]
    await handle.wait_finished(timeout=30)
    assert handle.has_metadata
    assert handle.status().state == "seeding"
    assert handle.info.raw_info == parse_torrent(raw).info.raw_info
    for i in range(3):
        assert (tmp_path / "dl/payload" / f"f{i}.bin").read_bytes() == (
            folder / f"f{i}.bin"
        ).read_bytes()
    # the new torrent redialled the x.pe peer and kept its source
    assert [p.source for p in handle.peers()] in ([], ["magnet"])
    assert leecher.get(handle.info_hash).status().state == "seeding"


async def test_v2_only_magnet_fetches_the_piece_layers_and_downloads(
    seeder: Session, leecher: Session, tmp_path: Path
) -> None:
    """BEP 52: the piece layers a v2 info dict lacks come from the seeder as hash requests."""
    folder = _folder(tmp_path, [300_000, 5_000])
    raw = create_torrent(folder, piece_length=PIECE, version="v2", workers=1)
    await seeder.add_torrent(raw, tmp_path)
    uri = _magnet(raw, [("127.0.0.1", seeder.listen_port)])
    assert "btih" not in uri
    handle = await leecher.add_magnet(uri, tmp_path / "dl")
    status = await handle.wait_finished(timeout=30)
    assert status.state == "seeding" and status.hash_failures == 0
    assert handle.info.piece_layers == parse_torrent(raw).info.piece_layers
    assert (tmp_path / "dl/payload/f0.bin").read_bytes() == (folder / "f0.bin").read_bytes()


async def test_select_only_downloads_only_the_listed_files(
    seeder: Session, leecher: Session, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, [200_000, 300_000, 400_000])
    raw = create_torrent(folder, piece_length=16 * 1024, version="v1", workers=1)
    await seeder.add_torrent(raw, tmp_path)
    # so= indexes the info dict's file list (the creator orders it its own way)
    names = [f.path[-1] for f in parse_torrent(raw).info.files]
    chosen = names.index("f1.bin")
    uri = _magnet(raw, [("127.0.0.1", seeder.listen_port)], select_only=[chosen])
    handle = await leecher.add_magnet(uri, tmp_path / "dl")
    await handle.wait_finished(timeout=30)
    assert [f.priority for f in handle.files()] == [4 if i == chosen else 0 for i in range(3)]
    got = tmp_path / "dl/payload/f1.bin"
    assert got.read_bytes() == (folder / "f1.bin").read_bytes()
    assert not (tmp_path / "dl/payload/f0.bin").exists()
    status = handle.status()
    assert status.wanted_size < status.total_size


async def test_magnet_without_peers_stays_in_metadata_and_can_be_removed(
    leecher: Session, tmp_path: Path
) -> None:
    uri = Magnet(info_hash_v1=bytes(range(20)), display_name="nothing").to_uri()
    handle = await leecher.add_magnet(uri, tmp_path)
    assert handle.status().state == "metadata"
    assert handle.name == "nothing"
    assert handle.files() == [] and handle.pieces() == b"" and handle.trackers() == []
    with pytest.raises(SessionError):
        await leecher.add_magnet(uri, tmp_path)
    await handle.pause()
    assert handle.status().state == "paused"
    await handle.remove()
    assert leecher.torrents() == []
    with pytest.raises(SessionError):
        leecher.get(handle.info_hash)


async def test_hybrid_magnet_answers_incoming_peers_of_either_swarm(
    leecher: Session, tmp_path: Path
) -> None:
    """Peers of a hybrid's v2 swarm dial in with the truncated v2 hash: the magnet in its
    metadata phase must answer them (and their MSE SKEY) as it answers the v1 hash."""
    v1, v2 = bytes(range(20)), bytes(range(100, 132))
    uri = Magnet(info_hash_v1=v1, info_hash_v2=v2, display_name="both").to_uri()
    await leecher.add_magnet(uri, tmp_path)
    core = leecher._core
    for wire_hash in (v1, v2[:20]):
        found = core.lookup_torrent(wire_hash)
        assert found is not None and found[1:] == (wire_hash, 0)
        assert wire_hash in core._magnet_hashes()
    assert core.lookup_torrent(bytes(20)) is None


class HostileMetadataPeer(ScriptedServer):
    """Speaks just enough of the wire to offer metadata: wrong bytes, or an absurd size."""

    def __init__(self, info_hash: bytes, size: int, *, oversize: bool = False) -> None:
        self.info_hash = info_hash
        self.size = size
        self.oversize = oversize
        self.requests = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(68)
            writer.write(wire.encode_handshake(self.info_hash, b"-XX0000-hostilepeer1"))
            claimed = MAX_METADATA_SIZE + 1 if self.oversize else self.size
            hs = encode({b"m": {b"ut_metadata": 7}, b"metadata_size": claimed})
            writer.write(wire.encode_extended(0, hs))
            await writer.drain()
            their_id = 0
            while True:
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                body = await reader.readexactly(length)
                if length < 2 or body[0] != 20:
                    continue
                if body[1] == 0:  # their handshake: which id they receive ut_metadata under
                    their_id = decode(body[2:], strict=False)[b"m"][b"ut_metadata"]
                    continue
                msg = decode(body[2:])
                self.requests += 1
                piece = msg[b"piece"]
                chunk = min(16384, self.size - piece * 16384)
                payload = encode_data(piece, self.size, b"\xee" * chunk)
                writer.write(wire.encode_extended(their_id, payload))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("oversize", [False, True])
async def test_hostile_metadata_is_rejected_and_fetched_from_another_peer(
    seeder: Session, leecher: Session, tmp_path: Path, oversize: bool
) -> None:
    folder = _folder(tmp_path, [100_000, 200_000])
    raw = create_torrent(folder, piece_length=16 * 1024, version="v1", workers=1)
    meta = parse_torrent(raw)
    hostile = HostileMetadataPeer(meta.info.info_hash, len(meta.info.raw_info), oversize=oversize)
    await hostile.start()
    try:
        uri = _magnet(raw, [("127.0.0.1", hostile.port)])
        handle = await leecher.add_magnet(uri, tmp_path / "dl")
        assert isinstance(handle, MagnetHandle)
        if oversize:
            await asyncio.sleep(1.0)
            assert hostile.requests == 0, "requested metadata larger than the limit"
        else:
            await _until(lambda: handle.status().hash_failures == 1, what="hash failure")
            assert not handle.has_metadata
        await seeder.add_torrent(raw, tmp_path)
        handle.connect_peer("127.0.0.1", seeder.listen_port)
        await handle.wait_finished(timeout=30)
        assert hashlib.sha1(handle.info.raw_info).digest() == meta.info.info_hash
    finally:
        await hostile.stop()


async def test_pex_between_three_ccbt_sessions(tmp_path: Path) -> None:
    """A seeds; B connects to A; C connects only to A and learns B from A's ut_pex."""
    folder = _folder(tmp_path, [500_000])
    raw = create_torrent(folder, piece_length=PIECE, version="v1", workers=1)
    async with _session() as a, _session() as b, _session() as c:
        ha = await a.add_torrent(raw, tmp_path)
        ha.set_limits(upload=20_000)  # B and C must stay leechers (seeds drop each other)
        hb = await b.add_torrent(raw, tmp_path / "b")
        hc = await c.add_torrent(raw, tmp_path / "c")
        hb.connect_peer("127.0.0.1", a.listen_port)
        await _until(lambda: len(ha.peers()) == 1, what="B connected to A")
        hc.connect_peer("127.0.0.1", a.listen_port)

        def c_knows_b() -> bool:
            return any(
                p.source == "pex" and p.address == f"127.0.0.1:{b.listen_port}" for p in hc.peers()
            )

        await _until(c_knows_b, timeout=15, what="C connected to B through PEX")


async def test_ccbt_magnet_cli_downloads(seeder: Session, tmp_path: Path) -> None:
    folder = _folder(tmp_path, [150_000, 90_000])
    raw = create_torrent(folder, piece_length=16 * 1024, version="v1", workers=1)
    await seeder.add_torrent(raw, tmp_path)
    config = tmp_path / "ccbt.toml"
    config.write_text(
        '[network]\nlisten_interfaces = ["127.0.0.1"]\nenable_dht = false\n'
        "enable_lsd = false\nenable_upnp = false\nenable_natpmp = false\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CCBT_CONFIG_DIR": str(tmp_path / "cfg"),
        "CCBT_LOCAL_CONFIG": str(config),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "HOME": str(tmp_path),
    }
    uri = _magnet(raw, [])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccbt_engine",
        "magnet",
        uri,
        "-o",
        str(tmp_path / "out"),
        "--port",
        "0",
        "--peer",
        f"127.0.0.1:{seeder.listen_port}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, out.decode()
    assert b"metadata received" in out
    for name in ("f0.bin", "f1.bin"):
        assert (tmp_path / "out/payload" / name).read_bytes() == (folder / name).read_bytes()


def test_ccbt_magnet_cli_rejects_a_bad_link() -> None:
    from click.testing import CliRunner

    from ccbt_engine.cli.main import cli

    result = CliRunner().invoke(cli, ["magnet", "magnet:?xt=urn:btih:nothex"])
    assert result.exit_code == 2 and "URI" in result.output


async def test_lt_donthave_takes_a_piece_out_of_the_peers_bitfield(
    seeder: Session, leecher: Session, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, [200_000])
    raw = create_torrent(folder, piece_length=16 * 1024, version="v1", workers=1)
    hs = await seeder.add_torrent(raw, tmp_path)
    # nothing wanted: the leecher stays connected to the seed without finishing
    hl = await leecher.add_torrent(raw, tmp_path / "dl", file_priorities=[0])
    hl.connect_peer("127.0.0.1", seeder.listen_port)
    ih = bytes.fromhex(hs.info_hash)
    lt = leecher._core.torrents[ih]
    await _until(lambda: any(p.is_seed for p in lt.peers.values()), what="seed bitfield")
    await _until(lambda: len(seeder._core.torrents[ih].extensions.peer_list()) == 1, what="ext")
    donthave = seeder._core.torrents[ih].extensions.get("lt_donthave")
    assert isinstance(donthave, LtDontHave) and donthave.broadcast(3) == 1
    (ps,) = lt.peers.values()
    await _until(lambda: not ps.bitfield[3], what="lt_donthave applied")
    assert ps.bitfield[2] and lt.picker.availability(3) == 0 and lt.picker.availability(2) == 1
