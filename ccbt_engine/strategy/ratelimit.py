"""Bandwidth limits: token buckets, an asyncio wrapper and the alternative-speed schedule.

:class:`TokenBucket` is sans-I/O (the caller passes ``now``). It uses *deficit accounting*: a
consumer takes its bytes at once, the balance may go negative, and the answer is how long to wait
until the balance is back to zero. A 16 KiB block therefore never has to be split to fit a small
burst, and the long-run rate is exact: whatever was borrowed is paid back by later callers
waiting longer.

:class:`RateLimiter` applies several buckets at once (global, per torrent, per peer); a transfer
waits for the slowest of them.

:class:`DownloadBudget` paces *requests* rather than received bytes: a download limit charged on
arrival can only pause reading after the fact, while the whole request pipeline is still in
flight, so the data then arrives in bursts (the kernel buffers what the peer sent meanwhile and
hands it over at once). Charging the buckets when a block is *requested* keeps only what the
limit allows for the next moment in flight, so the peer itself sends at the limited rate.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import ClassVar

__all__ = ["AltSpeedSchedule", "DownloadBudget", "RateLimiter", "TokenBucket"]


class TokenBucket:
    """Token bucket in bytes; ``rate`` 0 means unlimited.

    ``burst`` is the most that may pass without waiting after an idle period; by default one
    second's worth of ``rate``. The bucket starts full.
    """

    __slots__ = ("_burst", "_burst_is_default", "_last", "_rate", "_tokens")

    #: how many buckets have had a rate set (and not reset to 0) in this process. Zero answers
    #: "is anything limited?" with one attribute read for every block received, instead of
    #: asking three buckets per block. It may over-count (a bucket dropped while limited stays
    #: counted: there is no ``__del__``, which could run on any thread), never under-count, so
    #: it only ever costs the fast path, never a limit.
    limited_count: ClassVar[int] = 0

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if burst is not None and not burst > 0:
            raise ValueError(f"burst must be > 0, got {burst}")
        self._rate = 0.0
        self._burst = 0.0 if burst is None else float(burst)
        self._burst_is_default = burst is None
        self._last: float | None = None
        self._tokens = 0.0
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def unlimited(self) -> bool:
        return self._rate == 0

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """Change the rate (0 = unlimited). Pass ``now`` to credit time elapsed at the old rate."""
        if rate < 0 or math.isnan(rate) or math.isinf(rate):
            raise ValueError(f"rate must be a finite number >= 0, got {rate}")
        if now is not None:
            self._refill(now)
        was_unlimited = self._rate == 0
        self._rate = float(rate)
        if was_unlimited != (self._rate == 0):
            TokenBucket.limited_count += 1 if was_unlimited else -1
        if self._burst_is_default:
            self._burst = self._rate
        if self._rate == 0:
            self._tokens = 0.0  # unlimited: forget any debt
        elif was_unlimited:
            self._tokens = self._burst  # a fresh limit starts with a full bucket
        else:
            self._tokens = min(self._tokens, self._burst)

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last and self._rate:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        if self._last is None or now > self._last:
            self._last = now  # a clock that steps back never mints tokens

    def available(self, now: float) -> float:
        """Bytes that may pass right now; negative while in debt, ``inf`` when unlimited."""
        if not self._rate:
            return math.inf
        self._refill(now)
        return self._tokens

    def consume(self, n: int, now: float) -> float:
        """Take ``n`` bytes; return the seconds to wait before they may be sent (0 = at once)."""
        if n < 0:
            raise ValueError(f"cannot consume {n} bytes")
        if not self._rate:
            return 0.0
        self._refill(now)
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def refund(self, n: int, now: float) -> None:
        """Give back ``n`` bytes charged for a transfer that did not happen (never above burst)."""
        if n < 0:
            raise ValueError(f"cannot refund {n} bytes")
        if self._rate:
            self._refill(now)
            self._tokens = min(self._burst, self._tokens + n)


class RateLimiter:
    """Waits on the event loop until bytes may pass every given bucket."""

    async def acquire(self, n: int, buckets: Sequence[TokenBucket]) -> None:
        """Charge ``n`` bytes to all ``buckets`` and sleep for the longest resulting delay."""
        if n <= 0 or not buckets:
            return
        now = asyncio.get_running_loop().time()
        delay = max(bucket.consume(n, now) for bucket in buckets)
        if delay > 0:
            await asyncio.sleep(delay)

    def refund(self, n: int, buckets: Sequence[TokenBucket]) -> None:
        """Give back ``n`` bytes :meth:`acquire` charged for a transfer that did not happen."""
        if n <= 0 or not buckets:
            return
        now = asyncio.get_running_loop().time()  # the clock acquire charged them on
        for bucket in buckets:
            bucket.refund(n, now)


class DownloadBudget:
    """One connection's download pacing: request blocks only as fast as the buckets refill.

    Sans-I/O; the caller passes ``now`` on the buckets' clock. Bytes are charged when requested
    (:meth:`allowance` then :meth:`charge`) and remembered as *prepaid*; a block that arrives
    against prepaid bytes is not charged again (:meth:`on_block`). Bytes that arrive beyond what
    was prepaid (blocks requested before a limit was set, unrequested or duplicate blocks) are
    charged on arrival and their delay returned, so pausing the reading stays as a backstop.
    Requests that will never be answered (rejected, cancelled, choked away) leave prepaid bytes
    behind; :meth:`allowance` trims those to what is still outstanding and refunds the rest.
    """

    __slots__ = ("prepaid", "timer")

    #: the least time between two wake-ups of a throttled connection: at high rates a wake-up
    #: requests several blocks instead of one wake-up per 16 KiB
    MIN_WAKE = 0.02
    #: random extra wait on each wake-up, so peers throttled by one shared bucket take turns
    #: (with equal wake-up times the same peer would always come first and starve the rest)
    JITTER = 0.01

    def __init__(self) -> None:
        self.prepaid = 0
        #: the pending wake-up that sends the next requests; None when none is due
        self.timer: asyncio.TimerHandle | None = None

    def allowance(
        self, buckets: Sequence[TokenBucket], outstanding: int, block: int, now: float
    ) -> int:
        """How many ``block``-sized requests may be sent now (``outstanding``: bytes in flight).

        While every bucket has a balance above zero, one more block may go (deficit
        accounting: the last one may borrow, later requests wait for the debt to be repaid).
        """
        if self.prepaid > outstanding:
            excess = self.prepaid - outstanding
            self.prepaid = outstanding
            for bucket in buckets:
                bucket.refund(excess, now)
        balance = min(bucket.available(now) for bucket in buckets)
        if balance <= 0:
            return 0
        if math.isinf(balance):
            return 1 << 30
        return math.ceil(balance / block)

    def charge(self, buckets: Sequence[TokenBucket], n: int, now: float) -> None:
        """``n`` bytes were requested: take them from every bucket now."""
        for bucket in buckets:
            bucket.consume(n, now)
        self.prepaid += n

    def wake_delay(self, buckets: Sequence[TokenBucket], now: float) -> float:
        """Seconds until every bucket is out of debt (at least :data:`MIN_WAKE`, plus jitter)."""
        wait = 0.0
        for bucket in buckets:
            balance = bucket.available(now)
            if balance < 0:
                wait = max(wait, -balance / bucket.rate)
        return max(wait, self.MIN_WAKE) + random.random() * self.JITTER

    def on_block(self, buckets: Sequence[TokenBucket], size: int, now: float) -> float:
        """A block of ``size`` bytes arrived: seconds to pause reading (0 when it was prepaid)."""
        paid = min(size, self.prepaid)
        self.prepaid -= paid
        if paid == size:
            return 0.0
        return max(bucket.consume(size - paid, now) for bucket in buckets)


def _parse_hhmm(text: str) -> int:
    """``"HH:MM"`` → minutes after midnight."""
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"time must be HH:MM, got {text!r}")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"time must be between 00:00 and 23:59, got {text!r}")
    return h * 60 + m


class AltSpeedSchedule:
    """When the alternative (usually lower) speed limits apply.

    ``days`` are ``datetime.weekday()`` numbers (0 = Monday … 6 = Sunday); all days if omitted.
    A day selects the window that *starts* on it, so ``22:00``–``06:00`` on Friday runs from
    Friday 22:00 to Saturday 06:00. ``start == end`` means the whole day.
    """

    def __init__(self, start: str, end: str, days: Iterable[int] | None = None) -> None:
        self.start = _parse_hhmm(start)
        self.end = _parse_hhmm(end)
        self.days = frozenset(range(7) if days is None else days)
        if not self.days <= frozenset(range(7)):
            raise ValueError(f"weekdays must be 0..6, got {sorted(self.days)}")

    def active(self, dt: datetime) -> bool:
        minute = dt.hour * 60 + dt.minute
        day = dt.weekday()
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Wraps midnight: the evening part belongs to today, the morning part to yesterday.
        if minute >= self.start:
            return day in self.days
        return minute < self.end and (day - 1) % 7 in self.days
