"""Sans-I/O HTTP tracker core: URL building and reply parsing, fed bytes only."""

from __future__ import annotations

import contextlib
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.bencode import encode
from ccbt_engine.tracker.protocol import (
    DEFAULT_INTERVAL,
    MAX_MESSAGE_CHARS,
    MAX_REPLY_SIZE,
    AnnounceRequest,
    Event,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
    build_announce_url,
    build_scrape_url,
    parse_announce_reply,
    parse_compact_peers,
    parse_compact_peers6,
    parse_scrape_reply,
    scrape_url_for,
)

IH = bytes(range(0x80, 0x94))
PID = b"-CC0001-" + b"\x00\xff" * 6


def req(**kw: object) -> AnnounceRequest:
    base: dict[str, object] = dict(
        info_hash=IH, peer_id=PID, port=6881, uploaded=1, downloaded=2, left=3
    )
    base.update(kw)
    return AnnounceRequest(**base)  # type: ignore[arg-type]


def query(url: str) -> dict[str, list[bytes]]:
    q = urllib.parse.urlsplit(url).query
    out: dict[str, list[bytes]] = {}
    for part in q.split("&"):
        k, _, v = part.partition("=")
        out.setdefault(k, []).append(urllib.parse.unquote_to_bytes(v))
    return out


# -- announce URL ---------------------------------------------------------------------------


def test_announce_url_has_every_parameter_percent_encoded_bytewise() -> None:
    url = build_announce_url(
        "http://t.example/announce",
        req(event=Event.STARTED, numwant=50, key=0xDEADBEEF, tracker_id=b"a b&c"),
    )
    q = query(url)
    assert url.startswith("http://t.example/announce?")
    assert q["info_hash"] == [IH]
    assert q["peer_id"] == [PID]
    assert q["port"] == [b"6881"]
    assert (q["uploaded"], q["downloaded"], q["left"]) == ([b"1"], [b"2"], [b"3"])
    assert q["compact"] == [b"1"]
    assert q["event"] == [b"started"]
    assert q["numwant"] == [b"50"]
    assert q["key"] == [b"deadbeef"]
    assert q["trackerid"] == [b"a b&c"]
    assert "ip" not in q and "ipv6" not in q


def test_announce_url_without_event_and_with_ip_fields() -> None:
    q = query(build_announce_url("http://t/a", req(ip="10.0.0.1", ipv6="::1")))
    assert "event" not in q and "trackerid" not in q
    assert q["ip"] == [b"10.0.0.1"] and q["ipv6"] == [b"::1"]


@pytest.mark.parametrize("event", [Event.STARTED, Event.COMPLETED, Event.STOPPED])
def test_announce_url_event_spelling(event: Event) -> None:
    assert query(build_announce_url("http://t/a", req(event=event)))["event"] == [
        event.value.encode()
    ]


def test_announce_url_keeps_existing_query_and_drops_fragment() -> None:
    url = build_announce_url("http://t/announce.php?passkey=abc#frag", req())
    assert url.startswith("http://t/announce.php?passkey=abc&info_hash=")
    assert "#" not in url


def test_announce_request_validates_sizes() -> None:
    with pytest.raises(ValueError):
        req(info_hash=b"short")
    with pytest.raises(ValueError):
        req(port=70000)
    with pytest.raises(ValueError):
        req(key=1 << 32)


# -- scrape URL (BEP 48) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("announce", "scrape"),
    [
        ("http://example.com/announce", "http://example.com/scrape"),
        ("http://example.com/x/announce", "http://example.com/x/scrape"),
        ("http://example.com/announce.php", "http://example.com/scrape.php"),
        ("http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644"),
        ("http://example.com/a", None),
        ("http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"),
        ("http://example.com/x%064announce", None),
        ("http://example.com/announce/x", None),
        ("http://example.com", None),
    ],
)
def test_scrape_url_rule(announce: str, scrape: str | None) -> None:
    # The table is BEP 48's own list of examples, plus two edge cases.
    assert scrape_url_for(announce) == scrape


def test_scrape_url_repeats_info_hash() -> None:
    q = query(build_scrape_url("http://t/scrape", [IH, b"\x01" * 20]))
    assert q["info_hash"] == [IH, b"\x01" * 20]


# -- compact peers ----------------------------------------------------------------------------


def test_compact_peers_v4_and_v6() -> None:
    data = bytes([127, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0, 0])  # second has port 0: dropped
    assert parse_compact_peers(data) == [("127.0.0.1", 6881)]
    v6 = b"\x00" * 15 + b"\x01" + b"\x1a\xe1"
    assert parse_compact_peers6(v6) == [("::1", 6881)]
    with pytest.raises(TrackerError):
        parse_compact_peers(b"\x00" * 7)
    with pytest.raises(TrackerError):
        parse_compact_peers6(b"\x00" * 17)


# -- announce replies ---------------------------------------------------------------------


def test_parse_compact_reply_with_every_field() -> None:
    body = encode(
        {
            "interval": 1800,
            "min interval": 900,
            "complete": 5,
            "incomplete": 7,
            "downloaded": 11,
            "tracker id": b"tid-1",
            "warning message": "be nice",
            "peers": bytes([127, 0, 0, 1, 0x1A, 0xE1]),
            "peers6": b"\x00" * 15 + b"\x01" + b"\x00\x50",
        }
    )
    r = parse_announce_reply(body)
    assert r.interval == 1800 and r.min_interval == 900
    assert (r.complete, r.incomplete, r.downloaded) == (5, 7, 11)
    assert r.tracker_id == b"tid-1"
    assert r.warning == "be nice"
    assert r.peers == [("127.0.0.1", 6881), ("::1", 80)]


def test_parse_dictionary_model_skips_bad_entries() -> None:
    body = encode(
        {
            "interval": 60,
            "peers": [
                {"ip": "10.1.2.3", "port": 51413, "peer id": b"x" * 20},
                {"ip": "2001:db8::1", "port": 1},
                {"ip": "not.an.ip.example", "port": 1},  # host names are not resolved
                {"ip": "1.2.3.4", "port": 0},
                {"ip": "1.2.3.4"},
                {"ip": b"\xff\xfe", "port": 5},
                "garbage",
            ],
        }
    )
    assert parse_announce_reply(body).peers == [("10.1.2.3", 51413), ("2001:db8::1", 1)]


def test_parse_reply_defaults_and_unsorted_keys() -> None:
    # Unsorted keys are common in the wild and accepted; a missing interval gets the default.
    body = b"d5:peers0:8:completei1ee"
    r = parse_announce_reply(body)
    assert r.interval == DEFAULT_INTERVAL and r.peers == [] and r.complete == 1
    assert r.min_interval is None and r.tracker_id is None and r.warning is None


def test_failure_reason_is_a_tracker_failure_with_the_text() -> None:
    with pytest.raises(TrackerFailure) as ei:
        parse_announce_reply(encode({"failure reason": "torrent not registered"}))
    assert ei.value.reason == "torrent not registered"
    assert isinstance(ei.value, TrackerError)


def test_messages_are_bounded_and_decoded_leniently() -> None:
    with pytest.raises(TrackerFailure) as ei:
        parse_announce_reply(encode({"failure reason": b"\xff" + b"x" * 5000}))
    assert len(ei.value.reason) == MAX_MESSAGE_CHARS and ei.value.reason[0] == "\ufffd"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b"le",
        b"i5e",
        b"d8:intervali-5ee",
        b"d8:interval3:abce",
        b"d5:peersi5ee",
        b"d5:peers5:abcdee",
        b"d6:peers6i1ee",
        b"d6:peers65:abcdee",
        b"d10:tracker idi1ee",
        b"d14:failure reasoni1ee",
        b"d15:warning messagei1ee",
        b"d8:intervali1ee trailing",
    ],
)
def test_garbage_announce_reply_is_a_tracker_error(body: bytes) -> None:
    with pytest.raises(TrackerError):
        parse_announce_reply(body)


def test_oversized_reply_refused_before_decoding() -> None:
    with pytest.raises(TrackerError, match="exceeds"):
        parse_announce_reply(b"d5:peers" + b"0" * MAX_REPLY_SIZE + b"e")


# -- scrape replies -------------------------------------------------------------------------


def test_parse_scrape_reply() -> None:
    other = b"\x01" * 20
    body = encode(
        {
            "files": {
                IH: {"complete": 3, "downloaded": 10, "incomplete": 4, "name": "x"},
                other: {},
            }
        }
    )
    assert parse_scrape_reply(body) == {
        IH: ScrapeResult(complete=3, downloaded=10, incomplete=4),
        other: ScrapeResult(0, 0, 0),
    }


def test_parse_scrape_reply_recovers_utf8_mangled_keys() -> None:
    # bittorrent-tracker writes the hash as a latin-1 string encoded to UTF-8.
    mangled = IH.decode("latin-1").encode("utf-8")
    assert len(mangled) > 20
    body = encode({"files": {mangled: {"complete": 1, "downloaded": 2, "incomplete": 3}}})
    assert parse_scrape_reply(body) == {IH: ScrapeResult(1, 2, 3)}


@pytest.mark.parametrize(
    "body",
    [
        b"d5:filesi1ee",
        b"d5:filesd3:abcd8:completei1eeee",
        b"d5:filesd20:" + b"a" * 20 + b"i1eee",
        b"d5:filesd20:" + b"a" * 20 + b"d8:completei-1eeee",
        b"d5:filesd22:" + b"\xff" * 22 + b"deee",
        b"d14:failure reason4:nopee",
    ],
)
def test_garbage_scrape_reply_is_a_tracker_error(body: bytes) -> None:
    with pytest.raises(TrackerError):
        parse_scrape_reply(body)


# -- property tests ------------------------------------------------------------------------

_bvalues = st.recursive(
    st.integers(-(2**70), 2**70) | st.binary(max_size=40),
    lambda kids: (
        st.lists(kids, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    b"interval",
                    b"min interval",
                    b"peers",
                    b"peers6",
                    b"ip",
                    b"port",
                    b"files",
                    b"complete",
                    b"tracker id",
                    b"failure reason",
                    b"warning message",
                ]
            )
            | st.binary(max_size=21),
            kids,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_tracker_error(data: bytes) -> None:
    for parse in (parse_announce_reply, parse_scrape_reply):
        with contextlib.suppress(TrackerError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(_bvalues)
def test_arbitrary_bencoded_structures_raise_only_tracker_error(value: object) -> None:
    data = encode(value)
    for parse in (parse_announce_reply, parse_scrape_reply):
        with contextlib.suppress(TrackerError):
            parse(data)
