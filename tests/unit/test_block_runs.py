"""A read's PIECE messages handled as one run (``Torrent.on_peer_pieces``), against a scripted peer.

The parser hands the torrent every run of consecutive PIECE messages in one call; inside the run
each block must still be judged on its own: what we requested with the size we asked for is
kept, a duplicate, an unrequested block or a short one is wasted (and counted), and the request
a short block used up is asked again. The peer here is a raw socket script, so the blocks land
in one read exactly as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest

from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.protocol import wire
from tests.engine_settings import loopback_settings
from tests.scripted_peer import ScriptedServer

pytestmark = pytest.mark.timeout(60)

PIECE = 64 * 1024
BLOCK = 16 * 1024
PIECES = 4


class ScriptedSeeder(ScriptedServer):
    """Has every piece; answers the first batch of requests with junk mixed in, in one write."""

    def __init__(self, info_hash: bytes, payload: bytes) -> None:
        self.info_hash = info_hash
        self.payload = payload
        self.served = 0

    def _block(self, index: int, begin: int, length: int) -> bytes:
        start = index * PIECE + begin
        return wire.encode_piece(index, begin, self.payload[start : start + length])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = wire.WireParser(expect_handshake=True, num_pieces=PIECES)
        first = True
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            writer.write(wire.encode_handshake(self.info_hash, b"-XX0000-scriptedpeer"))
            writer.write(wire.encode_bitfield(b"\xf0") + wire.encode_unchoke())
            while data := await reader.read(65536):
                requests = [e for e in parser.feed(data) if isinstance(e, wire.Request)]
                if not requests:
                    continue
                if first:
                    # one write, so one read on the other side: a duplicate of the first block,
                    # the rest as asked, and the last one short (its request is then used up)
                    first = False
                    *rest, last = requests
                    out = [self._block(rest[0].index, rest[0].begin, rest[0].length)]
                    out += [self._block(r.index, r.begin, r.length) for r in rest]
                    out.append(self._block(last.index, last.begin, 100))
                else:
                    out = [self._block(r.index, r.begin, r.length) for r in requests]
                self.served += len(out)
                writer.write(b"".join(out))
                await writer.drain()
        writer.close()


async def test_a_run_keeps_what_was_asked_and_wastes_the_rest(tmp_path: Path) -> None:
    payload = random.Random(7).randbytes(PIECE * PIECES)
    source = tmp_path / "src" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(payload)
    raw = create_torrent(source, piece_length=PIECE, version="v1", workers=1)
    peer = ScriptedSeeder(parse_torrent(raw).info.info_hash, payload)
    await peer.start()
    try:
        settings = loopback_settings(security={"encryption": "disabled"})  # plain bytes to script
        async with Session(settings, listen_port=0) as session:
            handle = await session.add_torrent(raw, tmp_path / "dl")
            handle.connect_peer("127.0.0.1", peer.port)
            status = await handle.wait_finished(timeout=30)
    finally:
        await peer.stop()
    assert (tmp_path / "dl" / "blob.bin").read_bytes() == payload
    assert status.hash_failures == 0
    # the duplicate block and the short one, nothing else
    assert status.wasted == BLOCK + 100
    assert peer.served > PIECE * PIECES // BLOCK + 1  # the short block's request came again
