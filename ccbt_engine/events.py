"""Typed engine events and the bus that carries them to the GUI, CLI and remote clients.

State flows one way: the engine publishes, consumers subscribe. A slow consumer must not stall
the engine, so each subscriber has a bounded queue and loses its *oldest* events on overflow
(the periodic snapshots carry the authoritative state anyway).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every engine event."""

    info_hash: str | None = None
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class TorrentAdded(Event):
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TorrentRemoved(Event):
    with_data: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TorrentStateChanged(Event):
    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TorrentFinished(Event):
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TorrentError(Event):
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PieceHashFailed(Event):
    piece: int
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerBanned(Event):
    address: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDisconnected(Event):
    address: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AltSpeedChanged(Event):
    """The alternative global limits were switched on or off (``by``: manual or schedule)."""

    enabled: bool
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedingLimitReached(Event):
    """A seeding torrent reached ``limits.share_ratio_limit`` ("ratio") or
    ``limits.seed_time_limit_min`` ("seed_time") and was paused."""

    reason: str
    ratio: float
    seeding_time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageMoved(Event):
    """A torrent's files now live under ``new_path`` (``disk.move_completed_to``, set location)."""

    old_path: str
    new_path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageMoveFailed(Event):
    """Moving a torrent's files failed and was rolled back: the data is still in ``old_path``."""

    old_path: str
    new_path: str
    message: str


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events to callbacks and bounded async streams."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[Event]] = []
        self._queue_size = queue_size

    def publish(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a consumer's bug must not break the engine
                log.exception("event listener failed on %r", event)
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def stream(self) -> AsyncIterator[Event]:
        """Async iterator over events from now on (bounded; oldest dropped on overflow)."""
        q: asyncio.Queue[Event] = asyncio.Queue(self._queue_size + 1)
        self._queues.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._queues.remove(q)
