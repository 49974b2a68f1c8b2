"""BEP 52 hash messages (ccbt_engine.protocol.hashes) and their framing in the wire parser."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.merkle import num_uncles
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.hashes import (
    HASH_REJECT,
    HASH_REQUEST,
    HASHES,
    MAX_HASH_COUNT,
    Hashes,
    HashReject,
    HashRequest,
    encode_hash_reject,
    encode_hash_request,
    encode_hashes,
    parse_hash_message,
)
from ccbt_engine.protocol.wire import HashTransfer, Have, ProtocolError, WireParser

ROOT = bytes(range(32))
REQ = HashRequest(ROOT, 2, 512, 512, 10)


def body(frame: bytes) -> tuple[int, bytes]:
    """(id, payload) of one encoded message."""
    (length,) = struct.unpack(">I", frame[:4])
    assert len(frame) == 4 + length
    return frame[4], frame[5:]


def test_request_and_reject_layout_is_bep52() -> None:
    frame = encode_hash_request(REQ)
    assert frame == struct.pack(">IB", 49, 21) + ROOT + struct.pack(">IIII", 2, 512, 512, 10)
    assert parse_hash_message(*body(frame)) == REQ
    reject = encode_hash_reject(REQ)
    assert reject[4] == HASH_REJECT and reject[5:] == frame[5:]
    assert parse_hash_message(*body(reject)) == HashReject(REQ)


def test_hashes_roundtrip_splits_nodes_and_uncles() -> None:
    uncles = num_uncles(512, 10)
    assert uncles == 2
    hashes = [bytes([i % 256]) * 32 for i in range(512 + uncles)]
    frame = encode_hashes(REQ, hashes)
    assert len(frame) == 4 + 1 + 48 + 32 * 514
    msg = parse_hash_message(*body(frame))
    assert msg == Hashes(REQ, tuple(hashes[:512]), tuple(hashes[512:]))


@pytest.mark.parametrize(
    ("msg_id", "payload", "match"),
    [
        (HASH_REQUEST, bytes(47), "shorter"),
        (HASH_REQUEST, bytes(49), "expected 48"),
        (HASH_REJECT, bytes(80), "expected 48"),
        (HASHES, ROOT + struct.pack(">IIII", 0, 0, 0, 0), "length 0"),
        (HASHES, ROOT + struct.pack(">IIII", 0, 0, MAX_HASH_COUNT + 1, 0), "length"),
        (HASHES, ROOT + struct.pack(">IIII", 0, 0, 2, 65), "proof layers"),
        (HASHES, ROOT + struct.pack(">IIII", 0, 0, 2, 0) + bytes(32), "expected"),
        (HASHES, ROOT + struct.pack(">IIII", 0, 0, 2, 0) + bytes(65), "expected"),
        (7, bytes(48), "not a BEP 52"),
    ],
)
def test_malformed_messages(msg_id: int, payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_hash_message(msg_id, payload)


def test_encoders_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError):
        encode_hash_request(HashRequest(b"short", 0, 0, 1, 0))
    with pytest.raises(ValueError):
        encode_hash_request(HashRequest(ROOT, -1, 0, 1, 0))
    with pytest.raises(ValueError):
        encode_hashes(REQ, [bytes(32)] * 3)
    with pytest.raises(ValueError):
        encode_hashes(HashRequest(ROOT, 0, 0, 2, 0), [bytes(32), bytes(31)])


def test_wire_parser_hands_hash_messages_over_unparsed() -> None:
    p = WireParser(expect_handshake=False, num_pieces=8)
    stream = encode_hash_request(REQ) + wire.encode_have(3) + encode_hash_reject(REQ)
    events = p.feed(stream)
    assert events == [
        HashTransfer(HASH_REQUEST, encode_hash_request(REQ)[5:]),
        Have(3),
        HashTransfer(HASH_REJECT, encode_hash_reject(REQ)[5:]),
    ]
    # bounded like any other message without a fixed size
    small = WireParser(expect_handshake=False, max_extended_len=100)
    with pytest.raises(ProtocolError, match="bad length"):
        small.feed(encode_hashes(REQ, [bytes(32)] * 514))


@settings(max_examples=400, deadline=None)
@given(
    msg_id=st.sampled_from([HASH_REQUEST, HASHES, HASH_REJECT, 0, 99]),
    payload=st.binary(max_size=400),
)
def test_parser_raises_only_protocol_error(msg_id: int, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_hash_message(msg_id, payload)


@settings(max_examples=300, deadline=None)
@given(
    base=st.integers(0, 2**32 - 1),
    index=st.integers(0, 2**32 - 1),
    length=st.integers(1, MAX_HASH_COUNT),
    proof=st.integers(0, 64),
    tail=st.integers(-40, 40),
)
def test_structured_hashes_parse_or_raise_protocol_error(
    base: int, index: int, length: int, proof: int, tail: int
) -> None:
    """Well-formed headers with a hash section of the right size, or almost."""
    size = 32 * (length + num_uncles(length, proof)) + tail
    payload = ROOT + struct.pack(">IIII", base, index, length, proof) + bytes(max(0, size))
    try:
        msg = parse_hash_message(HASHES, payload)
    except ProtocolError:
        assert tail != 0
        return
    assert tail == 0 and isinstance(msg, Hashes)
    assert len(msg.nodes) == length and len(msg.uncles) == num_uncles(length, proof)
