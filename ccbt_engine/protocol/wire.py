"""BitTorrent peer wire protocol (BEP 3, BEP 6 fast extension, BEP 10 framing), sans-I/O.

:class:`WireParser` turns the bytes a peer sends into typed events; the ``encode_*`` functions
turn our commands into bytes. Nothing here touches a socket or a clock, so the asyncio shell
(``ccbt_engine.net``) only moves bytes, and tests and fuzzers drive the parser directly.

The parser treats every byte as hostile:

* a length prefix larger than any message we accept fails from the 4-byte prefix alone, and a
  message whose id has a smaller bound fails as soon as the id byte arrives, so a peer can never
  make us buffer more than one legitimate message;
* fixed-size messages must have exactly their size; a bitfield must have exactly
  ``ceil(num_pieces / 8)`` bytes with its spare bits clear; piece indices must be in range;
* fast-extension messages are refused unless both sides set the fast bit;
* unknown message ids are skipped (newer extensions must not break us), within the same bound;
* :class:`ProtocolError` is the only exception malformed input raises (property-tested), and
  once raised the parser stays failed: a connection that broke framing cannot be trusted again.

Throughput matters (every downloaded byte passes through here): complete messages are parsed
straight out of the caller's buffer and only an incomplete tail is kept, so a block's payload is
copied exactly once (into :attr:`Piece.data`) unless it straddles two reads. The buffered API
(:meth:`WireParser.get_buffer` / :meth:`WireParser.buffer_updated`) goes further for
``asyncio.BufferedProtocol``: the socket reads into the parser's own reusable buffer and each
block is handed over as a view of it, so the receiver's copy into its write cache is the only one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Protocol, TypeAlias

__all__ = [
    "BLOCK_SIZE",
    "HANDSHAKE_LEN",
    "MAX_BITFIELD_BYTES_UNKNOWN",
    "MAX_BLOCK_LEN",
    "MAX_EXTENDED_LEN",
    "PROTOCOL_STRING",
    "RECV_BUFFER_MAX",
    "RECV_BUFFER_MIN",
    "RESERVED_DHT",
    "RESERVED_EXTENDED",
    "RESERVED_FAST",
    "RESERVED_V2_UPGRADE",
    "AllowedFast",
    "Bitfield",
    "Cancel",
    "Choke",
    "Event",
    "Extended",
    "Handshake",
    "HashTransfer",
    "Have",
    "HaveAll",
    "HaveNone",
    "Interested",
    "KeepAlive",
    "MsgId",
    "NotInterested",
    "Piece",
    "Port",
    "ProtocolError",
    "RejectRequest",
    "Request",
    "SuggestPiece",
    "Unchoke",
    "WireParser",
    "WireSink",
    "check_bitfield",
    "encode_allowed_fast",
    "encode_bitfield",
    "encode_cancel",
    "encode_choke",
    "encode_event",
    "encode_extended",
    "encode_handshake",
    "encode_have",
    "encode_have_all",
    "encode_have_none",
    "encode_interested",
    "encode_keepalive",
    "encode_not_interested",
    "encode_piece",
    "encode_piece_header",
    "encode_port",
    "encode_reject",
    "encode_request",
    "encode_requests",
    "encode_suggest",
    "encode_unchoke",
    "make_reserved",
    "reserved_has",
]


class ProtocolError(ValueError):
    """The peer broke the wire protocol; the connection should be closed."""


PROTOCOL_STRING: Final = b"BitTorrent protocol"
#: 1 (pstrlen) + 19 (pstr) + 8 (reserved) + 20 (info hash) + 20 (peer id)
HANDSHAKE_LEN: Final = 68
#: The block size every modern client requests and serves.
BLOCK_SIZE: Final = 16384
#: The largest request/piece length a parser may be configured to accept. Some old clients asked
#: for 32 KiB or more; 128 KiB was the historical ceiling. The default stays at 16 KiB.
MAX_BLOCK_LEN: Final = 131072
#: Default bound on an extended (BEP 10) message and on messages with unknown ids. ut_metadata
#: pieces are 16 KiB; 1 MiB leaves room for large PEX or handshake messages without letting a
#: peer make us buffer much.
MAX_EXTENDED_LEN: Final = 1 << 20
#: Bitfield bound while the piece count is unknown (magnet link before metadata): 4 Mi pieces.
MAX_BITFIELD_BYTES_UNKNOWN: Final = 1 << 19

# Reserved-bit positions as (byte index, mask) into the 8 reserved handshake bytes.
#: BEP 10 extension protocol: reserved[5] & 0x10
RESERVED_EXTENDED: Final = (5, 0x10)
#: BEP 6 fast extension: reserved[7] & 0x04
RESERVED_FAST: Final = (7, 0x04)
#: BEP 5 DHT (PORT message): reserved[7] & 0x01
RESERVED_DHT: Final = (7, 0x01)
#: BEP 52 upgrade to v2 on a hybrid torrent: reserved[7] & 0x10
RESERVED_V2_UPGRADE: Final = (7, 0x10)


def make_reserved(*bits: tuple[int, int]) -> bytes:
    """The 8 reserved handshake bytes with the given ``RESERVED_*`` bits set."""
    out = bytearray(8)
    for index, mask in bits:
        out[index] |= mask
    return bytes(out)


def reserved_has(reserved: bytes, bit: tuple[int, int]) -> bool:
    """Whether ``reserved`` (8 bytes) has the ``RESERVED_*`` ``bit`` set."""
    index, mask = bit
    return len(reserved) > index and bool(reserved[index] & mask)


class MsgId(IntEnum):
    CHOKE = 0
    UNCHOKE = 1
    INTERESTED = 2
    NOT_INTERESTED = 3
    HAVE = 4
    BITFIELD = 5
    REQUEST = 6
    PIECE = 7
    CANCEL = 8
    PORT = 9
    SUGGEST_PIECE = 13
    HAVE_ALL = 14
    HAVE_NONE = 15
    REJECT_REQUEST = 16
    ALLOWED_FAST = 17
    EXTENDED = 20


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Handshake:
    info_hash: bytes
    peer_id: bytes
    reserved: bytes

    @property
    def supports_fast(self) -> bool:
        return reserved_has(self.reserved, RESERVED_FAST)

    @property
    def supports_extended(self) -> bool:
        return reserved_has(self.reserved, RESERVED_EXTENDED)

    @property
    def supports_dht(self) -> bool:
        return reserved_has(self.reserved, RESERVED_DHT)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    data: bytes


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    begin: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Port:
    port: int


@dataclass(frozen=True, slots=True)
class SuggestPiece:
    index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class RejectRequest:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class Extended:
    ext_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class HashTransfer:
    """BEP 52 hash request / hashes / hash reject (ids 21-23), decoded by ``protocol.hashes``."""

    msg_id: int
    payload: bytes


Event: TypeAlias = (
    Handshake
    | KeepAlive
    | Choke
    | Unchoke
    | Interested
    | NotInterested
    | Have
    | Bitfield
    | Request
    | Piece
    | Cancel
    | Port
    | SuggestPiece
    | HaveAll
    | HaveNone
    | RejectRequest
    | AllowedFast
    | Extended
    | HashTransfer
)
# Payload-less events are immutable, so one instance each serves every message.
_KEEPALIVE: Final = KeepAlive()
_CHOKE: Final = Choke()
_UNCHOKE: Final = Unchoke()
_INTERESTED: Final = Interested()
_NOT_INTERESTED: Final = NotInterested()
_HAVE_ALL: Final = HaveAll()
_HAVE_NONE: Final = HaveNone()

# --------------------------------------------------------------------------------------------
# Encoders

_U32: Final = struct.Struct(">I")
_HEADER: Final = struct.Struct(">IB")  # length prefix + message id
_MSG_U32: Final = struct.Struct(">IBI")  # have, suggest, allowed fast
_MSG_3U32: Final = struct.Struct(">IBIII")  # request, cancel, reject
_MSG_U16: Final = struct.Struct(">IBH")  # port
_PIECE_HEADER: Final = struct.Struct(">IBII")
_EXT_HEADER: Final = struct.Struct(">IBB")
_TWO_U32: Final = struct.Struct(">II")
_THREE_U32: Final = struct.Struct(">III")

_KEEPALIVE_BYTES: Final = b"\x00\x00\x00\x00"
_CHOKE_BYTES: Final = _HEADER.pack(1, MsgId.CHOKE)
_UNCHOKE_BYTES: Final = _HEADER.pack(1, MsgId.UNCHOKE)
_INTERESTED_BYTES: Final = _HEADER.pack(1, MsgId.INTERESTED)
_NOT_INTERESTED_BYTES: Final = _HEADER.pack(1, MsgId.NOT_INTERESTED)
_HAVE_ALL_BYTES: Final = _HEADER.pack(1, MsgId.HAVE_ALL)
_HAVE_NONE_BYTES: Final = _HEADER.pack(1, MsgId.HAVE_NONE)


def _pack(s: struct.Struct, *values: int) -> bytes:
    # struct.error is not a ValueError; callers passing an out-of-range number made a
    # programming error and should see the ordinary exception type for bad arguments.
    try:
        return s.pack(*values)
    except struct.error as exc:
        raise ValueError(f"value out of range for wire field: {values!r}") from exc


def encode_handshake(
    info_hash: bytes,
    peer_id: bytes,
    *,
    fast: bool = True,
    extended: bool = True,
    dht: bool = False,
) -> bytes:
    """The 68-byte handshake advertising the chosen extensions in the reserved bytes."""
    if len(info_hash) != 20 or len(peer_id) != 20:
        raise ValueError("info_hash and peer_id must be 20 bytes each")
    bits = []
    if fast:
        bits.append(RESERVED_FAST)
    if extended:
        bits.append(RESERVED_EXTENDED)
    if dht:
        bits.append(RESERVED_DHT)
    return b"\x13" + PROTOCOL_STRING + make_reserved(*bits) + bytes(info_hash) + bytes(peer_id)


def encode_keepalive() -> bytes:
    return _KEEPALIVE_BYTES


def encode_choke() -> bytes:
    return _CHOKE_BYTES


def encode_unchoke() -> bytes:
    return _UNCHOKE_BYTES


def encode_interested() -> bytes:
    return _INTERESTED_BYTES


def encode_not_interested() -> bytes:
    return _NOT_INTERESTED_BYTES


def encode_have(index: int) -> bytes:
    return _pack(_MSG_U32, 5, MsgId.HAVE, index)


def encode_bitfield(data: bytes) -> bytes:
    return _pack(_HEADER, 1 + len(data), MsgId.BITFIELD) + bytes(data)


def encode_request(index: int, begin: int, length: int) -> bytes:
    return _pack(_MSG_3U32, 13, MsgId.REQUEST, index, begin, length)


def encode_requests(requests: Iterable[tuple[int, int, int]]) -> bytes:
    """REQUEST messages for ``(index, begin, length)`` triples, back to back in one string.

    The download loop sends a read's worth of requests at once (dozens per call): one pass
    with a bound ``pack`` instead of a function call, an enum lookup and a join item each.
    """
    pack = _MSG_3U32.pack
    req = int(MsgId.REQUEST)
    try:
        return b"".join([pack(13, req, i, b, n) for i, b, n in requests])
    except struct.error as exc:
        raise ValueError(f"value out of range for a REQUEST field: {exc}") from exc


def encode_piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13-byte header of a piece message whose block is ``length`` bytes long.

    Lets the shell send ``writelines([header, block])`` without concatenating (copying) the block.
    """
    return _pack(_PIECE_HEADER, 9 + length, MsgId.PIECE, index, begin)


def encode_piece(index: int, begin: int, data: bytes) -> bytes:
    return encode_piece_header(index, begin, len(data)) + bytes(data)


def encode_cancel(index: int, begin: int, length: int) -> bytes:
    return _pack(_MSG_3U32, 13, MsgId.CANCEL, index, begin, length)


def encode_port(port: int) -> bytes:
    return _pack(_MSG_U16, 3, MsgId.PORT, port)


def encode_suggest(index: int) -> bytes:
    return _pack(_MSG_U32, 5, MsgId.SUGGEST_PIECE, index)


def encode_have_all() -> bytes:
    return _HAVE_ALL_BYTES


def encode_have_none() -> bytes:
    return _HAVE_NONE_BYTES


def encode_reject(index: int, begin: int, length: int) -> bytes:
    return _pack(_MSG_3U32, 13, MsgId.REJECT_REQUEST, index, begin, length)


def encode_allowed_fast(index: int) -> bytes:
    return _pack(_MSG_U32, 5, MsgId.ALLOWED_FAST, index)


def encode_extended(ext_id: int, payload: bytes) -> bytes:
    return _pack(_EXT_HEADER, 2 + len(payload), MsgId.EXTENDED, ext_id) + bytes(payload)


def encode_event(event: Event) -> bytes:
    """Encode any event back to its wire form (the inverse of :meth:`WireParser.feed`)."""
    match event:
        case Handshake(info_hash, peer_id, reserved):
            if len(reserved) != 8:
                raise ValueError("reserved must be 8 bytes")
            if len(info_hash) != 20 or len(peer_id) != 20:
                raise ValueError("info_hash and peer_id must be 20 bytes each")
            return b"\x13" + PROTOCOL_STRING + reserved + info_hash + peer_id
        case KeepAlive():
            return _KEEPALIVE_BYTES
        case Choke():
            return _CHOKE_BYTES
        case Unchoke():
            return _UNCHOKE_BYTES
        case Interested():
            return _INTERESTED_BYTES
        case NotInterested():
            return _NOT_INTERESTED_BYTES
        case Have(index):
            return encode_have(index)
        case Bitfield(data):
            return encode_bitfield(data)
        case Request(index, begin, length):
            return encode_request(index, begin, length)
        case Piece(index, begin, data):
            return encode_piece(index, begin, data)
        case Cancel(index, begin, length):
            return encode_cancel(index, begin, length)
        case Port(port):
            return encode_port(port)
        case SuggestPiece(index):
            return encode_suggest(index)
        case HaveAll():
            return _HAVE_ALL_BYTES
        case HaveNone():
            return _HAVE_NONE_BYTES
        case RejectRequest(index, begin, length):
            return encode_reject(index, begin, length)
        case AllowedFast(index):
            return encode_allowed_fast(index)
        case Extended(ext_id, payload):
            return encode_extended(ext_id, payload)
    raise TypeError(f"not a wire event: {event!r}")


# --------------------------------------------------------------------------------------------
# Parser


def check_bitfield(data: bytes, num_pieces: int) -> None:
    """Raise :class:`ProtocolError` unless ``data`` is a valid bitfield for ``num_pieces``.

    For a bitfield that arrived before the piece count was known (magnet links): the parser
    could only bound its size then, so the shell re-checks it once metadata arrives.
    """
    expected = (num_pieces + 7) >> 3
    if len(data) != expected:
        raise ProtocolError(
            f"bitfield of {len(data)} bytes, expected {expected} for {num_pieces} pieces"
        )
    spare = (expected << 3) - num_pieces
    if spare and data[-1] & ((1 << spare) - 1):
        raise ProtocolError("bitfield has spare bits set")


_FAST_IDS: Final = frozenset(
    {
        MsgId.SUGGEST_PIECE,
        MsgId.HAVE_ALL,
        MsgId.HAVE_NONE,
        MsgId.REJECT_REQUEST,
        MsgId.ALLOWED_FAST,
    }
)
_PROTOCOL_HEADER: Final = b"\x13" + PROTOCOL_STRING
#: the parser's internal callbacks: return True to stop
_OnEvent: TypeAlias = Callable[[Event], bool]
_OnPiece: TypeAlias = Callable[[int, int, memoryview], bool]
#: a run of consecutive REQUEST messages as (index, begin, length) each: return True to stop
_OnRequests: TypeAlias = Callable[[list[tuple[int, int, int]]], bool]
#: a run of consecutive PIECE messages as (index, begin, block view) each
_OnPieces: TypeAlias = Callable[[list[tuple[int, int, memoryview]]], bool]
#: one whole REQUEST message: length prefix 13, id 6, index, begin, length (17 bytes)
_REQUEST_MSG: Final = struct.Struct(">IBIII")
#: a PIECE message's header: length prefix, id, index, begin (the block follows)
_PIECE_HEAD: Final = struct.Struct(">IBII")


class WireSink(Protocol):
    """Where :meth:`WireParser.buffer_updated` delivers messages, one call each, in order.

    Both methods return True to stop parsing (the connection is closing): the rest stays
    buffered and is parsed by the next call, if any.
    """

    def on_event(self, event: Event) -> bool:
        """Any message but PIECE, as its event."""
        ...

    def on_piece(self, index: int, begin: int, block: memoryview) -> bool:
        """A PIECE message. ``block`` points into the parser's receive buffer and is valid
        only during the call: copy what you keep (that copy is the block's only one)."""
        ...

    # Optional, looked up with getattr (so not declared here, where it would be required):
    #   def on_requests(self, requests: list[tuple[int, int, int]]) -> bool
    # takes every run of consecutive REQUEST messages in one call, as validated
    # (index, begin, length) tuples, instead of one ``on_event(Request)`` each. A leecher sends
    # 64 Ki requests per GiB it pulls, mostly back to back in one read; one struct pass and one
    # call per run save an event object and two method dispatches per request.
    #   def on_pieces(self, blocks: list[tuple[int, int, memoryview]]) -> bool
    # the same for runs of consecutive PIECE messages: (index, begin, block) with the block a
    # view of the receive buffer, valid only during the call. A 1 MiB read carries ~64 blocks;
    # one call per run instead of one per block is the download's share of that saving.


#: receive buffer bounds of the buffered API: idle peers keep a small one, a read that fills
#: the offered space doubles it (up to the maximum), so a fast peer is read in large gulps
RECV_BUFFER_MIN: Final = 32 * 1024
RECV_BUFFER_MAX: Final = 1 << 20


class WireParser:
    """Incremental peer-wire parser: :meth:`feed` bytes, get events.

    ``expect_handshake``: the stream starts with the 68-byte handshake (False when the shell
    already consumed it, e.g. after an MSE handshake).

    ``offer_fast``: whether *our* handshake sets the fast bit (``encode_handshake`` does by
    default). When the peer's handshake is parsed, :attr:`fast` becomes ``offer_fast and
    peer supports fast`` right away, so fast messages that arrive in the same read as the
    handshake are judged correctly. The shell may still set :attr:`fast` itself at any time
    (it must when ``expect_handshake`` is False).

    ``max_block_len``: the largest request/cancel/reject length and piece payload accepted
    (16 KiB by default, at most :data:`MAX_BLOCK_LEN`).

    Two ways to drive it:

    * :meth:`feed` takes bytes the caller read and returns a list of events (a PIECE's block
      copied into :attr:`Piece.data`);
    * the buffered API, made for ``asyncio.BufferedProtocol``: :meth:`get_buffer` lends the
      free end of the parser's own receive buffer, the socket reads straight into it, and
      :meth:`buffer_updated` hands each complete message to a :class:`WireSink` as soon as it
      is parsed, a PIECE's block as a view into that buffer. That saves, per read, allocating a
      fresh ``bytes`` (and faulting in its pages), and per block an event object and a copy;
      the receiver copies the block once, straight into its write cache. :meth:`receive` is the
      same for bytes read elsewhere (decrypted MSE payload, uTP).

    The two may be mixed; an incomplete message buffered by one is finished by the other.
    """

    __slots__ = (
        "_buf",
        "_failed",
        "_grow",
        "_handshake_pending",
        "_limits",
        "_max_len",
        "_num_pieces",
        "_offer_fast",
        "_offered",
        "_rbuf",
        "_recv_max",
        "_rend",
        "_rstart",
        "_rview",
        "_stopped",
        "bitfield_messages",
        "fast",
        "handshake",
        "max_block_len",
        "max_extended_len",
    )

    def __init__(
        self,
        *,
        expect_handshake: bool = True,
        num_pieces: int | None = None,
        max_block_len: int = BLOCK_SIZE,
        max_extended_len: int = MAX_EXTENDED_LEN,
        offer_fast: bool = True,
        recv_buffer_max: int = RECV_BUFFER_MAX,
    ) -> None:
        if not 1 <= max_block_len <= MAX_BLOCK_LEN:
            raise ValueError(f"max_block_len must be in 1..{MAX_BLOCK_LEN}")
        if max_extended_len < 1:
            raise ValueError("max_extended_len must be positive")
        if recv_buffer_max < 1:
            raise ValueError("recv_buffer_max must be positive")
        self._buf = bytearray()
        self._failed: str | None = None
        self.bitfield_messages = 0
        self._handshake_pending = expect_handshake
        self._offer_fast = offer_fast
        self.fast = False
        #: the peer's handshake once parsed
        self.handshake: Handshake | None = None
        self.max_block_len = max_block_len
        self.max_extended_len = max_extended_len
        self._num_pieces: int | None = None
        self._limits: dict[int, tuple[int, int]] = {}
        self._max_len = 0
        # buffered API: unparsed bytes are _rbuf[_rstart:_rend]; allocated on first use
        self._rbuf = bytearray()
        self._rview = memoryview(self._rbuf)
        self._rstart = 0
        self._rend = 0
        self._offered = 0
        self._grow = False
        self._recv_max = recv_buffer_max
        self._stopped = False
        self.set_num_pieces(num_pieces)

    # The flag has two names because the shell and its tests were written against both.
    @property
    def fast_enabled(self) -> bool:
        return self.fast

    @fast_enabled.setter
    def fast_enabled(self, value: bool) -> None:
        self.fast = value

    @property
    def num_pieces(self) -> int | None:
        return self._num_pieces

    @property
    def max_message_len(self) -> int:
        """The largest length prefix accepted for any message id."""
        return self._max_len

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (bounded by :attr:`max_message_len` + 4)."""
        return len(self._buf) + self._rend - self._rstart

    @property
    def receive_capacity(self) -> int:
        """Current size of the buffered API's receive buffer (grows with the read sizes seen)."""
        return len(self._rbuf)

    @property
    def recv_buffer_max(self) -> int:
        """The size the receive buffer grows to when reads keep filling it.

        The shell keeps it small until the handshake is done, so a connection that never
        becomes a peer (a port scan, a flood of half-open handshakes) costs a few KiB, and
        raises it once the peer is established. Messages longer than it still fit (their size
        is bounded by :attr:`max_message_len`); it only limits the read-ahead.
        """
        return self._recv_max

    @recv_buffer_max.setter
    def recv_buffer_max(self, value: int) -> None:
        if value < 1:
            raise ValueError("recv_buffer_max must be positive")
        self._recv_max = value

    def set_num_pieces(self, num_pieces: int | None) -> None:
        """Learn the piece count (known from the start, or after magnet metadata arrives).

        From then on bitfields must have the exact size and piece indices must be in range.
        """
        if num_pieces is not None and num_pieces < 0:
            raise ValueError("num_pieces must be >= 0")
        self._num_pieces = num_pieces
        if num_pieces is None:
            bitfield_max = 1 + MAX_BITFIELD_BYTES_UNKNOWN
            bitfield_min = 1
        else:
            bitfield_min = bitfield_max = 1 + ((num_pieces + 7) >> 3)
        block = self.max_block_len
        ext = self.max_extended_len
        # (min, max) of the length prefix for each id; unknown ids use key -1.
        self._limits = {
            MsgId.CHOKE: (1, 1),
            MsgId.UNCHOKE: (1, 1),
            MsgId.INTERESTED: (1, 1),
            MsgId.NOT_INTERESTED: (1, 1),
            MsgId.HAVE: (5, 5),
            MsgId.BITFIELD: (bitfield_min, bitfield_max),
            MsgId.REQUEST: (13, 13),
            MsgId.PIECE: (10, 9 + block),
            MsgId.CANCEL: (13, 13),
            MsgId.PORT: (3, 3),
            MsgId.SUGGEST_PIECE: (5, 5),
            MsgId.HAVE_ALL: (1, 1),
            MsgId.HAVE_NONE: (1, 1),
            MsgId.REJECT_REQUEST: (13, 13),
            MsgId.ALLOWED_FAST: (5, 5),
            MsgId.EXTENDED: (2, 1 + ext),
            -1: (1, ext),
        }
        self._max_len = max(hi for _, hi in self._limits.values())

    # ----------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume ``data`` and return the events of every message it completes.

        Raises :class:`ProtocolError` on a protocol violation; the parser then refuses further
        input (any events completed earlier in the same call are discarded with it).
        """
        if self._failed is not None:
            raise ProtocolError(f"parser already failed: {self._failed}")
        if self._rend > self._rstart:  # a message the buffered API left incomplete
            self._buf[:0] = self._rview[self._rstart : self._rend]
            self._rstart = self._rend = 0
        events: list[Event] = []
        append = events.append

        def piece(index: int, begin: int, block: memoryview) -> bool:
            append(Piece(index, begin, bytes(block)))
            return False

        def event(ev: Event) -> bool:
            append(ev)
            return False

        with memoryview(data) as raw:
            mv = raw if raw.format == "B" and raw.ndim == 1 else raw.cast("B")
            try:
                self._feed(mv, event, piece)
            except ProtocolError as exc:
                self._fail(str(exc))
                raise
            finally:
                if mv is not raw:
                    mv.release()
        return events

    def _feed(self, mv: memoryview, event: _OnEvent, piece: _OnPiece) -> None:
        n = len(mv)
        off = 0
        buf = self._buf
        # Finish the message left incomplete by the previous read, taking from ``mv`` only what
        # that message needs, so the rest is parsed in place without being copied into ``buf``.
        while buf and off < n:
            take = min(self._pending_need(buf) - len(buf), n - off)
            buf += mv[off : off + take]
            off += take
            with memoryview(buf) as bmv:
                consumed = self._parse(bmv, 0, event, piece)
            if consumed:
                del buf[:consumed]
        if off < n:
            pos = self._parse(mv, off, event, piece)
            if pos < n:
                buf += mv[pos:]

    def _pending_need(self, buf: bytearray | memoryview) -> int:
        """Total size of the message that ``buf`` holds the start of (or of its header)."""
        if self._handshake_pending:
            return HANDSHAKE_LEN
        if len(buf) < 4:
            return 4
        return 4 + int(_U32.unpack_from(buf)[0])

    def _fail(self, reason: str) -> None:
        self._failed = reason
        self._buf = bytearray()
        self._rstart = self._rend = 0

    # -- buffered API -------------------------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """The writable free end of the receive buffer: read up to ``len()`` bytes into it, then
        call :meth:`buffer_updated` with how many were read.

        Never empty. The buffer is compacted (the one incomplete message moved to the front) or
        enlarged only when the free end is too short for the message being received or for a
        useful read; ``sizehint`` is ignored, as asyncio's transports pass none.
        """
        if self._buf:  # a message :meth:`feed` left incomplete: continue it here
            self._adopt(self._buf)
            self._buf = bytearray()
        start, end = self._rstart, self._rend
        if start == end:
            start = end = self._rstart = self._rend = 0
        cap = len(self._rbuf)
        used = end - start
        missing = self._missing(used)
        target = cap
        if self._grow or not cap:
            target = min(max(2 * cap, RECV_BUFFER_MIN), max(self._recv_max, cap))
        elif not used and cap > max(self._recv_max, RECV_BUFFER_MIN):
            target = max(self._recv_max, RECV_BUFFER_MIN)  # shrink after one huge message
        target = max(target, used + missing)
        if target != cap:
            self._realloc(target)
        elif cap - end < max(missing, cap >> 2) and start:
            self._rbuf[:used] = self._rview[start:end]
            self._rstart, self._rend = 0, used
        self._grow = False
        view = self._rview[self._rend :]
        self._offered = len(view)
        return view

    def buffer_updated(self, nbytes: int, sink: WireSink) -> bool:
        """``nbytes`` were read into the last :meth:`get_buffer` view: deliver what they complete.

        Returns True when the sink asked to stop. Raises :class:`ProtocolError` on a protocol
        violation (also one the sink raises); the parser then refuses further input.
        """
        if self._failed is not None:
            raise ProtocolError(f"parser already failed: {self._failed}")
        if not 0 <= nbytes <= self._offered:
            raise ValueError(f"buffer_updated({nbytes}) after lending {self._offered} bytes")
        self._grow = nbytes == self._offered and len(self._rbuf) < self._recv_max
        self._offered = 0
        self._rend += nbytes
        return self._deliver(sink)

    def receive(self, data: bytes | bytearray | memoryview, sink: WireSink) -> bool:
        """Like reading ``data`` into :meth:`get_buffer` views: for bytes that came another way.

        Returns True when the sink asked to stop (the rest of ``data`` is then kept buffered).
        """
        if self._failed is not None:
            raise ProtocolError(f"parser already failed: {self._failed}")
        with memoryview(data) as raw:
            mv = raw if raw.format == "B" and raw.ndim == 1 else raw.cast("B")
            try:
                if self._buf:
                    self._adopt(self._buf)
                    self._buf = bytearray()
                off, n = 0, len(mv)
                while off < n:
                    room = len(self._rbuf) - self._rend
                    if room < min(n - off, RECV_BUFFER_MIN):
                        self.get_buffer()
                        room = len(self._rbuf) - self._rend
                    take = min(room, n - off)
                    end = self._rend + take
                    self._rview[self._rend : end] = mv[off : off + take]
                    self._rend = end
                    off += take
                    if self._deliver(sink):
                        if off < n:
                            self._adopt(mv[off:])
                        return True
                return False
            finally:
                self._offered = 0
                if mv is not raw:
                    mv.release()

    def _deliver(self, sink: WireSink) -> bool:
        start = self._rstart
        try:
            pos = self._parse(
                self._rview[: self._rend],
                start,
                sink.on_event,
                sink.on_piece,
                getattr(sink, "on_requests", None),
                getattr(sink, "on_pieces", None),
            )
        except Exception as exc:
            # whatever broke (the peer, or the sink while handling a message), the framing
            # position is lost: this parser cannot be trusted with more input
            self._fail(str(exc) or type(exc).__name__)
            raise
        self._rstart = pos
        if pos == self._rend:
            self._rstart = self._rend = 0
        return self._stopped

    def _missing(self, used: int) -> int:
        """Bytes still to come of the message whose start is buffered (its header if unknown)."""
        if self._handshake_pending:
            return max(0, HANDSHAKE_LEN - used)
        if used < 4:
            return 4 - used
        return 4 + int(_U32.unpack_from(self._rbuf, self._rstart)[0]) - used

    def _realloc(self, size: int) -> None:
        old = self._rview[self._rstart : self._rend]
        new = bytearray(size)
        new[: len(old)] = old
        self._rview.release()
        self._rbuf = new
        self._rview = memoryview(new)
        self._rstart, self._rend = 0, len(old)

    def _adopt(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the unparsed bytes (growing the buffer as needed)."""
        used = self._rend - self._rstart
        if len(self._rbuf) - self._rend < len(data):
            self._realloc(max(used + len(data), len(self._rbuf)))
        end = self._rend + len(data)
        self._rview[self._rend : end] = data
        self._rend = end

    # ----------------------------------------------------------------------------------------

    def _parse_handshake(self, mv: memoryview, pos: int, event: _OnEvent) -> int:
        have = min(len(mv) - pos, 20)
        if mv[pos : pos + have] != _PROTOCOL_HEADER[:have]:
            raise ProtocolError("bad handshake: not the BitTorrent protocol")
        if len(mv) - pos < HANDSHAKE_LEN:
            return pos
        reserved = bytes(mv[pos + 20 : pos + 28])
        hs = Handshake(
            info_hash=bytes(mv[pos + 28 : pos + 48]),
            peer_id=bytes(mv[pos + 48 : pos + 68]),
            reserved=reserved,
        )
        self.handshake = hs
        self._handshake_pending = False
        self.fast = self._offer_fast and hs.supports_fast
        self._stopped = bool(event(hs))
        return pos + HANDSHAKE_LEN

    def _parse(
        self,
        mv: memoryview,
        pos: int,
        event: _OnEvent,
        piece: _OnPiece,
        requests: _OnRequests | None = None,
        pieces: _OnPieces | None = None,
    ) -> int:
        """Deliver every complete message in ``mv[pos:]``; return where the unparsed rest starts.

        Headers of an incomplete message are validated too, so an oversized or malformed
        message fails before its body is buffered. Stops early (setting ``_stopped``) when a
        callback returns True.
        """
        self._stopped = False
        end = len(mv)
        if self._handshake_pending:
            pos = self._parse_handshake(mv, pos, event)
            if self._handshake_pending or self._stopped:
                return pos
        unpack_len = _U32.unpack_from
        unpack_two = _TWO_U32.unpack_from
        limits = self._limits
        max_len = self._max_len
        while end - pos >= 4:
            length: int = unpack_len(mv, pos)[0]
            if length == 0:
                pos += 4
                if event(_KEEPALIVE):
                    self._stopped = True
                    return pos
                continue
            if length > max_len:
                raise ProtocolError(f"message length {length} exceeds limit {max_len}")
            if end - pos < 5:
                break
            mid = mv[pos + 4]
            lo, hi = limits.get(mid) or limits[-1]
            if not lo <= length <= hi:
                raise ProtocolError(f"message id {mid} with bad length {length}")
            stop = pos + 4 + length
            if stop > end:
                break
            if mid == 7:  # PIECE: the hot path, kept first and inline
                index, begin = unpack_two(mv, pos + 5)
                np = self._num_pieces
                if np is not None and index >= np:
                    raise ProtocolError(f"piece index {index} out of range")
                if pieces is not None:
                    pos, blocks = self._piece_run(mv, pos, stop, index, begin)
                    if pieces(blocks):
                        self._stopped = True
                        return pos
                    continue
                block = mv[pos + 13 : stop]
                pos = stop
                if piece(index, begin, block):
                    self._stopped = True
                    return pos
                continue
            if mid == 6 and requests is not None:  # REQUEST: the seeding hot path
                run = self._request_run(mv, pos, end)
                if run:
                    pos += len(run) * 17
                    if requests(run):
                        self._stopped = True
                        return pos
                    continue
                # the first one is invalid: the general path below raises for it
            ev = self._message(mid, mv, pos + 5, stop)
            pos = stop
            if ev is not None and event(ev):
                self._stopped = True
                return pos
            # the sink may have learnt the piece count (handshake, metadata): new bounds
            limits = self._limits
            max_len = self._max_len
        return pos

    def _piece_run(
        self, mv: memoryview, pos: int, stop: int, index: int, begin: int
    ) -> tuple[int, list[tuple[int, int, memoryview]]]:
        """The valid, complete PIECE messages back to back from ``pos`` (the first, ending at
        ``stop``, already checked); returns where the run ends and its blocks.

        The run ends before the first message that is not a complete PIECE within the length
        limits and the piece count: the general path then parses (or rejects, or waits for)
        that one, so errors are raised exactly as for a lone PIECE, after the run's blocks.
        """
        run = [(index, begin, mv[pos + 13 : stop])]
        append = run.append
        unpack_head = _PIECE_HEAD.unpack_from
        end = len(mv)
        lo, hi = self._limits[MsgId.PIECE]
        np = self._num_pieces if self._num_pieces is not None else 1 << 32
        pos = stop
        while end - pos >= 13:
            length, mid, index, begin = unpack_head(mv, pos)
            stop = pos + 4 + length
            if mid != 7 or not lo <= length <= hi or stop > end or index >= np:
                break
            append((index, begin, mv[pos + 13 : stop]))
            pos = stop
        return pos, run

    def _request_run(self, mv: memoryview, pos: int, end: int) -> list[tuple[int, int, int]]:
        """The valid REQUEST messages back to back from ``pos``, unpacked in one struct pass.

        The run ends before the first message that is not a complete 17-byte REQUEST or whose
        fields are invalid (out-of-range index, bad length): the general path then parses that
        one, so errors are raised exactly as for a lone request.
        """
        count = (end - pos) // 17
        np = self._num_pieces
        if np is None:
            np = 1 << 32
        max_block = self.max_block_len
        run: list[tuple[int, int, int]] = []
        append = run.append
        for length, mid, index, begin, size in _REQUEST_MSG.iter_unpack(mv[pos : pos + 17 * count]):
            if length != 13 or mid != 6 or index >= np or not 1 <= size <= max_block:
                break
            append((index, begin, size))
        return run

    def _message(self, mid: int, mv: memoryview, body: int, stop: int) -> Event | None:
        """Build the event for a complete non-piece message whose length is already checked."""
        if mid in _FAST_IDS and not self.fast:
            raise ProtocolError(f"fast-extension message {mid} without fast negotiated")
        if mid == MsgId.HAVE:
            return Have(self._index(_U32.unpack_from(mv, body)[0]))
        if mid == MsgId.REQUEST:
            return Request(*self._block(mv, body))
        if mid == MsgId.CHOKE:
            return _CHOKE
        if mid == MsgId.UNCHOKE:
            return _UNCHOKE
        if mid == MsgId.INTERESTED:
            return _INTERESTED
        if mid == MsgId.NOT_INTERESTED:
            return _NOT_INTERESTED
        if mid == MsgId.CANCEL:
            return Cancel(*self._block(mv, body))
        if mid == MsgId.EXTENDED:
            return Extended(mv[body], bytes(mv[body + 1 : stop]))
        if mid == MsgId.BITFIELD:
            self._once_bitfield()
            data = bytes(mv[body:stop])
            if self._num_pieces is not None:
                check_bitfield(data, self._num_pieces)
            return Bitfield(data)
        if mid == MsgId.HAVE_ALL:
            self._once_bitfield()
            return _HAVE_ALL
        if mid == MsgId.HAVE_NONE:
            self._once_bitfield()
            return _HAVE_NONE
        if mid == MsgId.REJECT_REQUEST:
            return RejectRequest(*self._block(mv, body))
        if mid == MsgId.ALLOWED_FAST:
            return AllowedFast(self._index(_U32.unpack_from(mv, body)[0]))
        if mid == MsgId.SUGGEST_PIECE:
            return SuggestPiece(self._index(_U32.unpack_from(mv, body)[0]))
        if mid == MsgId.PORT:
            return Port(mv[body] << 8 | mv[body + 1])
        if 21 <= mid <= 23:  # BEP 52 hash transfer: bounded like an extended message
            return HashTransfer(mid, bytes(mv[body:stop]))
        # An id we do not know: skip it (its length was bounded like an extended message).
        return None

    def _index(self, index: int) -> int:
        np = self._num_pieces
        if np is not None and index >= np:
            raise ProtocolError(f"piece index {index} out of range (num_pieces={np})")
        return index

    def _block(self, mv: memoryview, body: int) -> tuple[int, int, int]:
        index, begin, length = _THREE_U32.unpack_from(mv, body)
        self._index(index)
        if not 1 <= length <= self.max_block_len:
            raise ProtocolError(f"block length {length} outside 1..{self.max_block_len}")
        return index, begin, length

    def _once_bitfield(self) -> None:
        # BEP 3/6 allow one bitfield, have-all or have-none at the start, but aria2 1.36 sends
        # a bitfield and then have-none. Refusing that would cut off a real client, so later
        # ones are passed on and the shell merges them (a peer's piece set only grows).
        self.bitfield_messages += 1
