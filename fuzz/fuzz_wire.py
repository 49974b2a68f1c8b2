"""Fuzz the peer-wire parser: arbitrary bytes, arbitrary chunking, with/without handshake.

The input's first bytes choose the parser set-up (handshake expected or not, fast extension,
piece count known, unknown, or learnt mid-stream as after a magnet's metadata) and the chunk
sizes; the rest is the byte stream. Checked beyond "only ProtocolError":

* chunking does not matter: fed whole or in pieces, the stream gives the same events, or both
  ways fail;
* the parser never holds more than one message (``buffered <= max_message_len + 4``);
* once failed it stays failed.
"""

from __future__ import annotations

import sys

from fuzz.support import Input, chunked, instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.protocol.wire import (
        HANDSHAKE_LEN,
        Event,
        ProtocolError,
        WireParser,
        check_bitfield,
    )


def _parser(flags: int, num_pieces: int | None) -> WireParser:
    parser = WireParser(
        expect_handshake=bool(flags & 1),
        num_pieces=num_pieces,
        max_block_len=16384 if flags & 4 else 1 + (flags >> 3) * 4096,
        max_extended_len=1 << 20 if flags & 8 else 1 + (flags >> 4) * 1024,
        offer_fast=bool(flags & 2),
    )
    if not flags & 1:
        parser.fast = bool(flags & 2)
    return parser


def _run(parser: WireParser, chunks: list[bytes], learn_at: int, num_pieces: int) -> list[Event]:
    """Feed every chunk; returns the events, or raises ProtocolError like the parser."""
    events: list[Event] = []
    # a message begun under the old limits may still be held once the piece count is learnt
    bound = max(parser.max_message_len, HANDSHAKE_LEN) + 4
    for i, chunk in enumerate(chunks):
        if i == learn_at:
            parser.set_num_pieces(num_pieces)
        events += parser.feed(chunk)
        bound = max(bound, parser.max_message_len + 4)
        assert parser.buffered <= bound, "the parser holds more than one message"
    return events


def _outcome(parser: WireParser, chunks: list[bytes]) -> list[Event] | None:
    try:
        return _run(parser, chunks, -1, 0)
    except ProtocolError:
        try:
            parser.feed(b"\x00\x00\x00\x00")
        except ProtocolError:
            return None
        raise AssertionError("a failed parser accepted more input") from None


def one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    mode = inp.byte() % 3
    num_pieces = inp.uint(2)
    sizes = inp.take(inp.byte() % 8)
    stream = inp.rest()
    if mode == 2:
        # piece count unknown at first, learnt after some chunks (magnet link): no comparison
        chunks = chunked(stream, sizes)
        with only(ProtocolError):
            events = _run(
                _parser(flags, None), chunks, (flags >> 2) % (len(chunks) + 1), num_pieces
            )
            for event in events:
                if type(event).__name__ == "Bitfield":
                    with only(ProtocolError):
                        check_bitfield(event.data, num_pieces)  # type: ignore[union-attr]
        return
    known = num_pieces if mode == 0 else None
    whole = _outcome(_parser(flags, known), [stream])
    pieces = _outcome(_parser(flags, known), chunked(stream, sizes))
    assert whole == pieces, "chunking changed the parse"


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
