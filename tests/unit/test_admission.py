"""Incoming-connection admission: the sans-I/O policy, then the guard on a real session."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine import events as ev
from ccbt_engine.security.admission import (
    BUCKET_IDLE,
    HANDSHAKE_TIMEOUT_REASON,
    AdmissionLimits,
    AdmissionPolicy,
    normalize_host,
)
from ccbt_engine.session import SessionCore
from tests.engine_settings import loopback_settings

A, B = "10.0.0.1", "10.0.0.2"


def policy(**kw: float) -> AdmissionPolicy[int]:
    base: dict[str, float] = {
        "max_per_ip": 3,
        "max_half_open": 100,
        "handshake_timeout": 10.0,
        "rate": 1000.0,
        "rate_per_ip": 1000.0,
    }
    base.update(kw)
    return AdmissionPolicy(AdmissionLimits(**base))  # type: ignore[arg-type]


def test_per_ip_limit_counts_open_connections_only() -> None:
    p = policy(max_per_ip=2)
    assert p.admit(1, A, 0.0) is None
    assert p.admit(2, A, 0.0) is None
    refusal = p.admit(3, A, 0.0)
    assert refusal == "too many connections from this address (limit 2)"
    assert p.admit(4, B, 0.0) is None  # another address is not affected
    p.established(1)
    assert p.admit(5, A, 0.0) is not None  # handshaken connections still count
    p.release(1)
    assert p.admit(6, A, 0.0) is None
    assert p.connections(A) == 2
    assert p.refused == {"too many connections from this address": 2}


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    p = policy(max_per_ip=1)
    assert p.admit(1, "1.2.3.4", 0.0) is None
    assert p.admit(2, "::ffff:1.2.3.4", 0.0) is not None
    assert normalize_host("2001:DB8:0:0::1") == "2001:db8::1"
    assert normalize_host("not-an-ip") == "not-an-ip"


def test_half_open_limit_frees_up_when_handshakes_complete() -> None:
    p = policy(max_half_open=2, max_per_ip=10)
    assert p.admit(1, A, 0.0) is None
    assert p.admit(2, B, 0.0) is None
    assert p.admit(3, "10.0.0.3", 0.0) == "too many connections in the handshake (limit 2)"
    p.established(1)
    assert p.half_open == 1
    assert p.admit(4, "10.0.0.3", 0.0) is None


def test_per_ip_rate_refills_over_time() -> None:
    p = policy(rate_per_ip=2.0, max_per_ip=100)  # burst: 2 s worth = 4
    assert [p.admit(i, A, 0.0) for i in range(4)] == [None] * 4
    assert p.admit(4, A, 0.0) == "connection rate from this address over (limit 2/s)"
    assert p.admit(5, B, 0.0) is None  # the other address has its own bucket
    assert p.admit(6, A, 0.4) is not None  # 0.8 tokens refilled: not yet a whole one
    assert p.admit(7, A, 0.5) is None
    assert p.admit(8, A, 0.5) is not None


def test_global_rate_is_not_spent_by_refused_per_ip_attempts() -> None:
    p = policy(rate=1.0, rate_per_ip=1.0, max_per_ip=1)  # global burst 2
    assert p.admit(1, A, 0.0) is None
    for i in range(2, 50):  # a flood from A is refused by its own limits
        assert p.admit(i, A, 0.0) is not None
    assert p.admit(100, B, 0.0) is None  # B still finds a global token
    assert p.admit(101, "10.0.0.3", 0.0) == "incoming connection rate over (limit 1/s)"


def test_handshake_deadlines() -> None:
    p = policy(handshake_timeout=5.0)
    p.admit(1, A, 0.0)
    p.admit(2, B, 2.0)
    assert p.next_deadline() == 5.0
    assert p.overdue(4.9) == []
    assert p.overdue(5.0) == [1]
    p.established(1)
    assert p.overdue(100.0) == [2]
    p.release(2)
    assert p.next_deadline() is None
    assert p.tracked == 1


def test_idle_buckets_are_forgotten() -> None:
    p = policy(rate_per_ip=1.0)
    for i in range(1000):
        p.admit(i, f"10.1.{i // 256}.{i % 256}", 0.0)
        p.release(i)
    p.prune(BUCKET_IDLE / 2)
    assert len(p._buckets) == 1000  # refilled, but not idle long enough
    p.prune(BUCKET_IDLE + 1)
    assert not p._buckets


def test_readmitting_a_known_key_is_a_no_op() -> None:
    p = policy(max_per_ip=1)
    assert p.admit(1, A, 0.0) is None
    assert p.admit(1, A, 0.0) is None
    assert p.connections(A) == 1
    p.release(1)
    p.release(1)  # twice is harmless
    assert p.connections(A) == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["admit", "established", "release", "tick"]),
            st.integers(0, 30),
            st.sampled_from([A, B, "10.0.0.3"]),
        ),
        max_size=200,
    )
)
def test_limits_always_hold(ops: list[tuple[str, int, str]]) -> None:
    p = policy(max_per_ip=3, max_half_open=5, rate=4.0, rate_per_ip=2.0)
    now = 0.0
    admitted_at: list[float] = []
    for op, key, host in ops:
        if op == "admit":
            known = key in p.all_keys()
            if p.admit(key, host, now) is None and not known:
                admitted_at.append(now)
        elif op == "established":
            p.established(key)
        elif op == "release":
            p.release(key)
        else:
            now += 0.25
        assert all(p.connections(h) <= 3 for h in (A, B, "10.0.0.3"))
        assert p.half_open <= 5
        # never more admissions in a window than the global bucket allows: burst + rate * t
        window = [t for t in admitted_at if t >= now - 1.0]
        assert len(window) <= 4 * 2 + 4 * 1.0


# -- the guard on a real session ------------------------------------------------------------------


async def _wait_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sent before closing (fails if it stays open)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_session_refuses_a_fourth_connection_from_one_address() -> None:
    settings_ = loopback_settings(security={"max_connections_per_ip": 3})
    core = SessionCore(settings_, listen_port=0)
    seen: list[ev.Event] = []
    core.events.subscribe(seen.append)
    await core.start_listening()
    try:
        conns = [await asyncio.open_connection("127.0.0.1", core.listen_port) for _ in range(4)]
        assert await _wait_closed(conns[3][0], 5.0) == b""  # refused before a byte
        for _, writer in conns[:3]:
            assert not writer.is_closing()
        await asyncio.sleep(0.2)
        assert all(not r.at_eof() for r, _ in conns[:3])
        assert core.admission.policy.connections("127.0.0.1") == 3
        refusals = [e for e in seen if isinstance(e, ev.PeerDisconnected)]
        assert [e.reason for e in refusals] == ["too many connections from this address (limit 3)"]
        conns[0][1].close()  # one leaves: a newcomer is let in
        await asyncio.sleep(0.2)
        newcomer = await asyncio.open_connection("127.0.0.1", core.listen_port)
        await asyncio.sleep(0.2)
        assert not newcomer[0].at_eof()
        for _, writer in [*conns, newcomer]:
            writer.close()
    finally:
        await core.stop()


async def test_session_closes_a_silent_connection_after_the_handshake_timeout() -> None:
    core = SessionCore(loopback_settings(network={"handshake_timeout": 0.5}), listen_port=0)
    seen: list[ev.Event] = []
    core.events.subscribe(seen.append)
    await core.start_listening()
    try:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", core.listen_port)
        writer.write(b"\x13BitTorrent")  # the start of a handshake, never finished
        assert await _wait_closed(reader, 10.0) == b""
        assert time.monotonic() - started >= 0.5
        writer.close()
        assert [e.reason for e in seen if isinstance(e, ev.PeerDisconnected)] == [
            HANDSHAKE_TIMEOUT_REASON
        ]
        assert core.admission.policy.tracked == 0
    finally:
        await core.stop()


async def test_settings_changes_apply_to_the_next_connection() -> None:
    core = SessionCore(loopback_settings(), listen_port=0)
    await core.start_listening()
    try:
        await core.apply_settings(loopback_settings(security={"max_connections_per_ip": 1}))
        first = await asyncio.open_connection("127.0.0.1", core.listen_port)
        second = await asyncio.open_connection("127.0.0.1", core.listen_port)
        assert await _wait_closed(second[0], 5.0) == b""
        assert core.admission.policy.limits.max_per_ip == 1
        first[1].close()
        second[1].close()
    finally:
        await core.stop()


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_handshake_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError):
        loopback_settings(network={"handshake_timeout": timeout})


async def test_stopping_the_session_closes_connections_still_in_the_handshake() -> None:
    core = SessionCore(loopback_settings(), listen_port=0)
    await core.start_listening()
    reader, writer = await asyncio.open_connection("127.0.0.1", core.listen_port)
    for _ in range(100):
        if core.admission.policy.half_open:
            break
        await asyncio.sleep(0.01)
    assert core.admission.policy.half_open == 1
    await core.stop()
    assert await _wait_closed(reader, 5.0) == b""
    assert core.admission.policy.tracked == 0
    writer.close()
