"""Magnet URIs: parsing every field, building, round trips, and hostile input."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.bencode import encode
from ccbt_engine.magnet import (
    MAX_MAGNET_LENGTH,
    Magnet,
    MagnetError,
    magnet_from_metainfo,
    parse_magnet,
)
from ccbt_engine.metainfo import parse_torrent

V1 = hashlib.sha1(b"v1").digest()
V2 = hashlib.sha256(b"v2").digest()
BTIH = "urn:btih:" + V1.hex()
BTMH = "urn:btmh:1220" + V2.hex()


def test_full_magnet() -> None:
    uri = (
        f"magnet:?xt={BTIH}&xt={BTMH}&dn=My+File%20%C3%A9&xl=12345"
        "&tr=udp%3A%2F%2F127.0.0.1%3A6969&tr.1=http://127.0.0.1/announce&tr=udp%3A%2F%2F127.0.0.1%3A6969"
        "&ws=http%3A%2F%2F127.0.0.1%2Fseed%2F&x.pe=127.0.0.1:6881&x.pe=[::1]:51413&x.pe=host.lan:1"
        "&so=0,2,4-6&kt=ignored&xs=ignored"
    )
    m = parse_magnet(uri)
    assert m.info_hash_v1 == V1
    assert m.info_hash_v2 == V2
    assert m.info_hash == V1
    assert m.display_name == "My File é"
    assert m.exact_length == 12345
    assert m.trackers == ["udp://127.0.0.1:6969", "http://127.0.0.1/announce"]
    assert m.web_seeds == ["http://127.0.0.1/seed/"]
    assert m.peers == [("127.0.0.1", 6881), ("::1", 51413), ("host.lan", 1)]
    assert m.select_only == [0, 2, 4, 5, 6]
    assert parse_magnet(m.to_uri()) == m


def test_btih_forms() -> None:
    b32 = base64.b32encode(V1).decode()
    assert len(b32) == 32
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32}").info_hash_v1 == V1
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32.lower()}").info_hash_v1 == V1
    assert parse_magnet(f"MAGNET:?XT=URN:BTIH:{V1.hex().upper()}").info_hash_v1 == V1


def test_v2_only_magnet_uses_truncated_hash_on_the_wire() -> None:
    m = parse_magnet(f"magnet:?xt={BTMH}")
    assert m.info_hash_v1 is None
    assert m.info_hash == V2[:20]
    assert m.to_uri() == f"magnet:?xt={BTMH}"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://example/", "not a magnet link"),
        ("magnet:?dn=x", "no BitTorrent infohash"),
        ("magnet:?xt=urn:ed2k:abcdef", "no BitTorrent infohash"),
        ("magnet:?xt=urn:btih:1234", "40 hex digits"),
        ("magnet:?xt=urn:btih:" + "g" * 40, "not hexadecimal"),
        ("magnet:?xt=urn:btih:" + "1" * 32, "not valid base32"),
        ("magnet:?xt=urn:btmh:1114" + "a" * 40, "not a SHA2-256 multihash"),
        ("magnet:?xt=urn:btmh:1220" + "a" * 63, "64 hex digits"),
        (f"magnet:?xt={BTIH}&xt=urn:btih:" + "0" * 40, "two different btih"),
        (f"magnet:?xt={BTMH}&xt=urn:btmh:1220" + "0" * 64, "two different btmh"),
        (f"magnet:?xt={BTIH}&so=3-1", "runs backwards"),
        (f"magnet:?xt={BTIH}&so=a", "invalid file index"),
        (f"magnet:?xt={BTIH}&so=0-99999999", "invalid file index"),
        (f"magnet:?xt={BTIH}&so=0-999999,1000000-2000000", "more than"),
        (f"magnet:?xt={BTIH}&xl=-1", "invalid exact length"),
        (f"magnet:?xt={BTIH}&xl=" + "9" * 30, "invalid exact length"),
        ("magnet:?xt=" + BTIH + "&dn=" + "x" * MAX_MAGNET_LENGTH, "longer than"),
    ],
)
def test_bad_magnets(uri: str, message: str) -> None:
    with pytest.raises(MagnetError, match=message):
        parse_magnet(uri)


def test_non_string_is_magnet_error() -> None:
    with pytest.raises(MagnetError):
        parse_magnet(b"magnet:?" + BTIH.encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "peer",
    [
        "",
        "host",
        ":1",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:x",
        "[::1]",
        "[zz]:1",
        "::1:5",
        "a b:1",
    ],
)
def test_malformed_peers_are_skipped(peer: str) -> None:
    m = parse_magnet(f"magnet:?xt={BTIH}&x.pe={peer}")
    assert m.peers == []


def test_duplicates_and_empties_dropped_order_kept() -> None:
    m = parse_magnet(f"magnet:?xt={BTIH}&tr=b&tr=a&tr=b&tr=&ws=w&ws=w&&novalue&so=5,1,1")
    assert m.trackers == ["b", "a"]
    assert m.web_seeds == ["w"]
    assert m.select_only == [1, 5]


def test_urls_with_control_characters_dropped() -> None:
    m = parse_magnet(
        f"magnet:?xt={BTIH}&tr=http%3A%2F%2F127.0.0.1%2Fa%0D%0AX-Evil%3A%201&tr=http://127.0.0.1/ok"
        "&ws=http://127.0.0.1/%00"
    )
    assert m.trackers == ["http://127.0.0.1/ok"]
    assert m.web_seeds == []


def test_invalid_percent_utf8_replaced() -> None:
    m = parse_magnet(f"magnet:?xt={BTIH}&dn=a%FFb")
    assert m.display_name == "a\ufffdb"
    assert parse_magnet(m.to_uri()) == m


def test_to_uri_requires_a_hash() -> None:
    with pytest.raises(MagnetError):
        Magnet().to_uri()
    with pytest.raises(MagnetError):
        _ = Magnet().info_hash


def test_select_only_ranges_compressed() -> None:
    m = Magnet(info_hash_v1=V1, select_only=[0, 1, 2, 5, 7, 8])
    assert m.to_uri().endswith("&so=0-2,5,7-8")


def test_magnet_from_metainfo() -> None:
    info = {
        "name": "pack",
        "piece length": 16384,
        "files": [{"length": 5, "path": ["a"]}, {"length": 7, "path": ["b"]}],
        "pieces": bytes(20),
    }
    raw = encode(
        {
            "info": info,
            "announce-list": [["http://127.0.0.1/a"], ["http://127.0.0.1/b", "http://127.0.0.1/a"]],
            "url-list": "http://127.0.0.1/ws",
        }
    )
    meta = parse_torrent(raw)
    m = magnet_from_metainfo(meta)
    assert m.info_hash_v1 == meta.info.info_hash_v1
    assert m.info_hash_v2 is None
    assert m.display_name == "pack"
    assert m.trackers == ["http://127.0.0.1/a", "http://127.0.0.1/b"]
    assert m.web_seeds == ["http://127.0.0.1/ws"]
    assert m.exact_length == 12
    assert parse_magnet(m.to_uri()) == m


# ------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_url_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40)
_host = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
)
_magnets = st.builds(
    Magnet,
    info_hash_v1=st.none() | st.binary(min_size=20, max_size=20),
    info_hash_v2=st.none() | st.binary(min_size=32, max_size=32),
    display_name=st.none() | _text,
    trackers=st.lists(_url_text, unique=True, max_size=5),
    web_seeds=st.lists(_url_text, unique=True, max_size=3),
    peers=st.lists(st.tuples(_host, st.integers(1, 65535)), unique=True, max_size=4),
    select_only=st.lists(st.integers(0, 5000), unique=True, max_size=20).map(sorted),
    exact_length=st.none() | st.integers(0, 2**63),
).filter(lambda m: m.info_hash_v1 is not None or m.info_hash_v2 is not None)


@settings(max_examples=300, deadline=None)
@given(_magnets)
def test_round_trip(m: Magnet) -> None:
    assert parse_magnet(m.to_uri()) == m


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_only_magnet_error(s: str) -> None:
    with contextlib.suppress(MagnetError):
        parse_magnet(s)
    with contextlib.suppress(MagnetError):
        parse_magnet("magnet:?" + s)


_fragments = st.sampled_from(
    [
        "xt=",
        "urn:btih:",
        "urn:btmh:1220",
        V1.hex(),
        V2.hex(),
        "&",
        "=",
        "%",
        "%E2%82",
        "so=",
        "1-",
        ",",
        "x.pe=",
        "[",
        "]",
        ":",
        "xl=",
        "dn=",
        "tr.1=",
        "+",
        "ws=",
        "9" * 25,
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_fragments | st.text(max_size=5), max_size=30))
def test_fragment_soup_only_magnet_error(parts: list[str]) -> None:
    uri = "magnet:?" + "".join(parts)
    try:
        m = parse_magnet(uri)
    except MagnetError:
        return
    # whatever parses also builds and parses back to the same thing
    assert parse_magnet(m.to_uri()) == m
