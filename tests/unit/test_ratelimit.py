"""Token buckets on a fake clock, request pacing, the asyncio limiter and the alt-speed schedule."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.strategy.ratelimit import (
    AltSpeedSchedule,
    DownloadBudget,
    RateLimiter,
    TokenBucket,
)

KIB = 1024


def send_all(bucket: TokenBucket, chunks: list[int], start: float = 0.0) -> float:
    """A sender that waits whatever each consume() says; returns the finishing time."""
    now = start
    for chunk in chunks:
        now += bucket.consume(chunk, now)
    return now


def test_one_mib_at_100_kib_per_second() -> None:
    chunks = [16 * KIB] * 64  # 1 MiB
    # Default burst = one second of rate, so the first 100 KiB go at once.
    finish = send_all(TokenBucket(100 * KIB), chunks)
    assert finish == pytest.approx((1024 - 100) / 100, abs=1e-9)
    # Without a burst the whole MiB is paced: ~10 s.
    finish = send_all(TokenBucket(100 * KIB, burst=1), chunks)
    assert finish == pytest.approx((1024 * KIB - 1) / (100 * KIB), abs=1e-9)


@given(
    rate=st.floats(min_value=100, max_value=1e7),
    burst=st.floats(min_value=1, max_value=1e6),
    chunks=st.lists(st.integers(min_value=0, max_value=1 << 20), min_size=1, max_size=50),
)
def test_long_run_rate_is_exact(rate: float, burst: float, chunks: list[int]) -> None:
    total = sum(chunks)
    finish = send_all(TokenBucket(rate, burst), chunks)
    # Never faster than rate allows beyond the initial burst, and never slower than needed.
    assert finish >= max(0.0, (total - burst) / rate) - 1e-6
    # Each wait ends exactly when the balance returns to zero, so the sender is at most one
    # burst's worth "early" and never late.
    assert finish <= total / rate + 1e-6


def test_idle_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(1000, burst=500)
    assert bucket.available(0.0) == 500
    assert bucket.consume(500, 0.0) == 0.0
    assert bucket.available(0.25) == pytest.approx(250)
    assert bucket.available(3600.0) == 500
    assert bucket.consume(1500, 3600.0) == pytest.approx(1.0)


def test_deficit_accounting_makes_later_callers_wait() -> None:
    bucket = TokenBucket(1000, burst=1000)
    assert bucket.consume(3000, 0.0) == pytest.approx(2.0)
    assert bucket.available(0.0) == pytest.approx(-2000)
    # the next caller pays for the debt too
    assert bucket.consume(1, 0.5) == pytest.approx(1.501)
    assert bucket.consume(0, 10.0) == 0.0


def test_unlimited() -> None:
    bucket = TokenBucket(0)
    assert bucket.unlimited and bucket.consume(10**12, 0.0) == 0.0
    assert bucket.available(0.0) == math.inf


def test_set_rate() -> None:
    bucket = TokenBucket(1000)
    assert bucket.burst == 1000
    bucket.consume(5000, 0.0)
    bucket.set_rate(4000)
    assert bucket.burst == 4000, "a default burst follows the rate"
    assert bucket.consume(0, 0.0) == pytest.approx(1.0), "debt now repaid at the new rate"
    bucket.set_rate(0)
    assert bucket.consume(10**9, 0.0) == 0.0
    bucket.set_rate(100)
    assert bucket.available(0.0) == 100, "a new limit starts with a full bucket"
    custom = TokenBucket(100, burst=7)
    custom.set_rate(1000)
    assert custom.burst == 7


def test_set_rate_with_now_credits_old_rate() -> None:
    bucket = TokenBucket(100, burst=1000)
    bucket.consume(1000, 0.0)
    bucket.set_rate(1, now=5.0)  # 5 s at 100 B/s already earned 500 tokens
    assert bucket.available(5.0) == pytest.approx(500)


def test_clock_stepping_back_mints_nothing() -> None:
    bucket = TokenBucket(1000, burst=1000)
    bucket.consume(1000, 10.0)
    assert bucket.available(5.0) == 0
    assert bucket.available(10.5) == pytest.approx(500)


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1, None), (math.nan, None), (math.inf, None), (10, 0), (10, -5)]
)
def test_invalid_bucket_arguments(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_negative_consume_rejected() -> None:
    with pytest.raises(ValueError):
        TokenBucket(10).consume(-1, 0.0)


async def test_rate_limiter_sleeps_for_slowest_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    fast, slow = TokenBucket(10_000, burst=1000), TokenBucket(1000, burst=1000)
    limiter = RateLimiter()
    await limiter.acquire(1000, [fast, slow])
    assert slept == []
    await limiter.acquire(2000, [fast, slow])
    assert len(slept) == 1 and slept[0] == pytest.approx(2.0, abs=0.05)
    assert fast.available(asyncio.get_running_loop().time()) < 0, "every bucket is charged"
    await limiter.acquire(0, [slow])
    await limiter.acquire(100, [])
    assert len(slept) == 1


async def test_rate_limiter_really_waits() -> None:
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(100_000, burst=1000)
    start = loop.time()
    await RateLimiter().acquire(6000, [bucket])  # 5000 bytes over burst at 100 kB/s = 50 ms
    assert loop.time() - start >= 0.045


def at(day: int, hh: int, mm: int) -> datetime:
    """2024-01-01 was a Monday (weekday 0)."""
    return datetime(2024, 1, 1 + day, hh, mm)


def test_schedule_same_day_range() -> None:
    sched = AltSpeedSchedule("08:30", "17:00", {0, 1, 2, 3, 4})
    assert sched.active(at(0, 8, 30))
    assert sched.active(at(4, 16, 59))
    assert not sched.active(at(0, 17, 0))
    assert not sched.active(at(0, 8, 29))
    assert not sched.active(at(5, 12, 0)), "Saturday is not scheduled"


def test_schedule_wrapping_midnight_belongs_to_start_day() -> None:
    sched = AltSpeedSchedule("22:00", "06:00", {4})  # Friday night
    assert sched.active(at(4, 22, 0))
    assert sched.active(at(4, 23, 59))
    assert sched.active(at(5, 0, 0)), "Saturday morning continues Friday's window"
    assert sched.active(at(5, 5, 59))
    assert not sched.active(at(5, 6, 0))
    assert not sched.active(at(4, 5, 0)), "Friday morning belongs to Thursday's window"
    assert not sched.active(at(5, 22, 0))
    sunday = AltSpeedSchedule("23:00", "01:00", {6})
    assert sunday.active(datetime(2024, 1, 8, 0, 30)), "wraps from Sunday into Monday"


def test_schedule_whole_day_and_defaults() -> None:
    sched = AltSpeedSchedule("00:00", "00:00")
    assert all(sched.active(at(d, h, 0)) for d in range(7) for h in (0, 12, 23))
    weekend = AltSpeedSchedule("10:00", "10:00", [5, 6])
    assert weekend.active(at(6, 3, 0)) and not weekend.active(at(0, 3, 0))


@pytest.mark.parametrize("bad", ["24:00", "7", "07:60", "ab:cd", "07:5", "-1:00", ""])
def test_schedule_rejects_bad_times(bad: str) -> None:
    with pytest.raises(ValueError):
        AltSpeedSchedule(bad, "08:00")


def test_schedule_rejects_bad_days() -> None:
    with pytest.raises(ValueError):
        AltSpeedSchedule("01:00", "02:00", {7})


# -- refunds and request pacing (DownloadBudget) -------------------------------------------------
BLOCK = 16 * KIB


def test_refund_gives_back_up_to_the_burst() -> None:
    bucket = TokenBucket(1000, burst=1000)
    bucket.consume(3000, 0.0)
    bucket.refund(2500, 0.0)
    assert bucket.available(0.0) == pytest.approx(500)
    bucket.refund(10**9, 0.0)
    assert bucket.available(0.0) == 1000, "a refund never mints more than a full bucket"
    TokenBucket(0).refund(5, 0.0)  # unlimited: nothing to give back, no error
    with pytest.raises(ValueError):
        bucket.refund(-1, 0.0)


def test_budget_requests_what_the_bucket_holds_then_waits() -> None:
    bucket = TokenBucket(256 * KIB)  # starts full: one second's worth
    budget = DownloadBudget()
    assert budget.allowance([bucket], 0, BLOCK, 0.0) == 16
    budget.charge([bucket], 16 * BLOCK, 0.0)
    assert budget.prepaid == 16 * BLOCK
    assert budget.allowance([bucket], 16 * BLOCK, BLOCK, 0.0) == 0
    # 62.5 ms refill one block; the wake-up is at least MIN_WAKE and adds at most JITTER
    assert bucket.available(0.0) == 0
    budget.charge([bucket], BLOCK, 0.0)  # the borrowed block deficit accounting allows
    delay = budget.wake_delay([bucket], 0.0)
    assert BLOCK / (256 * KIB) <= delay <= BLOCK / (256 * KIB) + DownloadBudget.JITTER
    assert budget.wake_delay([TokenBucket(1)], 0.0) >= DownloadBudget.MIN_WAKE


def test_prepaid_blocks_are_not_charged_again_but_extra_ones_are() -> None:
    bucket = TokenBucket(100 * KIB, burst=BLOCK)
    budget = DownloadBudget()
    budget.charge([bucket], BLOCK, 0.0)
    assert budget.on_block([bucket], BLOCK, 0.0) == 0.0, "requested and paid for: no pause"
    assert bucket.available(0.0) == 0
    # an unrequested block (or one requested before the limit existed): the backstop pauses
    delay = budget.on_block([bucket], BLOCK, 0.0)
    assert delay == pytest.approx(BLOCK / (100 * KIB))
    # half prepaid: only the rest is charged
    budget.charge([TokenBucket(0)], BLOCK // 2, 0.0)
    before = bucket.available(0.0)
    budget.on_block([bucket], BLOCK, 0.0)
    assert bucket.available(0.0) == pytest.approx(before - BLOCK // 2)


def test_prepaid_for_requests_that_went_away_is_refunded() -> None:
    bucket = TokenBucket(100 * KIB)
    budget = DownloadBudget()
    budget.charge([bucket], 4 * BLOCK, 0.0)
    left = bucket.available(0.0)
    # two of the four requests were rejected: only two blocks are still outstanding
    budget.allowance([bucket], 2 * BLOCK, BLOCK, 0.0)
    assert budget.prepaid == 2 * BLOCK
    assert bucket.available(0.0) == pytest.approx(left + 2 * BLOCK)


def test_unlimited_buckets_do_not_restrict_the_budget() -> None:
    budget = DownloadBudget()
    assert budget.allowance([TokenBucket(0)], 0, BLOCK, 0.0) > 10**6
    limited = TokenBucket(BLOCK)
    assert budget.allowance([TokenBucket(0), limited], 0, BLOCK, 0.0) == 1


@given(
    rate=st.integers(min_value=16 * KIB, max_value=8 << 20),
    rtt=st.floats(min_value=0.0, max_value=0.3),
    seconds=st.floats(min_value=2.0, max_value=20.0),
)
def test_paced_requests_deliver_the_rate_steadily(rate: int, rtt: float, seconds: float) -> None:
    """A peer answering every request after ``rtt``: the data arrives at the rate, smoothly.

    The simulated connection asks whenever the budget allows, sleeps until the wake-up
    otherwise (as the torrent's timer does); blocks are paid when requested and arrive ``rtt``
    later against what was prepaid.
    """
    bucket = TokenBucket(rate)
    budget = DownloadBudget()
    now = 0.0
    arrivals: list[float] = []
    in_flight: list[float] = []
    while now < seconds:
        while in_flight and in_flight[0] <= now:
            assert budget.on_block([bucket], BLOCK, in_flight.pop(0)) == 0.0
        n = budget.allowance([bucket], len(in_flight) * BLOCK, BLOCK, now)
        if n:
            budget.charge([bucket], n * BLOCK, now)
            arrivals.extend([now + rtt] * n)
            in_flight.extend([now + rtt] * n)
        now += budget.wake_delay([bucket], now)
    after_burst = [t for t in arrivals if t >= 1.0 + rtt]
    # never more than the burst plus the rate (plus the one block the balance may borrow)
    assert len(arrivals) * BLOCK <= rate + rate * seconds + BLOCK
    # and, once the burst is spent, no second gets more than its share plus a wake-up's worth
    quantum = rate * (DownloadBudget.MIN_WAKE + DownloadBudget.JITTER) + 2 * BLOCK
    for start in range(1, int(seconds) - 1):
        got = sum(1 for t in after_burst if start + rtt <= t < start + 1 + rtt) * BLOCK
        assert abs(got - rate) <= quantum, (start, got, rate)


def test_limited_count_follows_rate_changes() -> None:
    """The process-wide 'is anything limited' count the download hot path reads per block."""
    start = TokenBucket.limited_count
    a, b = TokenBucket(0), TokenBucket(1000)
    assert TokenBucket.limited_count == start + 1
    a.set_rate(500)
    a.set_rate(700)  # limited -> limited: not counted twice
    assert TokenBucket.limited_count == start + 2
    a.set_rate(0)
    b.set_rate(0)
    b.set_rate(0)  # unlimited -> unlimited: not uncounted twice
    assert TokenBucket.limited_count == start
