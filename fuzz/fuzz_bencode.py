"""Fuzz the bencode decoder: only BencodeError, and strict decoding round-trips exactly.

Strict mode accepts only canonical bencode, so whatever it accepts must re-encode to the very
same bytes (the v1 infohash depends on that); the spans of ``decode_with_spans`` must point at
bytes that decode to the same values.
"""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.bencode import BencodeError, decode, decode_prefix, decode_with_spans, encode


def one_input(data: bytes) -> None:
    with only(BencodeError):
        value = decode(data)
        assert encode(value) == data, "strict decode accepted non-canonical bencode"
    with only(BencodeError):
        decode(data, strict=False, max_depth=8, max_size=4096)
    with only(BencodeError):
        top, spans = decode_with_spans(data, strict=False)
        for key, (start, end) in spans.items():
            assert decode(data[start:end], strict=False) == top[key], "span does not match value"
    with only(BencodeError):
        start = data[0] % (len(data) + 1) if data else 0
        _, end = decode_prefix(data, start, strict=False)
        assert start < end <= len(data), "decode_prefix returned an impossible end"


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
