"""A hostile BitTorrent peer for tests, speaking the real wire by hand over asyncio streams.

Each behaviour is one coroutine on a :class:`HostilePeer`. The peer connects *to* ccbt (or
listens for ccbt to dial it) from a loopback address of its own (127.0.0.2 and up), so that
banning or limiting it can never affect the honest reference peers, which live on 127.0.0.1.
Nothing here uses ccbt's own wire code: a bug shared by ccbt's encoder and parser could not
hide a protocol mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from dataclasses import dataclass, field

PSTR = b"\x13BitTorrent protocol"
#: reserved bits: BEP 6 fast extension (byte 7, 0x04)
FAST_RESERVED = bytes(7) + b"\x04"

REQUEST, PIECE, BITFIELD, UNCHOKE, INTERESTED, HAVE_ALL = 6, 7, 5, 1, 2, 14


def message(mid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def full_bitfield(num_pieces: int) -> bytes:
    nbytes = (num_pieces + 7) // 8
    bits = bytearray(b"\xff" * nbytes)
    spare = nbytes * 8 - num_pieces
    if spare:
        bits[-1] &= (0xFF << spare) & 0xFF
    return bytes(bits)


@dataclass
class HostilePeer:
    """One hostile connection's state; ``closed_by_remote`` is set when ccbt hangs up."""

    info_hash: bytes
    num_pieces: int
    source: str = "127.0.0.2"
    peer_id: bytes = field(default_factory=lambda: b"-HX0001-" + os.urandom(12))
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    received: int = 0
    sent: int = 0
    blocks_sent: int = 0
    requests_seen: int = 0
    closed_by_remote: bool = False

    # -- plumbing ---------------------------------------------------------------------------
    async def connect(self, port: int, host: str = "127.0.0.1") -> None:
        self.reader, self.writer = await asyncio.open_connection(
            host, port, local_addr=(self.source, 0)
        )

    async def send(self, data: bytes) -> bool:
        """Write and drain; False once ccbt has closed the connection."""
        assert self.writer is not None
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed_by_remote = True
            return False
        self.sent += len(data)
        return True

    async def handshake(self) -> bool:
        """Send ours (plaintext, fast bit), read ccbt's; False when ccbt refused."""
        assert self.reader is not None
        if not await self.send(PSTR + FAST_RESERVED + self.info_hash + self.peer_id):
            return False
        try:
            theirs = await asyncio.wait_for(self.reader.readexactly(68), 10)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_remote = True
            return False
        self.received += 68
        assert theirs[:20] == PSTR and theirs[28:48] == self.info_hash
        return True

    async def read_message(self) -> tuple[int, bytes] | None:
        """(id, payload) of ccbt's next message (-1 for keep-alive), None at EOF."""
        assert self.reader is not None
        try:
            (length,) = struct.unpack(">I", await self.reader.readexactly(4))
            body = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_remote = True
            return None
        self.received += 4 + length
        return (body[0], body[1:]) if body else (-1, b"")

    async def drain_until_closed(self, timeout: float) -> bool:
        """Read (and discard) everything ccbt sends until it hangs up; False on timeout."""
        try:
            while await asyncio.wait_for(self.read_message(), timeout) is not None:
                pass
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # -- behaviours -------------------------------------------------------------------------
    async def corrupt_seeder(self, port: int, timeout: float) -> bool:
        """Claim every piece, unchoke, answer each request with random bytes; True when cut off."""
        await self.connect(port)
        if not await self.handshake():
            return True
        await self.send(message(BITFIELD, full_bitfield(self.num_pieces)) + message(UNCHOKE))

        async def serve() -> None:
            while (msg := await self.read_message()) is not None:
                mid, payload = msg
                if mid != REQUEST:
                    continue
                self.requests_seen += 1
                index, begin, size = struct.unpack(">III", payload)
                block = struct.pack(">II", index, begin) + os.urandom(size)
                if not await self.send(message(PIECE, block)):
                    return
                self.blocks_sent += 1

        try:
            await asyncio.wait_for(serve(), timeout)
        except TimeoutError:
            return False
        return True

    async def request_flood(self, port: int, count: int, timeout: float) -> bool:
        """Ask for ``count`` blocks as fast as possible, ignoring the answers; True when cut off."""
        await self.connect(port)
        if not await self.handshake():
            return True
        reading = asyncio.create_task(self.drain_until_closed(timeout))
        await self.send(message(INTERESTED))
        batch: list[bytes] = []
        for i in range(count):
            batch.append(message(REQUEST, struct.pack(">III", i % self.num_pieces, 0, 16384)))
            if len(batch) == 100:
                if not await self.send(b"".join(batch)):
                    break
                batch.clear()
        if batch:
            await self.send(b"".join(batch))
        return await reading

    async def huge_length_prefix(
        self, port: int, announced: int, stream_limit: int, timeout: float
    ) -> bool:
        """Announce a piece message of ``announced`` bytes and keep streaming its body.

        Streams at most ``stream_limit`` bytes (one reused zero chunk, so the hostile side
        itself allocates almost nothing); True when ccbt closed the connection.
        """
        await self.connect(port)
        if not await self.handshake():
            return True
        reading = asyncio.create_task(self.drain_until_closed(timeout))
        header = struct.pack(">IBII", announced, PIECE, 0, 0)
        chunk = bytes(64 * 1024)
        ok = await self.send(header)
        while ok and self.sent < stream_limit and not reading.done():
            ok = await self.send(chunk)
        return await reading

    async def wrong_bitfield(self, port: int, size_delta: int, timeout: float) -> bool:
        """Send a bitfield ``size_delta`` bytes longer (or shorter) than the piece count needs;
        True when cut off."""
        await self.connect(port)
        if not await self.handshake():
            return True
        bits = full_bitfield(self.num_pieces)
        bits = bits + b"\xff" * size_delta if size_delta >= 0 else bits[:size_delta]
        await self.send(message(BITFIELD, bits))
        return await self.drain_until_closed(timeout)

    async def silent_incoming(self, port: int, timeout: float) -> bool:
        """Connect and never send a handshake; True when ccbt hangs up within ``timeout``."""
        await self.connect(port)
        return await self.drain_until_closed(timeout)


class SilentListener:
    """Accepts ccbt's outgoing connections and never answers them (not even MSE)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.accepted = 0
        self.hung_up = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while await reader.read(65536):
                pass  # swallow ccbt's handshake, answer nothing
            self.hung_up += 1
        except ConnectionError:
            self.hung_up += 1
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


async def connection_storm(
    port: int, source: str, count: int, batch: int = 50
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open ``count`` TCP connections from ``source`` (``batch`` at a time), sending nothing."""
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for start in range(0, count, batch):
        n = min(batch, count - start)
        conns.extend(
            await asyncio.gather(
                *(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                    for _ in range(n)
                )
            )
        )
    return conns
