"""Bencode (BEP 3) decoder and encoder.

Everything that arrives from the network or from a .torrent file passes through here, so the
decoder is strict and bounded:

* integers must be canonical (``i0e``, no leading zeros, no ``-0``);
* dictionary keys must be byte strings, unique, and (in ``strict`` mode) sorted;
* nesting depth and total input size are capped;
* every failure is a :class:`BencodeError` carrying the byte offset where it happened, and no
  other exception type ever escapes :func:`decode` (property-tested in ``tests/unit``).

Strings decode to ``bytes``: BitTorrent strings are binary (piece hashes, compact peers) and only
some are text, which the caller knows and decodes itself.

The infohash is the hash of the *exact* bytes of the info dictionary as they appeared in the file,
not of a re-encoding (a non-canonical torrent would otherwise get the wrong hash), so
:func:`decode_with_spans` reports where each top-level value sits in the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

__all__ = [
    "MAX_DEPTH",
    "BValue",
    "BencodeError",
    "decode",
    "decode_prefix",
    "decode_with_spans",
    "encode",
]

BValue: TypeAlias = int | bytes | list[Any] | dict[bytes, Any]

#: Deepest nesting accepted. Real torrents and KRPC messages nest < 10 levels.
MAX_DEPTH = 64

_DIGITS = frozenset(b"0123456789")
#: Longest integer text accepted; BitTorrent integers are at most 64-bit (20 digits). Also keeps
#: ``int()`` clear of CPython's digit limit, which would raise a plain ValueError.
_MAX_INT_CHARS = 64


class BencodeError(ValueError):
    """Malformed bencoded data. ``offset`` is the byte position where decoding failed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.reason = message
        self.offset = offset


class _Decoder:
    __slots__ = ("data", "end", "max_depth", "strict")

    def __init__(self, data: bytes, strict: bool, max_depth: int) -> None:
        self.data = data
        self.end = len(data)
        self.strict = strict
        self.max_depth = max_depth

    def value(self, pos: int, depth: int) -> tuple[BValue, int]:
        if pos >= self.end:
            raise BencodeError("unexpected end of data", pos)
        c = self.data[pos]
        if c == 0x69:  # i
            return self.integer(pos)
        if c in _DIGITS:
            return self.string(pos)
        if depth >= self.max_depth:
            raise BencodeError(f"nesting deeper than {self.max_depth}", pos)
        if c == 0x6C:  # l
            return self.list(pos, depth + 1)
        if c == 0x64:  # d
            return self.dict(pos, depth + 1)
        raise BencodeError(f"unexpected byte {bytes([c])!r}", pos)

    def integer(self, pos: int) -> tuple[int, int]:
        data = self.data
        end = data.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("unterminated integer", pos)
        body = data[pos + 1 : end]
        if len(body) > _MAX_INT_CHARS:
            raise BencodeError(f"integer longer than {_MAX_INT_CHARS} characters", pos)
        if not body:
            raise BencodeError("empty integer", pos)
        digits = body[1:] if body[:1] == b"-" else body
        if not digits or not all(b in _DIGITS for b in digits):
            raise BencodeError("invalid integer", pos)
        if digits[0] == 0x30 and (len(digits) > 1 or body[:1] == b"-"):
            raise BencodeError("non-canonical integer", pos)
        return int(body), end + 1

    def string(self, pos: int) -> tuple[bytes, int]:
        data = self.data
        colon = data.find(b":", pos, pos + 21)
        if colon < 0:
            raise BencodeError("invalid string length", pos)
        digits = data[pos:colon]
        if not all(b in _DIGITS for b in digits):
            raise BencodeError("invalid string length", pos)
        if digits[0] == 0x30 and len(digits) > 1:
            raise BencodeError("non-canonical string length", pos)
        length = int(digits)
        start = colon + 1
        stop = start + length
        if stop > self.end:
            raise BencodeError(f"string of length {length} runs past end of data", pos)
        return data[start:stop], stop

    def list(self, pos: int, depth: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        pos += 1
        data = self.data
        while True:
            if pos >= self.end:
                raise BencodeError("unterminated list", pos)
            if data[pos] == 0x65:  # e
                return out, pos + 1
            item, pos = self.value(pos, depth)
            out.append(item)

    def dict(
        self, pos: int, depth: int, spans: dict[bytes, tuple[int, int]] | None = None
    ) -> tuple[dict[bytes, Any], int]:
        """Decode a dictionary; with ``spans``, record where each value's bytes lie."""
        out: dict[bytes, Any] = {}
        pos += 1
        data = self.data
        last: bytes | None = None
        while True:
            if pos >= self.end:
                raise BencodeError("unterminated dictionary", pos)
            if data[pos] == 0x65:
                return out, pos + 1
            if data[pos] not in _DIGITS:
                raise BencodeError("dictionary key is not a string", pos)
            key_pos = pos
            key, pos = self.string(pos)
            if key in out:
                raise BencodeError(f"duplicate dictionary key {key[:40]!r}", key_pos)
            if self.strict and last is not None and key < last:
                raise BencodeError(f"dictionary keys not sorted ({key[:40]!r})", key_pos)
            last = key
            start = pos
            out[key], pos = self.value(pos, depth)
            if spans is not None:
                spans[key] = (start, pos)


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"bencode input must be bytes-like, not {type(data).__name__}")


def _check_size(data: bytes, max_size: int | None) -> None:
    if max_size is not None and len(data) > max_size:
        raise BencodeError(f"input of {len(data)} bytes exceeds limit of {max_size}", max_size)


def decode(
    data: bytes | bytearray | memoryview,
    *,
    strict: bool = True,
    max_depth: int = MAX_DEPTH,
    max_size: int | None = None,
) -> Any:
    """Decode exactly one bencoded value that spans all of ``data``.

    ``strict=False`` accepts dictionaries with unsorted keys (some torrent makers write them);
    duplicates are refused either way because they make the meaning ambiguous.
    """
    buf = _as_bytes(data)
    _check_size(buf, max_size)
    value, end = _Decoder(buf, strict, max_depth).value(0, 0)
    if end != len(buf):
        raise BencodeError("trailing data after value", end)
    return value


def decode_prefix(
    data: bytes | bytearray | memoryview,
    start: int = 0,
    *,
    strict: bool = True,
    max_depth: int = MAX_DEPTH,
) -> tuple[Any, int]:
    """Decode one value starting at ``start``; return it and the offset just after it.

    For messages that carry raw bytes after a bencoded header (BEP 9 ``ut_metadata`` data).
    """
    buf = _as_bytes(data)
    if not 0 <= start <= len(buf):
        raise BencodeError("start offset outside data", start)
    return _Decoder(buf, strict, max_depth).value(start, 0)


def decode_with_spans(
    data: bytes | bytearray | memoryview,
    *,
    strict: bool = True,
    max_depth: int = MAX_DEPTH,
    max_size: int | None = None,
) -> tuple[dict[bytes, Any], dict[bytes, tuple[int, int]]]:
    """Decode a top-level dictionary and report the ``(start, end)`` byte span of each value.

    ``data[start:end]`` of the ``b"info"`` entry is what the v1/v2 infohash is computed over.
    """
    buf = _as_bytes(data)
    _check_size(buf, max_size)
    if not buf or buf[0] != 0x64:
        raise BencodeError("top-level value is not a dictionary", 0)
    spans: dict[bytes, tuple[int, int]] = {}
    out, pos = _Decoder(buf, strict, max_depth).dict(0, 1, spans)
    if pos != len(buf):
        raise BencodeError("trailing data after value", pos)
    return out, spans


def encode(value: Any) -> bytes:
    """Encode ``value`` canonically (dictionary keys sorted by their raw bytes).

    Accepts ``int``, ``bytes``-like, ``str`` (UTF-8), lists/tuples and mappings whose keys are
    ``bytes`` or ``str``. ``bool`` and ``None`` are refused: they have no bencode form, and
    silently writing ``True`` as ``i1e`` hides bugs.
    """
    out: list[bytes] = []
    _encode_into(value, out, 0)
    return b"".join(out)


def _encode_into(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"structure nested deeper than {MAX_DEPTH}")
    if isinstance(value, bool) or value is None:
        raise TypeError(f"cannot bencode {value!r}")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, Mapping):
        items: list[tuple[bytes, Any]] = []
        for k, v in value.items():
            if isinstance(k, str):
                k = k.encode("utf-8")
            elif not isinstance(k, bytes):
                raise TypeError(f"dictionary key must be bytes or str, not {type(k).__name__}")
            items.append((k, v))
        items.sort(key=lambda kv: kv[0])
        for i in range(1, len(items)):
            if items[i][0] == items[i - 1][0]:
                raise ValueError(f"duplicate dictionary key {items[i][0]!r}")
        out.append(b"d")
        for k, v in items:
            out.append(b"%d:" % len(k))
            out.append(k)
            _encode_into(v, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode_into(item, out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")
