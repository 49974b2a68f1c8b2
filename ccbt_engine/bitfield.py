"""A fixed-size bit set in BitTorrent wire order.

Used for "which pieces do we have", "which pieces does this peer have" and resume data. Torrents
with 100 000+ pieces are normal, so the set is a ``bytearray`` (one bit per piece, exactly the
BITFIELD message payload) and the population count is kept up to date on every change: the piece
picker and the GUI ask "how many?" far more often than the set changes.

Bit order is the protocol's (BEP 3): the high bit of byte 0 is piece 0. Spare bits in the last byte
must be zero; a peer that sets them is violating the protocol, so :meth:`Bitfield.from_bytes`
rejects such input with :class:`BitfieldError` (the only exception it raises for bad input).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["Bitfield", "BitfieldError"]


class BitfieldError(ValueError):
    """A bitfield payload has the wrong length or has spare bits set."""


# For every byte value, the bit positions (0 = most significant) that are set. Iterating a byte's
# bits through this table avoids eight shifts and tests per byte in Python code.
_SET_BITS: tuple[tuple[int, ...], ...] = tuple(
    tuple(bit for bit in range(8) if value & (0x80 >> bit)) for value in range(256)
)

_NONZERO = re.compile(rb"[^\x00]")


class Bitfield:
    """Fixed-length bit set; ``count()`` is O(1), iteration skips empty bytes."""

    __slots__ = ("_count", "_data", "_num_bits")

    def __init__(self, num_bits: int) -> None:
        if num_bits < 0:
            raise ValueError(f"num_bits must be >= 0, got {num_bits}")
        self._num_bits = num_bits
        self._data = bytearray((num_bits + 7) // 8)
        self._count = 0

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes, num_bits: int) -> Bitfield:
        """Parse a BITFIELD payload (or resume data) for a torrent of ``num_bits`` pieces.

        Raises :class:`BitfieldError` when the length is not ``ceil(num_bits / 8)`` bytes or when
        any spare bit after the last piece is set (BEP 3 requires them to be zero).
        """
        if num_bits < 0:
            raise BitfieldError(f"num_bits must be >= 0, got {num_bits}")
        expected = (num_bits + 7) // 8
        if len(data) != expected:
            raise BitfieldError(
                f"bitfield is {len(data)} bytes, expected {expected} for {num_bits} pieces"
            )
        spare = expected * 8 - num_bits
        if spare and data[-1] & ((1 << spare) - 1):
            raise BitfieldError("spare bits after the last piece are set")
        bf = cls(num_bits)
        bf._data[:] = data
        bf._count = int.from_bytes(data, "big").bit_count()
        return bf

    @classmethod
    def full(cls, num_bits: int) -> Bitfield:
        """A bitfield with every bit set (a seed's view)."""
        bf = cls(num_bits)
        if num_bits:
            bf._data[:] = b"\xff" * len(bf._data)
            spare = len(bf._data) * 8 - num_bits
            bf._data[-1] &= (0xFF << spare) & 0xFF
        bf._count = num_bits
        return bf

    def copy(self) -> Bitfield:
        bf = Bitfield(self._num_bits)
        bf._data[:] = self._data
        bf._count = self._count
        return bf

    def to_bytes(self) -> bytes:
        """The BITFIELD payload: ``ceil(len / 8)`` bytes, high bit of byte 0 = bit 0."""
        return bytes(self._data)

    # -- element access -----------------------------------------------------------------------

    def _check(self, index: int) -> None:
        if not 0 <= index < self._num_bits:
            raise IndexError(f"bit {index} out of range for bitfield of {self._num_bits}")

    def __getitem__(self, index: int) -> bool:
        self._check(index)
        return bool(self._data[index >> 3] & (0x80 >> (index & 7)))

    def set(self, index: int) -> None:
        self._check(index)
        mask = 0x80 >> (index & 7)
        byte = self._data[index >> 3]
        if not byte & mask:
            self._data[index >> 3] = byte | mask
            self._count += 1

    def clear(self, index: int) -> None:
        self._check(index)
        mask = 0x80 >> (index & 7)
        byte = self._data[index >> 3]
        if byte & mask:
            self._data[index >> 3] = byte & ~mask
            self._count -= 1

    # -- aggregates ---------------------------------------------------------------------------

    def count(self) -> int:
        """Number of set bits, O(1)."""
        return self._count

    def __len__(self) -> int:
        return self._num_bits

    def all(self) -> bool:
        return self._count == self._num_bits

    def any(self) -> bool:
        return self._count > 0

    def iter_set(self) -> Iterator[int]:
        """Indices of set bits in ascending order.

        A sparse set is located with a C-level regex scan for non-zero bytes, so iterating the
        few pieces of a new peer in a 100 000-piece torrent does not visit 12 500 bytes in Python.
        """
        table = _SET_BITS
        data = self._data
        if self._count * 4 < len(data):
            for match in _NONZERO.finditer(data):
                base = match.start() << 3
                for bit in table[data[match.start()]]:
                    yield base + bit
            return
        for byte_index, value in enumerate(data):
            if value:
                base = byte_index << 3
                for bit in table[value]:
                    yield base + bit

    def iter_clear(self) -> Iterator[int]:
        """Indices of clear bits in ascending order (spare bits excluded)."""
        table = _SET_BITS
        limit = self._num_bits
        for byte_index, value in enumerate(self._data):
            if value != 0xFF:
                base = byte_index << 3
                for bit in table[value ^ 0xFF]:
                    index = base + bit
                    if index >= limit:
                        return
                    yield index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self._num_bits == other._num_bits and self._data == other._data

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Bitfield({self._count}/{self._num_bits})"
