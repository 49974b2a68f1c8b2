"""Connects one torrent to its trackers: announces on start/finish/stop, feeds peers back.

An :class:`~ccbt_engine.tracker.Announcer` cannot be restarted after ``stop``, so a paused and
resumed torrent gets a fresh one; this class hides that and filters our own address out of the
peer lists (trackers hand every announcer back to itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import aiohttp

from ccbt_engine.tracker import Announcer, AnnounceStats, TrackerStatus

log = logging.getLogger(__name__)

#: seconds a stopping torrent waits for trackers to take its "stopped" announce
STOP_TIMEOUT = 5.0

LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "0.0.0.0", "::", "localhost"})


class TrackerLink:
    """The tracker side of one torrent."""

    def __init__(
        self,
        *,
        info_hash: bytes,
        peer_id: bytes,
        tiers: Sequence[Sequence[str]],
        private: bool,
        stats: Callable[[], AnnounceStats],
        on_peers: Callable[[list[tuple[str, int]], str], None],
        listen_port: Callable[[], int],
        http: Callable[[], aiohttp.ClientSession | None],
        udp_blocked: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._info_hash = info_hash
        self._peer_id = peer_id
        self._tiers = [list(t) for t in tiers if t]
        self._private = private
        self._stats = stats
        self._on_peers = on_peers
        self._listen_port = listen_port
        self._http = http
        self._udp_blocked = udp_blocked
        self._announcer: Announcer | None = None
        self._last_status: list[TrackerStatus] = []

    @property
    def has_trackers(self) -> bool:
        return bool(self._tiers)

    async def start(self) -> None:
        if not self._tiers or self._announcer is not None:
            return
        self._announcer = Announcer(
            info_hash=self._info_hash,
            peer_id=self._peer_id,
            port=self._listen_port(),
            tiers=self._tiers,
            stats=self._stats,
            on_peers=self._peers_received,
            session=self._http(),
            private=self._private,
            udp_disabled=self._udp_blocked() or "",
        )
        await self._announcer.start()

    async def completed(self) -> None:
        if self._announcer is not None:
            await self._announcer.completed()

    async def stop(self) -> None:
        """Announce ``stopped`` (bounded in time) and forget the announcer."""
        announcer, self._announcer = self._announcer, None
        if announcer is None:
            return
        try:
            await announcer.stop(STOP_TIMEOUT)
        finally:
            self._last_status = announcer.status()

    async def restart(self) -> None:
        """A running announcer starts over (new HTTP session or proxy); a stopped one stays."""
        if self._announcer is not None:
            await self.stop()
            await self.start()

    def force_reannounce(self) -> None:
        if self._announcer is not None:
            self._announcer.force_reannounce()

    def status(self) -> list[TrackerStatus]:
        if self._announcer is not None:
            return self._announcer.status()
        return self._last_status

    def _peers_received(self, peers: list[tuple[str, int]], source: str) -> None:
        port = self._listen_port()
        own = [(h, p) for h, p in peers if not (p == port and h in LOCAL_HOSTS)]
        self._on_peers(own, "tracker")
