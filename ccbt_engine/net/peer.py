"""asyncio shell for one peer connection: moves bytes between a transport and the wire core.

The connection knows the wire (handshake, message framing, flow control, byte counters) but not
the torrent's strategy; everything after the handshake is handed to a :class:`PeerHandler` (the
torrent), which decides what to request, what to upload and when to choke.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from asyncio import selector_events
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from ccbt_engine.net.encrypted import EncryptionPolicy, StreamCrypto
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.mse import MSEError, SkeyLookup
from ccbt_engine.protocol.wire import ProtocolError, WireParser

if TYPE_CHECKING:
    from ccbt_engine.protocol.wire import Event

log = logging.getLogger(__name__)

#: receive/send socket buffers for fast peers (see :func:`fixed_buffer_options`)
SOCKET_BUFFER = 4 * 1024 * 1024
#: Linux caps SO_RCVBUF / SO_SNDBUF at these sysctls (stock value: 208 KiB)
_BUFFER_MAX_SYSCTLS = {
    socket.SO_RCVBUF: "/proc/sys/net/core/rmem_max",
    socket.SO_SNDBUF: "/proc/sys/net/core/wmem_max",
}
_fixed_options: tuple[int, ...] | None = None


#: read size while MSE/RC4 sits between the socket and the parser (asyncio's own default),
#: reached by doubling from :data:`HANDSHAKE_BUFFER` once the peer is established
SCRATCH_BUFFER = 256 * 1024
#: receive buffers until the handshake matched a torrent: a connection that never becomes a
#: peer (a scan, a flood of half-open handshakes from a hostile host) costs this much, not
#: the 256 KiB / 1 MiB a fast established peer reads with
HANDSHAKE_BUFFER = 4 * 1024


def fixed_buffer_options() -> tuple[int, ...]:
    """The socket buffer options to fix at :data:`SOCKET_BUFFER` for a TCP peer (read once).

    Setting a TCP buffer turns the kernel's autotuning of it off for that socket. Where the
    system grants the full size (Linux with ``rmem_max``/``wmem_max`` raised, as on the
    benchmark machines) a fixed 4 MiB is a little faster on loopback than autotuning (728.8 vs
    705.9 MiB/s, same run); but a stock Linux caps the request at 208 KiB, and a window that
    small holds one connection to ~2 MiB/s at 100 ms of round trip, where autotuning would grow
    it to 6 MiB. So a buffer is fixed only where the full size is granted, and never outside
    Linux (Windows and macOS autotune both directions too; libtorrent leaves them to it).
    """
    global _fixed_options
    if _fixed_options is None:
        options = []
        for option, path in _BUFFER_MAX_SYSCTLS.items():
            try:
                with open(path, encoding="ascii") as f:
                    granted = int(f.read().strip())
            except (OSError, ValueError):
                continue  # not Linux, or not readable: leave autotuning alone
            if granted >= SOCKET_BUFFER:
                options.append(option)
        _fixed_options = tuple(options)
    return _fixed_options


class PeerHandler(Protocol):
    """What a connection reports to once the handshake has matched a torrent."""

    def on_peer_connected(self, conn: PeerConnection) -> str | None:
        """Handshake matched: set the peer up; return a reason to refuse it, or None."""
        ...

    def on_peer_event(self, conn: PeerConnection, event: Event) -> None: ...

    def on_peer_batch_end(self, conn: PeerConnection) -> None:
        """Every event of one read has been delivered (batch work such as sending requests)."""
        ...

    def on_peer_closed(self, conn: PeerConnection, reason: str) -> None: ...

    def on_peer_writable(self, conn: PeerConnection) -> None: ...


#: ``on_peer_pieces(conn, blocks)``: an optional PeerHandler method taking a run of PIECE
#: messages at once, as (index, begin, block) with the blocks valid only during the call
PiecesSink = Callable[["PeerConnection", list[tuple[int, int, memoryview]]], None]

#: ``on_peer_requests(conn, requests)``: an optional PeerHandler method taking a run of REQUEST
#: messages at once, as validated (index, begin, length) tuples
RequestsSink = Callable[["PeerConnection", list[tuple[int, int, int]]], None]

#: (info_hash) -> handler for it and its piece count, or None when we don't serve it
TorrentLookup = Callable[[bytes], "tuple[PeerHandler, bytes, int] | None"]


#: the standard loop's plain TCP transport: the only one whose socket :func:`_send_direct` may
#: write to (a TLS transport's socket carries records, uvloop's and uTP's are not this class)
_TCP_TRANSPORT: type | None = getattr(selector_events, "_SelectorSocketTransport", None)
#: at most this many parts per ``writev`` (POSIX guarantees 16, Linux takes 1024)
_MAX_IOV = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


def _direct_fd(transport: asyncio.BaseTransport) -> int | None:
    """The socket fd :func:`_send_direct` may use for ``transport``, or None."""
    if _TCP_TRANSPORT is None or type(transport) is not _TCP_TRANSPORT:
        return None
    if not hasattr(os, "writev") or transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


def _send_direct(
    transport: asyncio.Transport, fd: int, parts: list[bytes | memoryview]
) -> list[bytes | memoryview]:
    """Write ``parts`` straight to the socket while the transport has nothing queued.

    Returns what is left for the transport to queue (usually nothing). Only an empty write
    buffer keeps the byte order: anything queued must go first. Any error is left to the
    transport, which meets it again on its own write and closes the connection properly.
    """
    if transport.get_write_buffer_size() or transport.is_closing() or len(parts) > _MAX_IOV:
        return parts
    try:
        sent = os.writev(fd, parts)
    except (BlockingIOError, InterruptedError):
        return parts
    except OSError:
        return parts
    for i, part in enumerate(parts):
        size = len(part)
        if sent < size:
            rest = parts[i:]
            if sent:
                rest[0] = memoryview(part)[sent:]
            return rest
        sent -= size
    return []


class PeerConnection(asyncio.BufferedProtocol, asyncio.Protocol):
    """One TCP connection to a peer, from connect/accept until close.

    ``outgoing`` connections know their torrent from the start and send the handshake on
    connect; incoming ones wait for the remote handshake and find the torrent by infohash.

    A ``BufferedProtocol``: a plaintext TCP connection is read straight into the wire parser's
    reusable buffer (no fresh ``bytes`` per read) and every message goes to the handler as soon
    as it is parsed, a read's consecutive blocks as views of that buffer in one
    ``on_peer_pieces`` call (a handler without it gets a ``wire.Piece`` event each). MSE/RC4
    connections read into a scratch buffer and decrypt into the parser; uTP transports call
    :meth:`data_received`, so it is an ``asyncio.Protocol`` as well (asyncio's transports
    check for ``BufferedProtocol`` first).
    """

    def __init__(
        self,
        *,
        peer_id: bytes,
        lookup: TorrentLookup,
        outgoing_info_hash: bytes | None = None,
        admit: Callable[[str], str | None] | None = None,
        encryption: EncryptionPolicy = "disabled",
        skey_lookup: SkeyLookup | None = None,
    ) -> None:
        self.peer_id = peer_id
        #: MSE/PE between the socket and the parser (see net/encrypted.py); incoming MSE
        #: needs ``skey_lookup`` to find the torrent
        self.crypto = StreamCrypto(
            encryption, outgoing_skey=outgoing_info_hash, skey_lookup=skey_lookup
        )
        self._lookup = lookup
        #: incoming only: host -> reason to refuse it before a byte is exchanged, or None
        self._admit = admit
        self.info_hash = outgoing_info_hash
        self.outgoing = outgoing_info_hash is not None
        self.transport: asyncio.Transport | None = None
        self.address: tuple[str, int] = ("", 0)
        self.handler: PeerHandler | None = None
        self.remote: wire.Handshake | None = None
        self.parser = WireParser(expect_handshake=True, recv_buffer_max=HANDSHAKE_BUFFER)
        #: the handler's ``on_peer_pieces``, when it takes runs of blocks at once
        self._pieces_sink: PiecesSink | None = None
        #: the handler's ``on_peer_requests``, when it takes runs of requests at once
        self._requests_sink: RequestsSink | None = None
        self._scratch: memoryview | None = None
        #: the last read filled the scratch buffer: grow it (established peers only)
        self._scratch_full = False
        self._into_parser = True
        #: why reading is paused (``"rate"``: a download limit; ``"disk"``: write back-pressure);
        #: the transport reads again only when every reason is gone
        self._read_pauses: set[str] = set()
        self.handshake_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # incoming connections have nobody awaiting the handshake: mark failures as seen
        self.handshake_done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.closed = False
        self.close_reason = ""
        self.write_paused = False
        self.bytes_in = 0
        self.bytes_out = 0
        #: the socket's fd when :meth:`send_parts` may write to it directly (plain TCP on the
        #: standard event loop), else None
        self._direct_fd: int | None = None
        #: extra bookkeeping the handler keeps per connection
        self.state: object = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no isinstance check: uvloop's TCP transport is not an asyncio.Transport subclass,
        # and asserting it made every connection fail (the benchmark hung under uvloop)
        self.transport = t = cast(asyncio.Transport, transport)
        peername = t.get_extra_info("peername")
        if peername:
            self.address = (str(peername[0]), int(peername[1]))
        if self._admit is not None:
            refusal = self._admit(self.address[0])
            if refusal is not None:
                self.close(refusal)
                return
        sock = t.get_extra_info("socket")
        if sock is not None:
            try:
                for option in fixed_buffer_options():
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        t.set_write_buffer_limits(high=1024 * 1024, low=256 * 1024)
        self._direct_fd = _direct_fd(t)
        if self.outgoing:
            assert self.info_hash is not None
            t.write(self.crypto.start(wire.encode_handshake(self.info_hash, self.peer_id)))

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads next: the parser's own buffer for plaintext; a scratch
        buffer while MSE or RC4 stand between the socket and the parser."""
        if self.crypto.pending or self.crypto.encrypted:
            self._into_parser = False
            scratch = self._scratch
            if scratch is None:
                scratch = self._scratch = memoryview(bytearray(HANDSHAKE_BUFFER))
            elif self._scratch_full and self.handler is not None and len(scratch) < SCRATCH_BUFFER:
                scratch = self._scratch = memoryview(
                    bytearray(min(2 * len(scratch), SCRATCH_BUFFER))
                )
            return scratch
        self._into_parser = True
        return self.parser.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self.closed:
            return
        self.bytes_in += nbytes
        if not self._into_parser:
            assert self._scratch is not None
            self._scratch_full = nbytes == len(self._scratch)
            self._decrypt_and_parse(bytes(self._scratch[:nbytes]))
        else:
            try:
                self.parser.buffer_updated(nbytes, self)
            except ProtocolError as exc:
                self.close(f"protocol error: {exc}")
                return
        if self.handler is not None and not self.closed:
            self.handler.on_peer_batch_end(self)

    def data_received(self, data: bytes) -> None:
        """Bytes from a transport that does not use :meth:`get_buffer` (uTP, tests)."""
        if self.closed:
            return
        self.bytes_in += len(data)
        self._decrypt_and_parse(data)
        if self.handler is not None and not self.closed:
            self.handler.on_peer_batch_end(self)

    def _decrypt_and_parse(self, data: bytes) -> None:
        try:
            reply, data = self.crypto.receive(data)
        except MSEError as exc:
            self.close(f"encryption handshake failed: {exc}")
            return
        if reply and self.transport is not None:
            self.transport.write(reply)
        if not data:
            return
        try:
            self.parser.receive(data, self)
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}")

    # -- wire.WireSink: the parser calls these for each message, in order ------------------
    def on_event(self, event: Event) -> bool:
        """One parsed message (not a PIECE); True stops the parser (we are closing)."""
        if isinstance(event, wire.Handshake):
            return not self._accept_handshake(event)
        if self.handler is None:
            self.close("message before handshake")
            return True
        try:
            self.handler.on_peer_event(self, event)
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}")
        return self.closed

    def on_piece(self, index: int, begin: int, block: memoryview) -> bool:
        """A PIECE for a handler without ``on_peer_pieces``: an event with the block copied."""
        return self.on_event(wire.Piece(index, begin, bytes(block)))

    def on_pieces(self, blocks: list[tuple[int, int, memoryview]]) -> bool:
        """A run of PIECE messages (see :class:`wire.WireSink`), to the handler in one call."""
        sink = self._pieces_sink
        if sink is None:
            return any(self.on_piece(index, begin, block) for index, begin, block in blocks)
        try:
            sink(self, blocks)
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}")
        return self.closed

    def on_requests(self, requests: list[tuple[int, int, int]]) -> bool:
        """A run of REQUEST messages (see :class:`wire.WireSink`), to the handler in one call."""
        sink = self._requests_sink
        if sink is None:
            for index, begin, length in requests:
                if self.on_event(wire.Request(index, begin, length)):
                    return True
            return False
        try:
            sink(self, requests)
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}")
        return self.closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = self.close_reason or (str(exc) if exc else "connection closed")
        if not self.handshake_done.done():
            self.handshake_done.set_exception(ConnectionError(self.close_reason))
        if self.handler is not None:
            self.handler.on_peer_closed(self, self.close_reason)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.handler is not None and not self.closed:
            self.handler.on_peer_writable(self)

    # -- handshake -----------------------------------------------------------------------
    def _accept_handshake(self, hs: wire.Handshake) -> bool:
        if hs.peer_id == self.peer_id:
            self.close("connected to ourselves")
            return False
        if self.outgoing:
            found = self._lookup(hs.info_hash)
            # a hybrid torrent has two wire hashes (v1, truncated v2) and libtorrent answers with
            # the one its entry for our address prefers: over uTP, from our listen port, that
            # can be the v2 one although we sent v1. Either is fine if it is the same torrent.
            if hs.info_hash != self.info_hash:
                mine = self._lookup(self.info_hash) if self.info_hash is not None else None
                if found is None or mine is None or found[0] is not mine[0]:
                    self.close("peer answered with another infohash")
                    return False
        else:
            found = self._lookup(hs.info_hash)
            if found is None:
                self.close("unknown infohash")
                return False
        if found is None:
            self.close("torrent no longer active")
            return False
        if not self.outgoing and self.crypto.skey is not None and hs.info_hash != self.crypto.skey:
            self.close("handshake infohash differs from the encrypted one")
            return False
        handler, info_hash, num_pieces = found
        self.info_hash = info_hash
        self.remote = hs
        self.parser.set_num_pieces(num_pieces)
        if not self.outgoing and self.transport is not None:
            self.transport.write(self.crypto.send(wire.encode_handshake(info_hash, self.peer_id)))
        refusal = handler.on_peer_connected(self)
        if refusal is not None:
            self.close(refusal)
            return False
        self.handler = handler
        self._pieces_sink = getattr(handler, "on_peer_pieces", None)
        self._requests_sink = getattr(handler, "on_peer_requests", None)
        self.parser.recv_buffer_max = wire.RECV_BUFFER_MAX  # a peer now: read in large gulps
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)
        return True

    # -- sending ----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.bytes_out += len(data)
            self.transport.write(self.crypto.send(data))

    def send_parts(self, parts: list[bytes | memoryview]) -> None:
        """Send ``parts`` in order (piece headers and block views) without joining them.

        Python 3.11's ``transport.writelines`` joins the parts into one new ``bytes`` (a copy of
        every uploaded byte) and, when the socket does not take it all, copies it again into
        the write buffer. A plaintext TCP connection whose write buffer is empty instead hands
        the parts to the kernel in one ``os.writev`` (see :func:`_send_direct`); whatever the
        kernel does not take goes through the transport part by part, which copies each byte
        once; other transports (RC4, uTP, uvloop) get ``writelines`` as before.
        """
        t = self.transport
        if t is None or self.closed:
            return
        self.bytes_out += sum(len(p) for p in parts)
        if self.crypto.encrypted:
            parts = [self.crypto.send(p) for p in parts]
        elif self._direct_fd is not None:
            write = t.write
            for part in _send_direct(t, self._direct_fd, parts):
                write(part)  # queued: one copy into the buffer, where writelines makes two
            return
        t.writelines(parts)

    def pause_reading(self, reason: str = "rate") -> None:
        """Stop reading from the socket (TCP flow control then slows the peer) for ``reason``.

        Reasons are counted apart, so the rate limiter resuming cannot undo a pause the disk
        asked for, and the other way round.
        """
        self._read_pauses.add(reason)
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self, reason: str = "rate") -> None:
        """Drop ``reason``; read again once no other reason holds."""
        self._read_pauses.discard(reason)
        if self.transport is not None and not self.closed and not self._read_pauses:
            self.transport.resume_reading()

    @property
    def reading_paused(self) -> bool:
        return bool(self._read_pauses)

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        log.debug("closing %s:%d: %s", self.address[0], self.address[1], reason)
        if self.transport is not None:
            self.transport.close()

    @property
    def encrypted(self) -> bool:
        """RC4 carries this connection's payload (MSE with plaintext selected is not)."""
        return self.crypto.encrypted

    @property
    def mse_pending(self) -> bool:
        """Still inside the MSE handshake: a failure now may be a refusal of encryption."""
        return self.crypto.pending

    @property
    def address_text(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
