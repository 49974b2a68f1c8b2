"""Multitracker announcer for one torrent (BEP 12 tiers, BEP 3 events and intervals).

Rules, and why:

* **Tiers.** Trackers within a tier are shuffled once (so every client does not hammer the
  first-listed one). A round tries tier 0 in order, then tier 1, …, and stops at the first
  tracker that answers; that tracker moves to the front of its tier so the next round starts
  with it. One working tracker per round is what BEP 12 asks: announcing to every tracker of a
  multi-tracker torrent multiplies the load for little gain.
* **Events.** A tracker hears ``started`` the first time it is successfully announced to (it may
  be a fallback reached long after the torrent started), ``completed`` once when the download
  finishes, and ``stopped`` at shutdown only if it heard ``started`` — a tracker that never knew
  us has nothing to forget.
* **Intervals.** The next round is due after the working tracker's ``interval`` (floored so a
  tracker saying ``interval=0`` cannot make us hammer it). :meth:`Announcer.force_reannounce`
  honours ``min interval``; ``completed`` does not wait for it, because a tracker wants to know
  about a new seed promptly. When every tracker fails, rounds back off exponentially.

Status is published as frozen :class:`TrackerStatus` snapshots, safe to hand to another thread
or the GUI. Times in snapshots are wall-clock seconds (``time.time()``); scheduling uses the
loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp

from ccbt_engine.tracker.http import DEFAULT_TIMEOUT, HttpTracker
from ccbt_engine.tracker.protocol import (
    AnnounceReply,
    AnnounceRequest,
    Event,
    Peer,
    ScrapeResult,
    TrackerError,
)
from ccbt_engine.tracker.udp import DEFAULT_MAX_RETRIES, UdpTracker

__all__ = ["AnnounceStats", "Announcer", "TrackerState", "TrackerStatus"]

log = logging.getLogger(__name__)

TrackerState = Literal["working", "updating", "error", "not contacted"]

#: Longest announce interval honoured (a tracker saying "come back in 10 years" is wrong).
MAX_INTERVAL = 24 * 3600.0
#: Longest back-off between rounds when every tracker fails.
MAX_RETRY_DELAY = 1800.0


@dataclass(frozen=True, slots=True)
class AnnounceStats:
    """Transfer totals reported to trackers, read fresh for every announce."""

    uploaded: int
    downloaded: int
    left: int


@dataclass(frozen=True, slots=True)
class TrackerStatus:
    """What the GUI's tracker tab shows for one tracker."""

    url: str
    tier: int
    status: TrackerState
    #: Error text, or the tracker's warning message when it works; "" when there is nothing.
    message: str
    last_announce: float | None
    next_announce: float | None
    seeds: int | None
    peers: int | None
    downloaded: int | None


class _Client(Protocol):
    url: str

    @property
    def can_scrape(self) -> bool: ...

    async def announce(self, req: AnnounceRequest) -> AnnounceReply: ...

    async def scrape(self, info_hashes: list[bytes]) -> dict[bytes, ScrapeResult]: ...

    async def close(self) -> None: ...


class _Entry:
    """Mutable per-tracker bookkeeping; only :class:`TrackerStatus` copies leave the class."""

    def __init__(self, url: str, tier: int, client: _Client | None, error: str = "") -> None:
        self.url = url
        self.tier = tier
        self.client = client
        self.status: TrackerState = "error" if client is None else "not contacted"
        self.message = error
        self.last_announce: float | None = None
        self.next_announce: float | None = None
        self.seeds: int | None = None
        self.peers: int | None = None
        self.downloaded: int | None = None
        self.tracker_id: bytes | None = None
        self.interval: float | None = None
        self.min_interval: float | None = None
        #: Loop time of the last successful announce (for ``min interval``).
        self.last_success: float | None = None
        self.started_ok = False

    def snapshot(self) -> TrackerStatus:
        return TrackerStatus(
            url=self.url,
            tier=self.tier,
            status=self.status,
            message=self.message,
            last_announce=self.last_announce,
            next_announce=self.next_announce,
            seeds=self.seeds,
            peers=self.peers,
            downloaded=self.downloaded,
        )


class Announcer:
    """Announces one torrent to its trackers and keeps doing so until stopped."""

    def __init__(
        self,
        *,
        info_hash: bytes,
        peer_id: bytes,
        port: int,
        tiers: Sequence[Sequence[str]],
        stats: Callable[[], AnnounceStats],
        on_peers: Callable[[list[Peer], str], None],
        session: aiohttp.ClientSession | None = None,
        numwant: int = 200,
        udp_base_timeout: float = 15.0,
        udp_max_retries: int = DEFAULT_MAX_RETRIES,
        http_timeout: float = DEFAULT_TIMEOUT,
        min_announce_interval: float = 30.0,
        retry_base: float = 60.0,
        private: bool = False,
        rng: random.Random | None = None,
        udp_disabled: str = "",
    ) -> None:
        """``udp_disabled``: why UDP trackers must not be contacted ("" = they may be): a
        forced proxy carries TCP only, so they are listed with that reason instead."""
        if len(info_hash) != 20 or len(peer_id) != 20:
            raise ValueError("info_hash and peer_id must be 20 bytes")
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.port = port
        self.numwant = numwant
        #: BEP 27: the session must not add DHT/PEX/LSD peers or other trackers to a private
        #: torrent; the announcer itself only ever uses the trackers it was given.
        self.private = private
        self._stats = stats
        self._on_peers = on_peers
        self._min_interval_floor = min_announce_interval
        self._retry_base = retry_base
        self._key = secrets.randbits(32)
        rng = rng or random.Random()
        self._tiers: list[list[_Entry]] = []
        seen: set[str] = set()
        for tier_urls in tiers:
            tier: list[_Entry] = []
            for url in tier_urls:
                if url in seen:
                    continue
                seen.add(url)
                tier.append(
                    self._make_entry(
                        url,
                        len(self._tiers),
                        session,
                        http_timeout,
                        udp_base_timeout,
                        udp_max_retries,
                        udp_disabled,
                    )
                )
            if tier:
                rng.shuffle(tier)
                self._tiers.append(tier)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._forced = False
        self._bypass_min_interval = False
        self._completed_pending = False
        self._next_due = 0.0
        self._round_failures = 0
        self._working: _Entry | None = None
        self._stopped = False

    @staticmethod
    def _make_entry(
        url: str,
        tier: int,
        session: aiohttp.ClientSession | None,
        http_timeout: float,
        udp_base_timeout: float,
        udp_max_retries: int,
        udp_disabled: str = "",
    ) -> _Entry:
        scheme = url.split(":", 1)[0].lower()
        if scheme == "udp" and udp_disabled:
            return _Entry(url, tier, None, f"UDP tracker {udp_disabled}")
        try:
            if scheme in ("http", "https"):
                return _Entry(url, tier, HttpTracker(url, session=session, timeout=http_timeout))
            if scheme == "udp":
                client = UdpTracker(url, base_timeout=udp_base_timeout, max_retries=udp_max_retries)
                return _Entry(url, tier, client)
        except TrackerError as exc:
            return _Entry(url, tier, None, str(exc))
        return _Entry(url, tier, None, f"unsupported tracker protocol {scheme!r}")

    # -- public API ---------------------------------------------------------------------------
    def status(self) -> list[TrackerStatus]:
        """One snapshot per tracker, in tier order (and current order within each tier)."""
        return [e.snapshot() for tier in self._tiers for e in tier]

    async def start(self) -> None:
        """Begin announcing (``started`` first) in the background; returns at once.

        An announcer is single-use: after :meth:`stop`, make a new one to announce again.
        """
        if self._task is not None or self._stopped:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="announcer")

    async def completed(self) -> None:
        """Tell the trackers the download finished: queues a ``completed`` announce now.

        Returns once queued; the announce itself runs in the background (see :meth:`status`).
        """
        self._completed_pending = True
        self._trigger(bypass_min_interval=True)

    def force_reannounce(self) -> None:
        """Announce as soon as the working tracker's ``min interval`` allows."""
        self._trigger(bypass_min_interval=False)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop re-announcing and send ``stopped`` to every tracker that heard ``started``.

        Takes at most about ``timeout`` seconds whatever the trackers do; closes the clients.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        targets = [e for tier in self._tiers for e in tier if e.started_ok and e.client]
        if targets:
            jobs = [asyncio.ensure_future(self._announce_one(e, Event.STOPPED)) for e in targets]
            _done, pending = await asyncio.wait(jobs, timeout=timeout)
            for job in pending:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        for tier in self._tiers:
            for e in tier:
                if e.client is not None:
                    with contextlib.suppress(Exception):
                        await e.client.close()
                e.next_announce = None

    async def scrape(self, timeout: float = 15.0) -> dict[str, ScrapeResult]:
        """Scrape every tracker that supports it (concurrently); url → counts of this torrent.

        Trackers that fail or do not know the torrent are left out of the result.
        """
        entries = [e for tier in self._tiers for e in tier if e.client and e.client.can_scrape]

        async def one(e: _Entry) -> tuple[_Entry, ScrapeResult | None]:
            assert e.client is not None
            try:
                async with asyncio.timeout(timeout):
                    res = await e.client.scrape([self.info_hash])
            except (TrackerError, TimeoutError) as exc:
                log.debug("scrape %s failed: %s", e.url, exc)
                return e, None
            return e, res.get(self.info_hash)

        out: dict[str, ScrapeResult] = {}
        for e, res in await asyncio.gather(*(one(e) for e in entries)):
            if res is not None:
                e.seeds, e.peers, e.downloaded = res.complete, res.incomplete, res.downloaded
                out[e.url] = res
        return out

    # -- internals ----------------------------------------------------------------------------
    def _trigger(self, *, bypass_min_interval: bool) -> None:
        self._forced = True
        self._bypass_min_interval |= bypass_min_interval
        self._wake.set()

    def _event_for(self, entry: _Entry) -> Event:
        if not entry.started_ok:
            return Event.STARTED
        if self._completed_pending:
            return Event.COMPLETED
        return Event.NONE

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._forced = self._bypass_min_interval = False
            attempted = await self._round()
            now = loop.time()
            working = self._working
            if working is not None and working in attempted:
                self._round_failures = 0
                delay = working.interval or 0.0
            else:
                delay = self._retry_base * (1 << min(self._round_failures, 16))
                self._round_failures += 1
                delay = min(delay, MAX_RETRY_DELAY)
            delay = min(max(delay, self._min_interval_floor), MAX_INTERVAL)
            self._next_due = now + delay
            wall = time.time() + delay
            for e in attempted:
                e.next_announce = wall
            await self._sleep_until_due()

    async def _round(self) -> list[_Entry]:
        """One BEP 12 pass; returns the trackers tried (the last one worked if any did)."""
        attempted: list[_Entry] = []
        self._working = None
        for tier in self._tiers:
            for entry in list(tier):
                if entry.client is None:
                    continue
                attempted.append(entry)
                # completed() may be called while this announce is in flight; only an
                # announce decided after it was called may clear it.
                carried_completed = self._completed_pending
                if await self._announce_one(entry, self._event_for(entry)):
                    tier.remove(entry)
                    tier.insert(0, entry)
                    self._working = entry
                    if carried_completed:
                        self._completed_pending = False
                    return attempted
        return attempted

    async def _sleep_until_due(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self._next_due
            if self._forced:
                due = min(due, self._earliest_forced(loop.time()))
            now = loop.time()
            if now >= due:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due - now):
                    await self._wake.wait()

    def _earliest_forced(self, now: float) -> float:
        w = self._working
        if self._bypass_min_interval or w is None or w.last_success is None:
            return now
        return max(now, w.last_success + (w.min_interval or 0.0))

    def _request(self, entry: _Entry, event: Event) -> AnnounceRequest:
        stats = self._stats()
        return AnnounceRequest(
            info_hash=self.info_hash,
            peer_id=self.peer_id,
            port=self.port,
            uploaded=stats.uploaded,
            downloaded=stats.downloaded,
            left=stats.left,
            event=event,
            numwant=0 if event is Event.STOPPED else self.numwant,
            key=self._key,
            tracker_id=entry.tracker_id,
        )

    async def _announce_one(self, entry: _Entry, event: Event) -> bool:
        """Announce to one tracker and record the outcome; True when it answered properly."""
        assert entry.client is not None
        previous = entry.status
        entry.status = "updating"
        try:
            reply = await entry.client.announce(self._request(entry, event))
        except TrackerError as exc:
            entry.status, entry.message = "error", str(exc) or type(exc).__name__
            entry.last_announce = time.time()
            log.info("tracker %s: %s", entry.url, entry.message)
            return False
        except Exception as exc:
            # A bug must not silently end all future announces of this torrent: record it
            # like a tracker error (with a traceback in the log) and carry on.
            log.exception("announce to %s failed unexpectedly", entry.url)
            entry.status, entry.message = "error", f"internal error: {exc!r}"
            entry.last_announce = time.time()
            return False
        except BaseException:
            entry.status = previous
            raise
        entry.last_announce = time.time()
        entry.last_success = asyncio.get_running_loop().time()
        entry.status, entry.message = "working", reply.warning or ""
        entry.tracker_id = reply.tracker_id or entry.tracker_id
        entry.interval = float(reply.interval)
        entry.min_interval = None if reply.min_interval is None else float(reply.min_interval)
        if reply.complete is not None:
            entry.seeds = reply.complete
        if reply.incomplete is not None:
            entry.peers = reply.incomplete
        if reply.downloaded is not None:
            entry.downloaded = reply.downloaded
        entry.started_ok = event is not Event.STOPPED
        if event is not Event.STOPPED and reply.peers:
            try:
                self._on_peers(list(reply.peers), entry.url)
            except Exception:
                log.exception("on_peers callback failed for %s", entry.url)
        return True
