"""Bencode: canonical forms, strictness, bounds, and properties over arbitrary input."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.bencode import BencodeError, decode, decode_prefix, decode_with_spans, encode


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"i0e", 0),
        (b"i-42e", -42),
        (b"i18446744073709551615e", 2**64 - 1),
        (b"0:", b""),
        (b"4:spam", b"spam"),
        (b"le", []),
        (b"de", {}),
        (b"l4:spami3ee", [b"spam", 3]),
        (b"d3:bar4:spam3:fooi42ee", {b"bar": b"spam", b"foo": 42}),
    ],
)
def test_decode_known(raw: bytes, value: Any) -> None:
    assert decode(raw) == value
    assert encode(value) == raw


@pytest.mark.parametrize(
    ("raw", "reason", "offset"),
    [
        (b"", "unexpected end", 0),
        (b"i01e", "non-canonical", 0),
        (b"i-0e", "non-canonical", 0),
        (b"ie", "empty integer", 0),
        (b"i-e", "invalid integer", 0),
        (b"i12", "unterminated integer", 0),
        (b"i1x2e", "invalid integer", 0),
        (b"02:ab", "non-canonical string length", 0),
        (b"5:abc", "runs past end", 0),
        (b"l1:a", "unterminated list", 4),
        (b"d1:b1:x1:a1:ye", "not sorted", 7),
        (b"d1:a1:x1:a1:ye", "duplicate", 7),
        (b"di1e1:xe", "key is not a string", 1),
        (b"i1ei2e", "trailing data", 3),
        (b"x", "unexpected byte", 0),
        (b"i" + b"9" * 100 + b"e", "longer than", 0),
    ],
)
def test_decode_errors_name_reason_and_offset(raw: bytes, reason: str, offset: int) -> None:
    with pytest.raises(BencodeError) as exc:
        decode(raw)
    assert reason in str(exc.value)
    assert exc.value.offset == offset


def test_unsorted_keys_accepted_when_lenient() -> None:
    assert decode(b"d1:b1:x1:a1:ye", strict=False) == {b"b": b"x", b"a": b"y"}
    with pytest.raises(BencodeError, match="duplicate"):
        decode(b"d1:a1:x1:a1:ye", strict=False)


def test_depth_and_size_bounds() -> None:
    deep = b"l" * 65 + b"e" * 65
    with pytest.raises(BencodeError, match="nesting deeper"):
        decode(deep)
    assert decode(b"l" * 64 + b"e" * 64) is not None
    with pytest.raises(BencodeError, match="exceeds limit"):
        decode(b"4:spam", max_size=5)


def test_spans_give_exact_info_bytes() -> None:
    # a non-canonical-by-re-encoding info dict: the span must be the original bytes
    info = b"d6:lengthi5e4:name1:ae"
    raw = b"d8:announce3:url4:info" + info + b"e"
    value, spans = decode_with_spans(raw)
    start, end = spans[b"info"]
    assert raw[start:end] == info
    assert value[b"info"] == {b"length": 5, b"name": b"a"}


def test_decode_prefix_leaves_trailing_payload() -> None:
    msg = b"d8:msg_typei1e5:piecei0ee" + b"RAWDATA"
    value, end = decode_prefix(msg)
    assert value == {b"msg_type": 1, b"piece": 0}
    assert msg[end:] == b"RAWDATA"


def test_encode_refuses_ambiguous_values() -> None:
    for bad in (True, None, 1.5, {1: b"x"}):
        with pytest.raises(TypeError):
            encode(bad)
    assert encode({"b": 1, "a": "é"}) == b"d1:a2:\xc3\xa91:bi1ee"


bvalues = st.recursive(
    st.integers() | st.binary(max_size=64),
    lambda children: (
        st.lists(children, max_size=8)
        | st.dictionaries(st.binary(max_size=16), children, max_size=8)
    ),
    max_leaves=40,
)


@given(bvalues)
def test_round_trip(value: Any) -> None:
    assert decode(encode(value)) == value


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_bencode_error(data: bytes) -> None:
    with contextlib.suppress(BencodeError):
        decode(data)


@settings(max_examples=1000)
@given(bvalues, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=3))
def test_mutated_encodings_raise_only_bencode_error(value: Any, pos: int, junk: bytes) -> None:
    raw = bytearray(encode(value))
    pos %= len(raw)
    raw[pos : pos + len(junk)] = junk
    with contextlib.suppress(BencodeError):
        decode(bytes(raw))
