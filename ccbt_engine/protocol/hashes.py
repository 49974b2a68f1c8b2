"""BEP 52 hash transfer messages (``hash request`` 21, ``hashes`` 22, ``hash reject`` 23), sans-I/O.

A v2 info dict names each file only by its merkle root; the piece-layer hashes a downloader
needs to check pieces come from peers, a range at a time, each range with the "uncle" hashes
that prove it against the root. All three messages share one header::

    <pieces root: 32 bytes><base layer: u32><index: u32><length: u32><proof layers: u32>

``hashes`` appends the ``length`` requested nodes, then one uncle per proof layer above the
requested subtree (:func:`ccbt_engine.merkle.num_uncles`, counted as libtorrent counts them).

The wire parser hands these messages over unparsed (``wire.HashTransfer``) and
:func:`parse_hash_message` decodes them here, so the hot path of ``wire.py`` stays untouched.
Malformed framing raises :class:`~ccbt_engine.protocol.wire.ProtocolError` only (property-tested);
*semantic* checks (is that root ours, is the range inside the file) belong to whoever answers or
verifies, because a well-formed request for something we lack deserves a ``hash reject``, not a
dropped connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from ccbt_engine.merkle import HASH_SIZE, num_uncles
from ccbt_engine.protocol.wire import ProtocolError

__all__ = [
    "HASHES",
    "HASH_REJECT",
    "HASH_REQUEST",
    "MAX_HASH_COUNT",
    "MAX_PROOF_LAYERS",
    "HashMessage",
    "HashReject",
    "HashRequest",
    "Hashes",
    "encode_hash_reject",
    "encode_hash_request",
    "encode_hashes",
    "parse_hash_message",
]

HASH_REQUEST: Final = 21
HASHES: Final = 22
HASH_REJECT: Final = 23

#: Largest ``length`` accepted in a ``hashes`` reply and served for a request: libtorrent asks
#: for at most 512 piece hashes at a time, and 512 hashes (16 KiB) are as much as one block, so
#: a 49-byte request can never make us send more than a block request could.
MAX_HASH_COUNT: Final = 512
#: A file of 2**50 bytes has a 36-layer tree; anything deeper is nonsense from a peer.
MAX_PROOF_LAYERS: Final = 64

_HEADER: Final = struct.Struct(">32sIIII")
_HEADER_LEN: Final = _HEADER.size  # 48
_FRAME: Final = struct.Struct(">IB")


@dataclass(frozen=True, slots=True)
class HashRequest:
    """A range of one layer of the tree of the file whose root is ``pieces_root``."""

    pieces_root: bytes
    base: int
    index: int
    length: int
    proof_layers: int


@dataclass(frozen=True, slots=True)
class Hashes:
    """A reply: the request's fields, the ``length`` nodes, then the uncle hashes."""

    request: HashRequest
    nodes: tuple[bytes, ...]
    uncles: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class HashReject:
    """The peer will not (or cannot) answer ``request``."""

    request: HashRequest


HashMessage: TypeAlias = HashRequest | Hashes | HashReject


def parse_hash_message(msg_id: int, payload: bytes | memoryview) -> HashMessage:
    """Decode the body (after the id byte) of message ``msg_id`` (21, 22 or 23)."""
    body = bytes(payload)
    if msg_id not in (HASH_REQUEST, HASHES, HASH_REJECT):
        raise ProtocolError(f"message id {msg_id} is not a BEP 52 hash message")
    if len(body) < _HEADER_LEN:
        raise ProtocolError(f"hash message {msg_id} of {len(body)} bytes is shorter than a header")
    req = HashRequest(*_HEADER.unpack_from(body))
    if msg_id != HASHES:
        if len(body) != _HEADER_LEN:
            raise ProtocolError(f"hash message {msg_id} with {len(body)} bytes, expected 48")
        return req if msg_id == HASH_REQUEST else HashReject(req)
    if not 1 <= req.length <= MAX_HASH_COUNT:
        raise ProtocolError(f"hashes reply with length {req.length} outside 1..{MAX_HASH_COUNT}")
    if req.proof_layers > MAX_PROOF_LAYERS:
        raise ProtocolError(f"hashes reply with {req.proof_layers} proof layers")
    total = req.length + num_uncles(req.length, req.proof_layers)
    if len(body) != _HEADER_LEN + total * HASH_SIZE:
        raise ProtocolError(
            f"hashes reply of {len(body)} bytes, expected {_HEADER_LEN + total * HASH_SIZE}"
        )
    hashes = [body[i : i + HASH_SIZE] for i in range(_HEADER_LEN, len(body), HASH_SIZE)]
    return Hashes(req, tuple(hashes[: req.length]), tuple(hashes[req.length :]))


def _frame(msg_id: int, req: HashRequest, extra: bytes = b"") -> bytes:
    if len(req.pieces_root) != HASH_SIZE:
        raise ValueError("pieces root must be 32 bytes")
    try:
        header = _HEADER.pack(req.pieces_root, req.base, req.index, req.length, req.proof_layers)
    except struct.error as exc:
        raise ValueError(f"hash request field out of range: {req!r}") from exc
    return _FRAME.pack(1 + _HEADER_LEN + len(extra), msg_id) + header + extra


def encode_hash_request(req: HashRequest) -> bytes:
    return _frame(HASH_REQUEST, req)


def encode_hash_reject(req: HashRequest) -> bytes:
    return _frame(HASH_REJECT, req)


def encode_hashes(req: HashRequest, hashes: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A ``hashes`` reply; ``hashes`` is the range followed by its uncles."""
    if len(hashes) != req.length + num_uncles(req.length, req.proof_layers):
        raise ValueError("hash count does not match the request's length and proof layers")
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ValueError("hashes must be 32 bytes each")
    return _frame(HASHES, req, b"".join(hashes))
