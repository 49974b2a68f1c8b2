"""Smart ban end to end: a liar and an honest libtorrent seeder share pieces; only the liar goes.

The hostile peer speaks the real wire by hand (on 127.0.0.2, so banning its address leaves the
honest peer on 127.0.0.1 alone). It claims every piece, serves corrupt blocks of every other
piece it is asked for (the first included) and correct blocks of the others, but only ever the
first half of a piece: a request for
the second half makes it choke ccbt for a moment. A choke without the fast extension drops
ccbt's outstanding requests, so the rest of each piece it started comes from the honest seeder:
every corrupt piece fails with both peers' blocks in it, and the hostile peer is never the sole
contributor of a failed piece. Only smart ban (comparing the failed blocks with the verified
piece) can tell them apart.
"""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session
from ccbt_engine.metainfo import load_torrent
from tests.engine_settings import loopback_settings
from tests.interop.hostile import BITFIELD, PSTR, UNCHOKE, full_bitfield, message
from tests.interop.refpeers import LibtorrentPeer, MadeTorrent, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PIECE = 256 * 1024
HOSTILE = "127.0.0.2"
#: the hostile peer serves blocks before this offset of a piece, and chokes on the others
HALF = PIECE // 2
CHOKE_PAUSE = 0.2


def _flat_payload(made: MadeTorrent) -> bytes:
    """The torrent's piece space as bytes (pad files as zeros)."""
    info = load_torrent(made.path).info
    parts = []
    for f in info.files:
        if f.is_pad:
            parts.append(bytes(f.length))
        else:
            parts.append((made.save_path / Path(*f.path)).read_bytes())
    return b"".join(parts)


class HalfLiar:
    """Serves every piece; corrupts every other piece in the order it is asked for them."""

    def __init__(self, made: MadeTorrent) -> None:
        self.info_hash = made.info_hash
        self.data = _flat_payload(made)
        self.num_pieces = -(-len(self.data) // PIECE)
        #: piece -> corrupt? (decided when the piece is first requested)
        self.corrupt: dict[int, bool] = {}
        self.good_sent = 0
        self.bad_sent = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.closed_connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, HOSTILE, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _block(self, index: int, begin: int, size: int) -> bytes:
        if self.corrupt.setdefault(index, len(self.corrupt) % 2 == 0):
            self.bad_sent += 1
            return os.urandom(size)
        self.good_sent += 1
        start = index * PIECE + begin
        return self.data[start : start + size]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        choking = False

        def unchoke() -> None:
            nonlocal choking
            if not writer.is_closing():
                writer.write(struct.pack(">IB", 1, 1))
            choking = False

        try:
            await reader.readexactly(68)
            writer.write(PSTR + bytes(8) + self.info_hash + b"-XX0001-" + os.urandom(12))
            writer.write(message(BITFIELD, full_bitfield(self.num_pieces)) + message(UNCHOKE))
            while True:
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                if length == 0:
                    continue
                body = await reader.readexactly(length)
                if body[0] != 6 or choking:
                    continue  # requests sent while choked were dropped by the choke
                index, begin, size = struct.unpack(">III", body[1:13])
                if begin >= HALF:
                    choking = True
                    writer.write(struct.pack(">IB", 1, 0))  # choke: ccbt drops every request
                    loop.call_later(CHOKE_PAUSE, unchoke)
                    continue
                block = self._block(index, begin, size)
                writer.write(struct.pack(">IBII", 9 + size, 7, index, begin) + block)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed_connections += 1
            writer.close()


async def test_smart_ban_bans_the_liar_and_spares_the_honest_seeder(
    payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    liar = HalfLiar(made)
    await liar.start()
    banned: list[ev.PeerBanned] = []
    failed: list[ev.PieceHashFailed] = []
    settings = loopback_settings(security={"encryption": "disabled"})
    throttle = {"upload_rate_limit": 3 * 1024 * 1024}
    try:
        async with Session(settings, listen_port=0) as session:
            session.subscribe(lambda e: banned.append(e) if isinstance(e, ev.PeerBanned) else None)
            session.subscribe(
                lambda e: failed.append(e) if isinstance(e, ev.PieceHashFailed) else None
            )
            with LibtorrentPeer(
                made.path, made.save_path, seed=True, extra_settings=throttle
            ) as seeder:
                handle = await session.add_torrent(made.path, tmp_path / "dl")
                handle.connect_peer(HOSTILE, liar.port)
                # a head start: the liar starts a corrupt piece that the seeder must finish
                for _ in range(200):
                    if liar.bad_sent >= 4:
                        break
                    await asyncio.sleep(0.05)
                assert liar.bad_sent >= 4, "ccbt never asked the liar for blocks"
                handle.connect_peer("127.0.0.1", seeder.port)
                status = await handle.wait_finished(timeout=60)
                # judging runs on the disk pool after the pass: give the last verdicts a moment
                for _ in range(50):
                    if banned:
                        break
                    await asyncio.sleep(0.1)
                bans = {b.address: b.reason for b in session.banned_peers()}
    finally:
        await liar.stop()

    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(payload_16m)
    assert status.hash_failures >= 1
    assert liar.bad_sent > 0
    # the honest seeder was in failed pieces: without smart ban it would look as guilty
    mixed = [
        e
        for e in failed
        if any(p.startswith("127.0.0.1:") for p in e.peers)
        and any(p.startswith(HOSTILE) for p in e.peers)
    ]
    assert mixed, f"no failed piece had blocks from both peers: {failed}"
    assert not any(e.peers == (f"{HOSTILE}:{liar.port}",) for e in failed), "liar was sole sender"
    # the liar is banned, by smart ban, with its reason in the event and in the facade
    assert banned, "the liar was never banned"
    assert all(e.address.startswith(HOSTILE) for e in banned), banned
    assert "smart ban" in banned[0].reason
    assert HOSTILE in bans and "smart ban" in bans[HOSTILE]
    assert not any(a.startswith("127.0.0.1") for a in bans)
