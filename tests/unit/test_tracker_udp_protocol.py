"""Sans-I/O UDP tracker core (BEP 15): packets checked byte for byte, replies fed as bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.tracker import udp_protocol as up
from ccbt_engine.tracker.protocol import (
    AnnounceRequest,
    Event,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
)

IH = bytes(range(20))
PID = b"-CC0001-abcdefghijkl"
TID = 0xCAFEBABE


def req(**kw: object) -> AnnounceRequest:
    base: dict[str, object] = dict(
        info_hash=IH, peer_id=PID, port=6881, uploaded=3, downloaded=2, left=1, key=7
    )
    base.update(kw)
    return AnnounceRequest(**base)  # type: ignore[arg-type]


def test_connect_packet() -> None:
    assert up.build_connect(TID) == bytes.fromhex("000004172710198000000000cafebabe")


def test_parse_connect_and_lifetime() -> None:
    reply = struct.pack(">IIQ", 0, TID, 0x1122334455667788)
    cid = up.parse_connect(reply, TID, now=100.0)
    assert cid.value == 0x1122334455667788
    assert cid.valid(100.0) and cid.valid(159.9)
    assert not cid.valid(160.0) and not cid.valid(99.0)


@pytest.mark.parametrize(
    ("event", "code"),
    [(Event.NONE, 0), (Event.COMPLETED, 1), (Event.STARTED, 2), (Event.STOPPED, 3)],
)
def test_announce_packet_layout(event: Event, code: int) -> None:
    pkt = up.build_announce(0x0102030405060708, TID, req(event=event, numwant=50))
    assert len(pkt) == 98
    fields = struct.unpack(">QII20s20sQQQIIIiH", pkt)
    assert fields == (0x0102030405060708, 1, TID, IH, PID, 2, 1, 3, code, 0, 7, 50, 6881)


def test_announce_packet_numwant_default_is_minus_one() -> None:
    pkt = up.build_announce(1, TID, req(numwant=-5))
    assert struct.unpack_from(">i", pkt, 92)[0] == -1


def test_parse_announce_ipv4_and_ipv6() -> None:
    head = struct.pack(">IIIII", 1, TID, 1800, 4, 9)
    v4 = head + bytes([127, 0, 0, 1, 0x1A, 0xE1])
    r = up.parse_announce(v4, TID, ipv6=False)
    assert (r.interval, r.incomplete, r.complete) == (1800, 4, 9)
    assert r.peers == [("127.0.0.1", 6881)]
    v6 = head + b"\x00" * 15 + b"\x01" + b"\x1a\xe1"
    assert up.parse_announce(v6, TID, ipv6=True).peers == [("::1", 6881)]
    # The same 18 bytes on an IPv4 socket are three IPv4 entries (two with port 0, dropped).
    assert up.parse_announce(v6, TID, ipv6=False).peers == [("0.0.0.1", 6881)]


def test_ipv6_socket_falls_back_to_ipv4_entries_only_when_unambiguous() -> None:
    head = struct.pack(">IIIII", 1, TID, 60, 0, 2)
    two_v4 = head + bytes([127, 0, 0, 1, 0, 80, 127, 0, 0, 2, 0, 81])
    assert up.parse_announce(two_v4, TID, ipv6=True).peers == [
        ("127.0.0.1", 80),
        ("127.0.0.2", 81),
    ]
    with pytest.raises(TrackerError):
        up.parse_announce(head + b"\x00" * 7, TID, ipv6=True)


def test_scrape_packet_and_reply() -> None:
    other = b"\xff" * 20
    pkt = up.build_scrape(5, TID, [IH, other])
    assert pkt == struct.pack(">QII", 5, 2, TID) + IH + other
    reply = struct.pack(">II", 2, TID) + struct.pack(">IIIIII", 1, 2, 3, 4, 5, 6)
    assert up.parse_scrape(reply, TID, [IH, other]) == {
        IH: ScrapeResult(complete=1, downloaded=2, incomplete=3),
        other: ScrapeResult(complete=4, downloaded=5, incomplete=6),
    }
    with pytest.raises(TrackerError):
        up.parse_scrape(reply[:-1], TID, [IH, other])
    with pytest.raises(TrackerError):
        up.parse_scrape(reply, TID, [IH])
    with pytest.raises(ValueError):
        up.build_scrape(5, TID, [])
    with pytest.raises(ValueError):
        up.build_scrape(5, TID, [IH] * (up.MAX_SCRAPE_HASHES + 1))


def test_error_action_is_a_tracker_failure_with_message() -> None:
    err = struct.pack(">II", 3, TID) + b"info hash not authorized"
    for parse in (
        lambda d: up.parse_connect(d, TID, 0.0),
        lambda d: up.parse_announce(d, TID, ipv6=False),
        lambda d: up.parse_scrape(d, TID, [IH]),
    ):
        with pytest.raises(TrackerFailure, match="info hash not authorized"):
            parse(err)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 7,
        struct.pack(">IIQ", 0, TID + 1, 1),  # wrong transaction id
        struct.pack(">IIQ", 1, TID, 1),  # wrong action
        struct.pack(">IIQ", 0, TID, 1) + b"x",  # wrong size
        struct.pack(">II", 0, TID) + b"1234",  # too short
    ],
)
def test_bad_connect_replies_rejected(data: bytes) -> None:
    with pytest.raises(TrackerError):
        up.parse_connect(data, TID, 0.0)


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">IIII", 1, TID, 1, 1),  # 16 < 20 bytes
        struct.pack(">IIIII", 2, TID, 1, 1, 1),  # scrape action
        struct.pack(">IIIII", 1, TID, 1, 1, 1) + b"\x00" * 5,  # not a multiple of 6
    ],
)
def test_bad_announce_replies_rejected(data: bytes) -> None:
    with pytest.raises(TrackerError):
        up.parse_announce(data, TID, ipv6=False)


def test_reply_transaction_id() -> None:
    assert up.reply_transaction_id(b"\x00" * 7) is None
    assert up.reply_transaction_id(struct.pack(">II", 1, TID)) == TID


def test_retransmit_schedule_is_bep15_with_cap() -> None:
    assert [up.retransmit_timeout(n) for n in range(4)] == [15.0, 30.0, 60.0, 120.0]
    assert up.retransmit_timeout(8) == 15 * 256
    assert up.retransmit_timeout(20) == 15 * 256  # n is capped at 8
    assert up.retransmit_timeout(3, base=0.01, max_exponent=1) == 0.02


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_arbitrary_datagrams_raise_only_tracker_error(data: bytes, ipv6: bool) -> None:
    tid = up.reply_transaction_id(data)
    tid = TID if tid is None else tid  # make the transaction id match so parsing goes deep
    for parse in (
        lambda: up.parse_connect(data, tid, 0.0),
        lambda: up.parse_announce(data, tid, ipv6=ipv6),
        lambda: up.parse_scrape(data, tid, [IH]),
    ):
        with contextlib.suppress(TrackerError):
            parse()
