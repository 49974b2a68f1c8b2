"""Transfer rate measurement with time passed in (no clock of its own)."""

from __future__ import annotations


class RateMeter:
    """Bytes per second over a sliding window of one-second buckets.

    A plain EWMA lags badly after a burst stops; a short window of buckets drops to zero
    quickly, which is what users expect from a speed column, and still smooths jitter.
    """

    __slots__ = ("_buckets", "_current", "_start", "_window", "total")

    def __init__(self, window: int = 5) -> None:
        self._window = window
        self._buckets: list[int] = []
        self._current = 0
        self._start: float | None = None
        self.total = 0

    def add(self, n: int, now: float) -> None:
        self._roll(now)
        self._current += n
        self.total += n

    def _roll(self, now: float) -> None:
        if self._start is None:
            self._start = now
            return
        elapsed = int(now - self._start)
        if elapsed <= 0:
            return
        self._buckets.append(self._current)
        self._buckets.extend([0] * min(elapsed - 1, self._window))
        del self._buckets[: -self._window]
        self._current = 0
        self._start += elapsed

    def rate(self, now: float) -> float:
        """Average over the completed buckets in the window (the partial one is ignored)."""
        self._roll(now)
        if not self._buckets:
            if self._start is None:
                return 0.0
            span = now - self._start
            return self._current / span if span > 0.5 else 0.0
        return sum(self._buckets) / len(self._buckets)
