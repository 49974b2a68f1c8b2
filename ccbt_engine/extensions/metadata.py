"""BEP 9 ``ut_metadata``: serve our info dictionary and fetch one for a magnet link.

Three layers: the message codec (:func:`decode_message`, ``encode_*``), a sans-I/O
:class:`MetadataAssembler` that decides which 16 KiB piece to ask which peer for and checks the
result against the infohash, and the :class:`UtMetadata` extension that moves messages.

The metadata comes from untrusted peers, so: the announced size is bounded
(:data:`MAX_METADATA_SIZE`), a data message must have exactly the expected length, and a
complete set whose hash does not match the infohash is thrown away. Who to blame is not obvious
when several peers contributed, so after a failure the next round is fetched from a single peer;
a single-source round that fails convicts that peer (it is reported in ``bad_peers``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final

from ccbt_engine.bencode import BencodeError, decode_prefix, encode
from ccbt_engine.extensions import Extension, ExtPeer
from ccbt_engine.protocol.wire import ProtocolError

__all__ = [
    "MAX_METADATA_SIZE",
    "METADATA_PIECE",
    "MetadataAssembler",
    "MetadataError",
    "MetadataMessage",
    "UtMetadata",
    "decode_message",
    "encode_data",
    "encode_reject",
    "encode_request",
]

METADATA_PIECE: Final = 16 * 1024
#: Largest info dictionary we fetch: a hostile peer's claim is held in memory, so bound it. 16 MiB
#: of SHA-1 hashes is ~800k pieces (terabytes of data); real info dicts are at most a few MiB.
MAX_METADATA_SIZE: Final = 16 * 1024 * 1024
REQUEST = 0
DATA = 1
REJECT = 2
#: seconds before an unanswered request may go to another peer
REQUEST_TIMEOUT: Final = 10.0
#: requests in flight per peer (pipelining: the whole of a small info dict in one round trip)
PIPELINE: Final = 8
#: requests per second we answer for one peer before rejecting (serving costs upload)
SERVE_BURST: Final = 64


class MetadataError(ProtocolError):
    """A malformed or impossible ut_metadata message."""


@dataclass(frozen=True, slots=True)
class MetadataMessage:
    msg_type: int
    piece: int
    total_size: int | None = None
    data: bytes = b""


def encode_request(piece: int) -> bytes:
    return encode({b"msg_type": REQUEST, b"piece": piece})


def encode_reject(piece: int) -> bytes:
    return encode({b"msg_type": REJECT, b"piece": piece})


def encode_data(piece: int, total_size: int, data: bytes) -> bytes:
    return encode({b"msg_type": DATA, b"piece": piece, b"total_size": total_size}) + data


def decode_message(payload: bytes) -> MetadataMessage:
    """Parse one ut_metadata payload; only :class:`MetadataError` escapes."""
    try:
        head, end = decode_prefix(payload, strict=False, max_depth=4)
    except BencodeError as exc:
        raise MetadataError(f"ut_metadata: bad bencode: {exc}") from exc
    if not isinstance(head, dict):
        raise MetadataError("ut_metadata: message is not a dictionary")
    msg_type = head.get(b"msg_type")
    piece = head.get(b"piece")
    if not isinstance(msg_type, int) or not isinstance(piece, int):
        raise MetadataError("ut_metadata: msg_type and piece must be integers")
    if not 0 <= piece < MAX_METADATA_SIZE // METADATA_PIECE + 1:
        raise MetadataError(f"ut_metadata: piece {piece} out of range")
    if msg_type == DATA:
        total = head.get(b"total_size")
        if not isinstance(total, int) or not 0 < total <= MAX_METADATA_SIZE:
            raise MetadataError("ut_metadata: data needs a total_size within bounds")
        data = bytes(payload[end:])
        if len(data) > METADATA_PIECE:
            raise MetadataError("ut_metadata: data longer than a metadata piece")
        return MetadataMessage(DATA, piece, total, data)
    if msg_type in (REQUEST, REJECT):
        if end != len(payload):
            raise MetadataError("ut_metadata: trailing bytes after a request or reject")
        return MetadataMessage(msg_type, piece)
    # BEP 9: unknown message types are ignored; report them as such to the caller
    return MetadataMessage(msg_type, piece)


def num_pieces(size: int) -> int:
    return -(-size // METADATA_PIECE)


def piece_length(size: int, piece: int) -> int:
    return min(METADATA_PIECE, size - piece * METADATA_PIECE)


@dataclass
class _Round:
    size: int
    pieces: list[bytes | None]
    #: piece -> (peer, time requested)
    in_flight: dict[int, tuple[Hashable, float]] = field(default_factory=dict)
    contributors: set[Hashable] = field(default_factory=set)
    #: single-source round: only this peer is asked
    owner: Hashable | None = None


class MetadataAssembler:
    """Which metadata piece to request from whom, and the verified result (sans-I/O).

    ``info_hash_v1`` is checked with SHA-1 and ``info_hash_v2`` with SHA-256; a magnet with both
    (hybrid) must match both.
    """

    def __init__(
        self,
        info_hash_v1: bytes | None,
        info_hash_v2: bytes | None,
        *,
        max_size: int = MAX_METADATA_SIZE,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if info_hash_v1 is None and info_hash_v2 is None:
            raise ValueError("need an infohash to verify metadata against")
        self.info_hash_v1 = info_hash_v1
        self.info_hash_v2 = info_hash_v2
        self.max_size = max_size
        self.request_timeout = request_timeout
        self.result: bytes | None = None
        #: peers convicted of sending metadata that fails the hash (or lying about its size)
        self.bad_peers: set[Hashable] = set()
        self.hash_failures = 0
        self._round: _Round | None = None
        self._solo = False
        self._rejected: dict[Hashable, set[int]] = {}

    @property
    def size(self) -> int | None:
        return self._round.size if self._round is not None else None

    @property
    def progress(self) -> float:
        """Share of the current round's pieces received (1.0 once verified)."""
        if self.result is not None:
            return 1.0
        rnd = self._round
        if rnd is None or not rnd.pieces:
            return 0.0
        return sum(1 for p in rnd.pieces if p is not None) / len(rnd.pieces)

    def size_ok(self, size: int | None) -> bool:
        return size is not None and 0 < size <= self.max_size

    def next_request(self, peer: Hashable, peer_size: int | None, now: float) -> int | None:
        """A piece to request from ``peer`` (whose handshake said ``peer_size``), or None."""
        if self.result is not None or peer in self.bad_peers or not self.size_ok(peer_size):
            return None
        assert peer_size is not None
        rnd = self._round
        if rnd is None:
            rnd = self._round = _Round(peer_size, [None] * num_pieces(peer_size))
        if rnd.size != peer_size:
            if rnd.contributors or rnd.in_flight:
                return None
            # nobody is working on the old size: that size's announcer is gone or silent
            rnd = self._round = _Round(peer_size, [None] * num_pieces(peer_size))
        if self._solo:
            if rnd.owner is None:
                rnd.owner = peer
            elif rnd.owner != peer:
                return None
        rejected = self._rejected.get(peer, set())
        for i, got in enumerate(rnd.pieces):
            if got is not None or i in rejected:
                continue
            flight = rnd.in_flight.get(i)
            if flight is not None and now - flight[1] < self.request_timeout:
                continue
            rnd.in_flight[i] = (peer, now)
            return i
        return None

    def on_data(self, peer: Hashable, piece: int, total_size: int, data: bytes) -> bytes | None:
        """Record a data message; returns the verified info dict once complete.

        Raises :class:`MetadataError` when the length is impossible for the piece.
        """
        rnd = self._round
        if self.result is not None or rnd is None or peer in self.bad_peers:
            return self.result
        if total_size != rnd.size:
            # not the metadata this round is assembling (a different claim): ignore it
            return None
        if not 0 <= piece < len(rnd.pieces):
            raise MetadataError(f"ut_metadata: piece {piece} beyond the metadata")
        if len(data) != piece_length(rnd.size, piece):
            raise MetadataError(f"ut_metadata: piece {piece} has the wrong length {len(data)}")
        if rnd.owner is not None and peer != rnd.owner:
            return None
        if rnd.pieces[piece] is not None:
            return None
        rnd.pieces[piece] = data
        rnd.in_flight.pop(piece, None)
        rnd.contributors.add(peer)
        if any(p is None for p in rnd.pieces):
            return None
        blob = b"".join(p for p in rnd.pieces if p is not None)
        if self._verify(blob):
            self.result = blob
            return blob
        self.hash_failures += 1
        if len(rnd.contributors) == 1:
            self.bad_peers |= rnd.contributors
        self._solo = True
        self._round = None
        return None

    def _verify(self, blob: bytes) -> bool:
        if self.info_hash_v1 is not None and hashlib.sha1(blob).digest() != self.info_hash_v1:
            return False
        return self.info_hash_v2 is None or hashlib.sha256(blob).digest() == self.info_hash_v2

    def on_reject(self, peer: Hashable, piece: int) -> None:
        """The peer will not give us ``piece``: ask someone else."""
        self._rejected.setdefault(peer, set()).add(piece)
        rnd = self._round
        if rnd is None:
            return
        flight = rnd.in_flight.get(piece)
        if flight is not None and flight[0] == peer:
            del rnd.in_flight[piece]
        if rnd.owner == peer:
            rnd.owner = None

    def peer_lost(self, peer: Hashable) -> None:
        self._rejected.pop(peer, None)
        rnd = self._round
        if rnd is None:
            return
        for piece in [i for i, (p, _) in rnd.in_flight.items() if p == peer]:
            del rnd.in_flight[piece]
        if rnd.owner == peer:
            # the single source left halfway: start its round over with the next peer
            self._round = None

    def outstanding(self, peer: Hashable) -> int:
        rnd = self._round
        return 0 if rnd is None else sum(1 for p, _ in rnd.in_flight.values() if p == peer)


class UtMetadata(Extension):
    """Serve our metadata (when we have it) and, for a magnet, fetch it.

    ``raw_info``: our info dict (None during a magnet's metadata phase: requests are then
    rejected). ``assembler`` + ``on_complete``: fetch mode; ``on_bad_peer`` is told about peers
    whose metadata failed the hash so the host can disconnect and ban them.
    """

    name = "ut_metadata"

    def __init__(
        self,
        raw_info: bytes | None,
        *,
        assembler: MetadataAssembler | None = None,
        on_complete: Callable[[bytes], None] | None = None,
        on_bad_peer: Callable[[ExtPeer, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.raw_info = raw_info
        self.assembler = assembler
        self.on_complete = on_complete
        self.on_bad_peer = on_bad_peer
        self._clock = clock
        #: peer -> (window start, requests served in it)
        self._served: dict[ExtPeer, tuple[float, int]] = {}

    def handshake_fields(self) -> dict[str, Any]:
        return {"metadata_size": len(self.raw_info)} if self.raw_info is not None else {}

    def on_handshake(self, peer: ExtPeer) -> None:
        self._request_more(peer, self._clock())

    def on_message(self, peer: ExtPeer, payload: bytes) -> None:
        msg = decode_message(payload)
        if msg.msg_type == REQUEST:
            self._serve(peer, msg.piece)
        elif msg.msg_type == DATA and self.assembler is not None:
            assert msg.total_size is not None
            done = self.assembler.on_data(peer, msg.piece, msg.total_size, msg.data)
            self._after_progress(done)
            self._request_more(peer, self._clock())
        elif msg.msg_type == REJECT and self.assembler is not None:
            self.assembler.on_reject(peer, msg.piece)
            for other in self.manager.peers():
                self._request_more(other, self._clock())

    def _after_progress(self, done: bytes | None) -> None:
        asm = self.assembler
        assert asm is not None
        if done is not None:
            self.assembler = None
            if self.on_complete is not None:
                self.on_complete(done)
            return
        for bad in list(asm.bad_peers):
            if isinstance(bad, ExtPeer) and not bad.conn.closed and self.on_bad_peer is not None:
                self.on_bad_peer(bad, "sent metadata that does not match the infohash")
        # after a failed round the pieces are all wanted again: ask whoever may be asked
        for other in self.manager.peers():
            self._request_more(other, self._clock())

    def _serve(self, peer: ExtPeer, piece: int) -> None:
        raw = self.raw_info
        now = self._clock()
        start, count = self._served.get(peer, (now, 0))
        if now - start >= 1.0:
            start, count = now, 0
        if raw is None or piece >= num_pieces(len(raw)) or count >= SERVE_BURST:
            self.manager.send(peer, self.name, encode_reject(piece))
            return
        self._served[peer] = (start, count + 1)
        begin = piece * METADATA_PIECE
        chunk = raw[begin : begin + METADATA_PIECE]
        self.manager.send(peer, self.name, encode_data(piece, len(raw), chunk))

    def _request_more(self, peer: ExtPeer, now: float) -> None:
        asm = self.assembler
        if asm is None or not peer.supports(self.name) or peer.handshake is None:
            return
        size = peer.handshake.metadata_size
        while asm.outstanding(peer) < PIPELINE:
            piece = asm.next_request(peer, size, now)
            if piece is None:
                return
            self.manager.send(peer, self.name, encode_request(piece))

    def on_tick(self, now: float) -> None:
        if self.assembler is None:
            return
        for peer in self.manager.peers():
            self._request_more(peer, now)

    def on_peer_closed(self, peer: ExtPeer) -> None:
        self._served.pop(peer, None)
        if self.assembler is not None:
            self.assembler.peer_lost(peer)
            for other in self.manager.peers():
                self._request_more(other, self._clock())
