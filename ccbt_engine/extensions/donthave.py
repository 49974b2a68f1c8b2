"""BEP 54 ``lt_donthave``: a peer takes back a HAVE (it deleted or lost a piece).

Without it, a peer that lost a piece would keep answering our requests for it with rejects (or
silence) and we would keep counting it in the piece's availability. The message is a 4-byte
piece index; anything else is a :class:`DontHaveError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from ccbt_engine.extensions import Extension, ExtPeer
from ccbt_engine.protocol.wire import ProtocolError

__all__ = ["DontHaveError", "LtDontHave", "decode_donthave", "encode_donthave"]

_INDEX: Final = struct.Struct(">I")


class DontHaveError(ProtocolError):
    """A malformed lt_donthave message."""


def encode_donthave(piece: int) -> bytes:
    return _INDEX.pack(piece)


def decode_donthave(payload: bytes) -> int:
    if len(payload) != _INDEX.size:
        raise DontHaveError(f"lt_donthave: payload of {len(payload)} bytes, expected 4")
    (piece,) = _INDEX.unpack(payload)
    return int(piece)


class LtDontHave(Extension):
    """Receive lt_donthave (``on_donthave(peer, piece)`` updates the host's view) and send it."""

    name = "lt_donthave"

    def __init__(self, on_donthave: Callable[[ExtPeer, int], None]) -> None:
        self.on_donthave = on_donthave

    def on_message(self, peer: ExtPeer, payload: bytes) -> None:
        self.on_donthave(peer, decode_donthave(payload))

    def broadcast(self, piece: int) -> int:
        """Tell every peer that supports it that we no longer have ``piece``; returns how many."""
        sent = 0
        for peer in self.manager.peers():
            sent += self.manager.send(peer, self.name, encode_donthave(piece))
        return sent
