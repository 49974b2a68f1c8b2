"""Torrent queueing and seeding limits as pure logic (sans-I/O: time is passed in).

What a qBittorrent / Transmission user expects, decided here and carried out by
:mod:`ccbt_engine.queue_service`:

* Every torrent has a queue position (0 = top), kept in :class:`QueueOrder`. Like Transmission
  there is one order for all torrents; the download queue and the seed queue both follow it.
* ``limits.max_active_downloads`` / ``limits.max_active_seeds`` (0 = unlimited) cap how many
  torrents download / seed at once. :func:`select_active` walks the order and picks who runs;
  the rest wait in state ``queued`` (not ``paused``: the user did not stop them).
* "Do not count slow torrents" (libtorrent's ``dont_count_slow_torrents``): a running torrent
  whose payload rate stayed under :data:`SLOW_RATE` for :data:`SLOW_SECONDS` (a dead swarm, a
  seed nobody wants) keeps running but frees its slot, so it cannot block the queue.
  :class:`SlowTracker` decides that. A queued torrent never counts as slow: it has not had its
  chance yet.
* ``limits.share_ratio_limit`` / ``limits.seed_time_limit_min`` (0 = no limit):
  :func:`seeding_limit_reached` says when a seeding torrent must stop.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

__all__ = [
    "MAX_RATIO",
    "SLOW_RATE",
    "SLOW_SECONDS",
    "Direction",
    "Kind",
    "QueueEntry",
    "QueueOrder",
    "SlowTracker",
    "seeding_limit_reached",
    "select_active",
    "share_ratio",
]

Key = TypeVar("Key", bound=Hashable)
Kind = Literal["download", "seed"]
Direction = Literal["up", "down", "top", "bottom"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down", "top", "bottom")

#: bytes/s of payload under which a running torrent is "slow" (libtorrent's inactive rates)
SLOW_RATE = 2048.0
#: seconds a torrent must have been slow (and running) before its slot is freed
SLOW_SECONDS = 60.0
#: what the ratio shows when nothing was downloaded but something uploaded (qBittorrent's cap)
MAX_RATIO = 9999.0


class QueueOrder(Generic[Key]):
    """Queue positions: an ordered list of keys, 0 = top (first to run).

    Positions are read far more often than changed (every status snapshot reads every
    torrent's), so a key -> position index is kept and rebuilt only after a change.
    """

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        self._keys: list[Key] = []
        self._index: dict[Key, int] = {}
        self._stale = False
        for key in keys:
            self.add(key)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._positions()

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._keys))  # a copy: callers may move keys while iterating

    def _positions(self) -> dict[Key, int]:
        if self._stale:
            self._index = {k: i for i, k in enumerate(self._keys)}
            self._stale = False
        return self._index

    def add(self, key: Key) -> int:
        """Append at the bottom (a new torrent waits behind the ones already queued)."""
        index = self._positions()
        if key not in index:
            index[key] = len(self._keys)
            self._keys.append(key)
        return index[key]

    def remove(self, key: Key) -> None:
        """Forget a key; the ones below move up by one (positions stay dense)."""
        if key in self._positions():
            self._keys.remove(key)
            self._stale = True

    def position(self, key: Key) -> int:
        """0-based position; ``-1`` for an unknown key."""
        return self._positions().get(key, -1)

    def move(self, key: Key, direction: Direction) -> bool:
        """Move one step up/down or to the top/bottom; False when nothing changed."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        old = self.position(key)
        if old < 0:
            raise KeyError(key)
        last = len(self._keys) - 1
        new = {
            "up": max(0, old - 1),
            "down": min(last, old + 1),
            "top": 0,
            "bottom": last,
        }[direction]
        return self.set_position(key, new)

    def set_position(self, key: Key, position: int) -> bool:
        """Put ``key`` at ``position`` (clamped); False when nothing changed."""
        old = self.position(key)
        if old < 0:
            raise KeyError(key)
        new = max(0, min(len(self._keys) - 1, position))
        if new == old:
            return False
        self._keys.pop(old)
        self._keys.insert(new, key)
        self._stale = True
        return True


@dataclass(frozen=True, slots=True)
class QueueEntry(Generic[Key]):
    """A torrent the queue may run: what it would do, whether it runs now, whether it is slow.

    Paused, errored and checking torrents are not entries: they take no slot.
    """

    key: Key
    kind: Kind
    running: bool = False
    slow: bool = False


def select_active(
    entries: Sequence[QueueEntry[Key]],
    *,
    max_downloads: int,
    max_seeds: int,
    skip_slow: bool = True,
) -> set[Key]:
    """The keys that should run, given ``entries`` in queue order (top first).

    Each kind fills its own slots in order; 0 means unlimited. With ``skip_slow`` a running
    slow torrent runs on without taking a slot, so the next queued one starts in its place.
    """
    active: set[Key] = set()
    used: dict[Kind, int] = {"download": 0, "seed": 0}
    limits: dict[Kind, int] = {"download": max_downloads, "seed": max_seeds}
    for entry in entries:
        if skip_slow and entry.running and entry.slow:
            active.add(entry.key)
            continue
        limit = limits[entry.kind]
        if limit == 0 or used[entry.kind] < limit:
            active.add(entry.key)
            used[entry.kind] += 1
    return active


class SlowTracker(Generic[Key]):
    """Per running torrent: since when its payload rate has been under :data:`SLOW_RATE`."""

    def __init__(self, rate: float = SLOW_RATE, seconds: float = SLOW_SECONDS) -> None:
        self.rate = rate
        self.seconds = seconds
        self._busy_at: dict[Key, float] = {}

    def started(self, key: Key, now: float) -> None:
        """A torrent (re)started or changed kind: it gets a full grace period."""
        self._busy_at[key] = now

    def observe(self, key: Key, rate: float, now: float) -> None:
        """Feed the current payload rate (download rate while downloading, upload while
        seeding) of a running torrent."""
        if key not in self._busy_at or rate >= self.rate:
            self._busy_at[key] = now

    def stopped(self, key: Key) -> None:
        self._busy_at.pop(key, None)

    def is_slow(self, key: Key, now: float) -> bool:
        busy = self._busy_at.get(key)
        return busy is not None and now - busy >= self.seconds


def share_ratio(uploaded: int, downloaded: int, done: int) -> float:
    """Upload/download ratio, qBittorrent's way.

    A torrent added with its data already there (downloaded ~ 0) is measured against the data
    it has (``done``), so "seed to ratio 1" still means "upload one copy". Nothing downloaded or
    had but something uploaded: :data:`MAX_RATIO`.
    """
    denominator = done if downloaded < done * 0.01 else downloaded
    if denominator <= 0:
        return MAX_RATIO if uploaded > 0 else 0.0
    return min(MAX_RATIO, uploaded / denominator)


def seeding_limit_reached(
    ratio: float, seeding_seconds: float, *, ratio_limit: float, seed_time_limit_min: int
) -> Literal["ratio", "seed_time"] | None:
    """Which seeding limit a seeding torrent has reached, if any (each 0 = no limit)."""
    if ratio_limit > 0 and ratio >= ratio_limit:
        return "ratio"
    if seed_time_limit_min > 0 and seeding_seconds >= seed_time_limit_min * 60:
        return "seed_time"
    return None
