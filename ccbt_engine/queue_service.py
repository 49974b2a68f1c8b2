"""The session's queue: runs :mod:`ccbt_engine.queueing`'s decisions on real torrents.

``SessionCore.queue`` is a :class:`SessionQueue`. It

* keeps the queue order (new torrents at the bottom; the persisted torrent list follows it, so
  positions survive a restart),
* answers :meth:`SessionQueue.hold` when a torrent is about to download or seed: ``queued``
  when no slot is free (``limits.max_active_downloads`` / ``max_active_seeds``), ``moving``
  while its files are being moved, else None,
* reconciles whenever something that matters changes (a torrent finished, paused, resumed,
  removed, moved in the queue, a limit changed, a torrent became slow): running torrents that
  lost their slot go to ``queued``, queued torrents that got one start,
* once a second: feeds payload rates to the slow-torrent tracker, counts seeding time, and
  pauses seeding torrents that reached ``limits.share_ratio_limit`` / ``seed_time_limit_min``
  (event :class:`~ccbt_engine.events.SeedingLimitReached`),
* moves a torrent's files to ``disk.move_completed_to`` when its download completes
  (:mod:`ccbt_engine.storage.move` on a worker thread; events ``StorageMoved`` /
  ``StorageMoveFailed``), and on request ("set location").

Seeding time is counted while the session runs and kept in the resume data
(:meth:`SessionQueue.restore_seeding_time` on load), so ``seed_time_limit_min`` goes on from
where it was after a restart, as the ratio does from the persisted totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ccbt_engine import events as ev
from ccbt_engine.queueing import (
    Direction,
    Kind,
    QueueEntry,
    QueueOrder,
    SlowTracker,
    seeding_limit_reached,
    select_active,
    share_ratio,
)
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.move import MoveError, move_files, plan_move
from ccbt_engine.torrent import TorrentState

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore
    from ccbt_engine.torrent import Torrent

__all__ = ["QUEUE_KEYS", "TICK_SECONDS", "SessionQueue"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
#: settings whose change re-runs the queue at once
QUEUE_KEYS = frozenset(
    {"limits.max_active_downloads", "limits.max_active_seeds", "limits.skip_slow_torrents"}
)
_RUNNING = (TorrentState.DOWNLOADING, TorrentState.SEEDING)


class SessionQueue:
    """Queue order, slots, seeding limits and moves of one session's torrents."""

    def __init__(self, core: SessionCore) -> None:
        self.core = core
        self.order: QueueOrder[bytes] = QueueOrder()
        self.slow: SlowTracker[bytes] = SlowTracker()
        #: running torrents found slow at the last tick (slowness changes only on ticks)
        self._slow: set[bytes] = set()
        self._seeding_since: dict[bytes, float] = {}
        self._seeding_total: dict[bytes, float] = {}
        self._moves: dict[bytes, tuple[threading.Event, asyncio.Task[bool]]] = {}
        self._reconcile_task: asyncio.Task[None] | None = None
        self._dirty = False
        self._tick_task: asyncio.Task[None] | None = None
        self._unsubscribe = core.events.subscribe(self._on_event)
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._tick_loop(), name="ccbt-queue")

    async def close(self) -> None:
        """Stop deciding; cancel moves in progress (they roll back) and wait for them."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        for task in (self._tick_task, self._reconcile_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tick_task = self._reconcile_task = None
        for cancel, _ in self._moves.values():
            cancel.set()
        if self._moves:
            await asyncio.gather(*(t for _, t in self._moves.values()), return_exceptions=True)

    async def removing(self, torrent: Torrent) -> None:
        """Called before a torrent is removed: a move of its files must end (roll back) first."""
        move = self._moves.get(torrent.info_hash)
        if move is not None:
            move[0].set()
            await asyncio.gather(move[1], return_exceptions=True)

    # -- the hook in Torrent.start ------------------------------------------------------------
    def hold(self, torrent: Torrent) -> TorrentState | None:
        """What ``torrent`` must wait in instead of downloading/seeding now, if anything."""
        key = torrent.info_hash
        self.order.add(key)
        if key in self._moves:
            return TorrentState.MOVING
        if self._closed:
            return None
        active = self._select(candidate=torrent)
        return None if key in active else TorrentState.QUEUED

    # -- positions ----------------------------------------------------------------------------
    def position(self, info_hash: bytes) -> int:
        return self.order.position(info_hash)

    def move(self, info_hash: bytes, direction: Direction) -> bool:
        """Move a torrent in the queue; slots are re-dealt at once. False: already there."""
        if info_hash not in self.core.torrents:
            raise KeyError(info_hash)
        self.order.add(info_hash)
        changed = self.order.move(info_hash, direction)
        if changed:
            self._order_changed()
        return changed

    def _order_changed(self) -> None:
        persistence = self.core.persistence
        if persistence is not None:  # session.json lists torrents in queue order
            saved = persistence.state.torrents
            saved.sort(key=lambda h: _sort_position(self.order, h))
            persistence.request_session()
        self.request()

    # -- deciding -----------------------------------------------------------------------------
    def _entries(self, candidate: Torrent | None = None) -> list[QueueEntry[bytes]]:
        """Torrents that run or wait, in queue order; with a candidate (about to start), up to
        and including it."""
        entries: list[QueueEntry[bytes]] = []
        for key in self.order:
            t = self.core.torrents.get(key)
            if t is None:
                continue
            running = t.state in _RUNNING
            if not running and t.state != TorrentState.QUEUED and t is not candidate:
                continue
            seed = t.state == TorrentState.SEEDING if running else t.picker.is_finished()
            kind: Kind = "seed" if seed else "download"
            slow = running and key in self._slow
            entries.append(QueueEntry(key, kind, running, slow))
            if t is candidate:  # slots go in queue order: the ones below cannot matter to it
                break
        return entries

    def _select(self, candidate: Torrent | None = None) -> set[bytes]:
        limits = self.core.settings.limits
        return select_active(
            self._entries(candidate),
            max_downloads=limits.max_active_downloads,
            max_seeds=limits.max_active_seeds,
            skip_slow=limits.skip_slow_torrents,
        )

    def request(self) -> None:
        """Re-deal the slots soon (coalesced: one reconcile runs at a time)."""
        if self._closed:
            return
        self._dirty = True
        if self._reconcile_task is None or self._reconcile_task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): the next tick reconciles
                return
            self._reconcile_task = loop.create_task(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        while self._dirty and not self._closed:
            self._dirty = False
            try:
                await self._reconcile()
            except Exception:
                log.exception("queue: reconcile failed")

    async def _reconcile(self) -> None:
        entries = self._entries()
        active = self._select()
        # free slots first, then fill them, so the limits are never exceeded on the way
        for entry in entries:
            t = self.core.torrents.get(entry.key)
            if t is not None and entry.running and entry.key not in active:
                log.info("%s: queued (no free slot)", t.name)
                await t.suspend(TorrentState.QUEUED)
        for entry in entries:
            t = self.core.torrents.get(entry.key)
            if t is not None and entry.key in active and t.state == TorrentState.QUEUED:
                await t.start()

    # -- events -------------------------------------------------------------------------------
    def _on_event(self, event: ev.Event) -> None:
        if event.info_hash is None:
            return
        key = bytes.fromhex(event.info_hash)
        now = time.monotonic()
        if isinstance(event, ev.TorrentAdded):
            if key in self.core.torrents:  # a magnet joins when its metadata makes it one
                self.order.add(key)
        elif isinstance(event, ev.TorrentRemoved):
            self.order.remove(key)
            self.slow.stopped(key)
            self._seeding_since.pop(key, None)
            self._seeding_total.pop(key, None)
            self.request()
        elif isinstance(event, ev.TorrentStateChanged):
            self._state_changed(key, event.old, event.new, now)
            self.request()
        elif isinstance(event, ev.TorrentFinished):
            target = self.core.settings.disk.move_completed_to
            torrent = self.core.torrents.get(key)
            if target is not None and torrent is not None:
                self.start_move(torrent, Path(target))

    def _state_changed(self, key: bytes, old: str, new: str, now: float) -> None:
        self._slow.discard(key)
        if new in _RUNNING:
            self.slow.started(key, now)  # a fresh grace period, also downloading -> seeding
        else:
            self.slow.stopped(key)
        if old == TorrentState.SEEDING:
            since = self._seeding_since.pop(key, None)
            if since is not None:
                self._seeding_total[key] = self._seeding_total.get(key, 0.0) + now - since
        if new == TorrentState.SEEDING:
            self._seeding_since[key] = now

    def seeding_time(self, info_hash: bytes, now: float | None = None) -> float:
        """Seconds this torrent has seeded, earlier sessions included (resume data)."""
        now = time.monotonic() if now is None else now
        since = self._seeding_since.get(info_hash)
        running = now - since if since is not None else 0.0
        return self._seeding_total.get(info_hash, 0.0) + running

    def restore_seeding_time(self, info_hash: bytes, seconds: float) -> None:
        """Seeding time of earlier sessions (from resume data), before the torrent starts."""
        self._seeding_total[info_hash] = max(0.0, seconds)

    # -- periodic work ------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.tick(time.monotonic())
            except Exception:
                log.exception("queue: tick failed")

    async def tick(self, now: float) -> None:
        """Slow detection, then seeding limits."""
        limits = self.core.settings.limits
        slow: set[bytes] = set()
        for key, t in list(self.core.torrents.items()):
            if t.state not in _RUNNING:
                continue
            rate = t.up.rate(now) if t.state == TorrentState.SEEDING else t.down.rate(now)
            self.slow.observe(key, rate, now)
            if self.slow.is_slow(key, now):
                slow.add(key)
        changed, self._slow = slow != self._slow, slow
        if (changed and limits.skip_slow_torrents) or self._dirty:
            self.request()
        for key, t in list(self.core.torrents.items()):
            if t.state != TorrentState.SEEDING:
                continue
            ratio = torrent_ratio(t)
            seeded = self.seeding_time(key, now)
            reason = seeding_limit_reached(
                ratio,
                seeded,
                ratio_limit=limits.share_ratio_limit,
                seed_time_limit_min=limits.seed_time_limit_min,
            )
            if reason is None:
                continue
            log.info("%s: seeding limit reached (%s); pausing", t.name, reason)
            await t.pause()
            self.core.events.publish(
                ev.SeedingLimitReached(
                    info_hash=t.info_hash_hex, reason=reason, ratio=ratio, seeding_time=seeded
                )
            )

    # -- moving files -------------------------------------------------------------------------
    def is_moving(self, info_hash: bytes) -> bool:
        return info_hash in self._moves

    def start_move(self, torrent: Torrent, target: Path) -> asyncio.Task[bool]:
        """Move ``torrent``'s files under ``target`` in the background (one move at a time per
        torrent; a second request while one runs returns the running one)."""
        running = self._moves.get(torrent.info_hash)
        if running is not None:
            return running[1]
        cancel = threading.Event()
        task = asyncio.get_running_loop().create_task(self._move(torrent, target, cancel))
        self._moves[torrent.info_hash] = (cancel, task)
        return task

    async def _move(self, torrent: Torrent, target: Path, cancel: threading.Event) -> bool:
        key = torrent.info_hash
        old = torrent.storage.save_path
        new = Path(os.path.abspath(os.path.expanduser(target)))
        moved = False
        try:
            if new == old:
                return True
            await torrent.suspend(TorrentState.MOVING)
            try:
                await torrent.storage.close()  # flushed, every descriptor closed
                pairs = await asyncio.to_thread(plan_move, torrent.info, old, new)
                report = await asyncio.to_thread(move_files, pairs, old, cancel)
            except (MoveError, StorageError) as exc:
                log.error("%s: not moved to %s: %s", torrent.name, new, exc)
                self.core.events.publish(
                    ev.StorageMoveFailed(
                        info_hash=torrent.info_hash_hex,
                        old_path=str(old),
                        new_path=str(new),
                        message=str(exc),
                    )
                )
                return False
            torrent.relocate(new)
            moved = True
            log.info(
                "%s: moved to %s (%d renamed, %d copied)",
                torrent.name,
                new,
                report.renamed,
                report.copied,
            )
            self._saved_path_changed(torrent)
            self.core.events.publish(
                ev.StorageMoved(
                    info_hash=torrent.info_hash_hex, old_path=str(old), new_path=str(new)
                )
            )
            return True
        finally:
            self._moves.pop(key, None)
            alive = self.core.torrents.get(key) is torrent
            if alive and torrent.state == TorrentState.MOVING and not self._closed:
                await torrent.start()  # seeds from the new place (or the old one, on failure)
            elif moved and alive:
                self._checkpoint(torrent)

    def _saved_path_changed(self, torrent: Torrent) -> None:
        persistence = self.core.persistence
        if persistence is not None:
            persistence.state.save_paths[torrent.info_hash_hex] = str(torrent.storage.save_path)
            persistence.request_session()
            persistence.request(torrent)

    def _checkpoint(self, torrent: Torrent) -> None:
        if self.core.persistence is not None:
            self.core.persistence.request(torrent)


def torrent_ratio(t: Torrent) -> float:
    """The share ratio the seeding limit compares (see :func:`queueing.share_ratio`)."""
    done = t.wanted_bytes - t.picker.wanted_remaining()
    return share_ratio(t.up.total, t.down.total, done)


def _sort_position(order: QueueOrder[bytes], hex_hash: str) -> int:
    pos = order.position(bytes.fromhex(hex_hash))
    return pos if pos >= 0 else len(order)
