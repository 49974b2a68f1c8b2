"""BEP 10 extension handshake and id registry."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.bencode import decode, encode
from ccbt_engine.protocol.extension import (
    DEFAULT_LOCAL_EXTENSIONS,
    MAX_HANDSHAKE_LEN,
    ExtensionHandshake,
    ExtensionRegistry,
    decode_extension_handshake,
    encode_extension_handshake,
)
from ccbt_engine.protocol.wire import ProtocolError


def test_full_handshake_round_trips() -> None:
    hs = ExtensionHandshake(
        m={"ut_metadata": 1, "ut_pex": 2},
        client="ccBitTorrent 0.1.0",
        listen_port=6881,
        yourip=bytes([127, 0, 0, 1]),
        reqq=500,
        metadata_size=31235,
        ipv4=bytes([127, 0, 0, 2]),
        ipv6=bytes(15) + b"\x01",
        upload_only=True,
        extra={b"complete_ago": 5, b"x_custom": [b"a", 1]},
    )
    payload = encode_extension_handshake(hs)
    assert decode(payload) == {
        b"m": {b"ut_metadata": 1, b"ut_pex": 2},
        b"v": b"ccBitTorrent 0.1.0",
        b"p": 6881,
        b"yourip": b"\x7f\x00\x00\x01",
        b"reqq": 500,
        b"metadata_size": 31235,
        b"ipv4": b"\x7f\x00\x00\x02",
        b"ipv6": bytes(15) + b"\x01",
        b"upload_only": 1,
        b"complete_ago": 5,
        b"x_custom": [b"a", 1],
    }
    assert decode_extension_handshake(payload) == hs


def test_minimal_handshake_and_defaults() -> None:
    assert encode_extension_handshake(ExtensionHandshake()) == b"d1:mdee"
    hs = decode_extension_handshake(b"de")
    assert hs == ExtensionHandshake()
    assert hs.upload_only is False


def test_real_world_shaped_handshake_with_unsorted_keys() -> None:
    # keys out of order (seen from some clients) and a key we do not interpret
    payload = (
        b"d1:v14:Transmission 41:md11:ut_metadatai3e6:ut_pexi1e11:lt_donthavei0ee"
        b"1:pi51413e4:reqqi512e13:metadata_sizei4096e12:complete_agoi-1ee"
    )
    hs = decode_extension_handshake(payload)
    assert hs.client == "Transmission 4"
    assert hs.m == {"ut_metadata": 3, "ut_pex": 1, "lt_donthave": 0}
    assert hs.listen_port == 51413 and hs.reqq == 512 and hs.metadata_size == 4096
    assert hs.extra == {b"complete_ago": -1}


def test_zero_port_and_zero_metadata_size_read_as_unknown() -> None:
    hs = decode_extension_handshake(b"d13:metadata_sizei0e1:pi0ee")
    assert hs.listen_port is None and hs.metadata_size is None


def test_non_utf8_extension_names_are_ignored_and_client_name_is_lenient() -> None:
    hs = decode_extension_handshake(b"d1:md2:\xff\xfei1e6:ut_pexi2ee1:v3:a\xffbe")
    assert hs.m == {"ut_pex": 2}
    assert hs.client == "a\ufffdb"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"d1:m",
        b"le",
        b"i1e",
        b"d1:mlee",
        b"d1:md3:fooi256eee",
        b"d1:md3:fooi-1eee",
        b"d1:md3:foo1:xee",
        b"d1:pi65536ee",
        b"d1:p4:6881e",
        b"d4:reqqi-1ee",
        b"d13:metadata_sizei-5ee",
        b"d6:youripi1ee",
        b"d6:yourip5:12345e",
        b"d4:ipv43:abce",
        b"d4:ipv64:abcde",
        b"d1:vi1ee",
        b"d11:upload_only1:1e",
        b"d1:md1:ai1e1:ai2eee",  # duplicate key
    ],
)
def test_malformed_handshakes_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_extension_handshake(payload)


def test_oversized_handshake_is_refused_before_decoding() -> None:
    payload = b"d1:x" + b"%d:" % MAX_HANDSHAKE_LEN + bytes(MAX_HANDSHAKE_LEN) + b"e"
    with pytest.raises(ProtocolError, match="too large"):
        decode_extension_handshake(payload)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ProtocolError):
        decode_extension_handshake(b"d1:x" + b"l" * 50 + b"e" * 50 + b"e")


def test_extra_may_not_shadow_known_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        encode_extension_handshake(ExtensionHandshake(extra={b"p": 1}))


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_protocol_error(payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_extension_handshake(payload)


_bvalues: st.SearchStrategy[Any] = st.recursive(
    st.integers(-(2**70), 2**70) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    [b"m", b"v", b"p", b"yourip", b"reqq", b"metadata_size", b"ipv4", b"ipv6", b"upload_only"]
) | st.binary(max_size=8)


@settings(max_examples=200)
@given(st.dictionaries(_keys, _bvalues | st.dictionaries(st.binary(max_size=12), _bvalues)))
def test_arbitrary_dictionaries_raise_only_protocol_error(d: dict[bytes, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        hs = decode_extension_handshake(encode(d))
        # whatever was accepted encodes again
        decode(encode_extension_handshake(hs))


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_local_ids() -> None:
    reg = ExtensionRegistry()
    assert reg.local == dict(DEFAULT_LOCAL_EXTENSIONS)
    assert reg.local_id("ut_metadata") == 1
    assert reg.local_name(2) == "ut_pex"
    assert reg.local_name(0) is None and reg.local_name(99) is None
    hs = reg.handshake(client="ccBitTorrent", metadata_size=100)
    assert hs.m == {"ut_metadata": 1, "ut_pex": 2, "lt_donthave": 3}
    assert decode(encode_extension_handshake(hs))[b"m"] == {
        b"ut_metadata": 1,
        b"ut_pex": 2,
        b"lt_donthave": 3,
    }


@pytest.mark.parametrize("local", [{"a": 0}, {"a": 256}, {"a": 1, "b": 1}])
def test_registry_refuses_bad_local_ids(local: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ExtensionRegistry(local)


def test_registry_remote_ids_are_additive_and_zero_disables() -> None:
    reg = ExtensionRegistry()
    reg.update_remote(ExtensionHandshake(m={"ut_metadata": 3, "ut_pex": 1, "lt_donthave": 0}))
    assert reg.remote_id("ut_metadata") == 3
    assert reg.remote_id("ut_pex") == 1
    assert reg.remote_id("lt_donthave") is None
    assert reg.remote_id("ut_holepunch") is None
    # a later handshake lists only changes
    reg.update_remote(ExtensionHandshake(m={"ut_pex": 0, "lt_donthave": 7}))
    assert reg.remote == {"ut_metadata": 3, "lt_donthave": 7}
