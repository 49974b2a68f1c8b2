"""KRPC messages: round trips, validation, and fuzzing that only KRPCError ever escapes."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine import bencode
from ccbt_engine.protocol import krpc
from ccbt_engine.protocol.krpc import ErrorReply, KRPCError, NodeInfo, Query, Response

ID_A = bytes(range(20))
ID_B = bytes(range(20, 40))


def test_query_round_trip_for_each_method() -> None:
    ih = os.urandom(20)
    cases: dict[str, dict[bytes, Any]] = {
        "ping": {},
        "find_node": {b"target": ih},
        "get_peers": {b"info_hash": ih},
        "announce_peer": {b"info_hash": ih, b"port": 6881, b"token": b"tok"},
        "sample_infohashes": {b"target": ih},
    }
    for method, args in cases.items():
        data = krpc.encode_query(b"aa", method, {b"id": ID_A, **args}, read_only=True)
        q = krpc.decode(data)
        assert isinstance(q, Query)
        assert (q.tid, q.method, q.sender, q.read_only) == (b"aa", method, ID_A, True)
        if method != "ping":
            assert q.target == ih
    q = krpc.decode(
        krpc.encode_query(b"x", "announce_peer", {**cases["announce_peer"], b"id": ID_A})
    )
    assert isinstance(q, Query) and q.port == 6881 and q.token == b"tok" and not q.implied_port


def test_announce_implied_port_needs_no_port() -> None:
    data = krpc.encode_query(
        b"t1",
        "announce_peer",
        {b"id": ID_A, b"info_hash": ID_B, b"implied_port": 1, b"token": b"k"},
    )
    q = krpc.decode(data)
    assert isinstance(q, Query) and q.implied_port and q.port is None


def test_response_round_trip_with_nodes_values_ip_and_samples() -> None:
    nodes = (NodeInfo(ID_A, "1.2.3.4", 6881), NodeInfo(ID_B, "5.6.7.8", 1))
    nodes6 = (NodeInfo(ID_B, "2001:db8::1", 51413),)
    body = {
        b"id": ID_B,
        b"nodes": krpc.encode_nodes(nodes),
        b"nodes6": krpc.encode_nodes(nodes6),
        b"values": [krpc.encode_peer("9.9.9.9", 80), krpc.encode_peer("::1", 81), b"junk"],
        b"token": b"secret",
        b"samples": ID_A + ID_B,
        b"num": 2,
        b"interval": 60,
    }
    r = krpc.decode(krpc.encode_response(b"zz", body, ip=("10.0.0.1", 4000)))
    assert isinstance(r, Response)
    assert r.sender == ID_B and r.nodes == nodes and r.nodes6 == nodes6
    assert r.values == (("9.9.9.9", 80), ("::1", 81))  # the malformed entry is skipped
    assert r.token == b"secret" and r.samples == (ID_A, ID_B) and r.num == 2
    assert r.ip == ("10.0.0.1", 4000)


def test_error_round_trip() -> None:
    e = krpc.decode(krpc.encode_error(b"q1", 201, "nope"))
    assert e == ErrorReply(b"q1", 201, "nope")


def test_port_zero_nodes_are_dropped() -> None:
    data = ID_A + krpc.encode_peer("1.2.3.4", 0) + ID_B + krpc.encode_peer("1.2.3.5", 9)
    assert krpc.decode_nodes(data) == (NodeInfo(ID_B, "1.2.3.5", 9),)


@pytest.mark.parametrize(
    ("raw", "code", "tid"),
    [
        (b"", krpc.ERROR_PROTOCOL, None),
        (b"le", krpc.ERROR_PROTOCOL, None),
        (b"d1:y1:qe", krpc.ERROR_PROTOCOL, None),  # no tid
        (b"d1:t2:ab1:y1:xe", krpc.ERROR_PROTOCOL, None),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:ab1:y1:qe", krpc.ERROR_PROTOCOL, b"ab"),  # short id
        (b"d1:ad2:id20:" + ID_A + b"e1:q4:evil1:t2:ab1:y1:qe", krpc.ERROR_METHOD_UNKNOWN, b"ab"),
        (
            bencode.encode(
                {
                    b"t": b"ab",
                    b"y": b"q",
                    b"q": b"announce_peer",
                    b"a": {b"id": ID_A, b"info_hash": ID_B, b"port": 1},
                }
            ),
            krpc.ERROR_PROTOCOL,
            b"ab",
        ),  # no token
        (
            bencode.encode({b"t": b"ab", b"y": b"r", b"r": {b"id": ID_A, b"nodes": b"x" * 27}}),
            krpc.ERROR_PROTOCOL,
            None,
        ),
        (b"d" + b"1:a" * 3000 + b"e", krpc.ERROR_PROTOCOL, None),  # oversized
    ],
)
def test_malformed_messages_raise_krpc_error(raw: bytes, code: int, tid: bytes | None) -> None:
    with pytest.raises(KRPCError) as info:
        krpc.decode(raw)
    assert info.value.code == code
    assert info.value.tid == tid


def test_unsorted_keys_from_other_clients_are_accepted() -> None:
    raw = b"d1:y1:q1:t2:ab1:q4:ping1:ad2:id20:" + ID_A + b"ee"
    q = krpc.decode(raw)
    assert isinstance(q, Query) and q.method == "ping"


def test_looks_like_krpc_separates_from_utp() -> None:
    from ccbt_engine.dht.node import looks_like_krpc

    assert looks_like_krpc(krpc.encode_query(b"a", "ping", {b"id": ID_A}))
    assert not looks_like_krpc(bytes([0x41, 0]) + b"\x00" * 18)  # uTP ST_SYN header


# -- fuzzing ----------------------------------------------------------------------------------
def _decode_only_krpc_error(data: bytes) -> None:
    with contextlib.suppress(KRPCError):
        krpc.decode(data)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_only_krpc_error(data)


_leaf = st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=40))
_values = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    b"id",
                    b"t",
                    b"y",
                    b"q",
                    b"a",
                    b"r",
                    b"e",
                    b"nodes",
                    b"values",
                    b"token",
                    b"port",
                    b"x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"want",
        b"nodes",
        b"nodes6",
        b"values",
        b"samples",
        b"num",
        b"interval",
        b"name",
    ]
)


@settings(max_examples=600, deadline=None)
@given(
    tid=st.binary(max_size=40),
    kind=st.sampled_from([b"q", b"r", b"e", b"z"]),
    method=st.sampled_from(
        [b"ping", b"find_node", b"get_peers", b"announce_peer", b"sample_infohashes", b"x"]
    ),
    body=st.dictionaries(
        _keys, st.one_of(_values, st.binary(min_size=20, max_size=20)), max_size=6
    ),
    ip=st.one_of(st.none(), st.binary(max_size=20)),
    err=_values,
)
def test_fuzz_structured_messages(
    tid: bytes, kind: bytes, method: bytes, body: dict[bytes, object], ip: bytes | None, err: object
) -> None:
    msg: dict[bytes, object] = {
        b"t": tid,
        b"y": kind,
        b"q": method,
        b"a": body,
        b"r": body,
        b"e": err,
    }
    if ip is not None:
        msg[b"ip"] = ip
    _decode_only_krpc_error(bencode.encode(msg))


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 255), st.booleans())
def test_fuzz_mutated_valid_reply(pos: int, byte: int, truncate: bool) -> None:
    body = {
        b"id": ID_B,
        b"nodes": krpc.encode_nodes([NodeInfo(ID_A, "1.2.3.4", 6881)] * 3),
        b"values": [krpc.encode_peer("9.9.9.9", 80)] * 3,
        b"token": b"secret",
    }
    data = bytearray(krpc.encode_response(b"zz", body, ip=("10.0.0.1", 4000)))
    pos %= len(data)
    if truncate:
        del data[pos:]
    else:
        data[pos] = byte
    _decode_only_krpc_error(bytes(data))
