"""The bridge between the engine facade and Qt: one object the windows talk to.

It owns the :class:`~ccbt_engine.api.Session` (in-process, on the qasync loop), turns
``Session.snapshots()`` and the event bus into Qt signals, and runs commands as asyncio tasks so a
slow engine call never blocks a click handler. Everything the GUI knows about the engine passes
through here, which is also the seam where a remote (daemon) facade can be plugged in later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ccbt_engine import events as ev
from ccbt_engine.api import (
    QueueDirection,
    Session,
    SessionError,
    TorrentHandle,
    TorrentStatus,
    TrackerStatus,
)
from ccbt_engine.config import Changes, LiveSettings, Settings
from ccbt_engine.metainfo import Metainfo

log = logging.getLogger(__name__)


class EngineController(QObject):
    """Session lifecycle, state streams and commands for the GUI."""

    #: list[TorrentStatus] of torrents that changed since the previous tick
    snapshot = Signal(list)
    #: one :class:`ccbt_engine.events.Event`
    engineEvent = Signal(object)
    #: global (download, upload) bytes/s, once per tick
    globalRates = Signal(float, float)
    #: a user-facing message for the status bar
    message = Signal(str)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        #: the GUI's view of the settings; observers apply changed keys to the running session
        self.live = LiveSettings(settings)
        self.live.subscribe(lambda c, _s: self.apply_limits(c), "limits")
        self.live.subscribe(lambda _c, _s: self._restart_snapshots(), "ui.snapshot_interval_ms")
        self.session: Session | None = None
        self._snap_task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: the latest ``Session.apply_settings`` run (tests and the window await it)
        self.applying: asyncio.Task[Any] | None = None

    @property
    def settings(self) -> Settings:
        return self.live.current

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> str | None:
        """Start the session; returns a note for the status bar if the port had to change."""
        note = None
        settings = self.settings
        # persist: the torrent list and resume data survive restarts (shared with the CLI)
        session = Session(settings, persist=True)
        try:
            await session.start()
        except SessionError as exc:
            await session.stop()
            session = Session(settings, listen_port=0, persist=True)
            await session.start()
            note = (
                f"Port {settings.network.listen_port} is busy ({exc}); "
                f"listening on random port {session.listen_port} instead"
            )
        self.attach(session)
        return note

    def attach(self, session: Session) -> None:
        """Use an already started session (tests, screenshots)."""
        self.session = session
        self._unsubscribe = session.subscribe(self._on_event)
        self._restart_snapshots()

    async def stop(self) -> None:
        """Stop streaming, wait for running commands, then stop the session (flushes data)."""
        if self._snap_task is not None:
            self._snap_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snap_task
            self._snap_task = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.session is not None:
            session, self.session = self.session, None
            await session.stop()

    def set_settings(self, settings: Settings) -> dict[str, tuple[object, object]]:
        """Apply new settings; returns the changed keys at once.

        Limits and the snapshot interval apply immediately through :attr:`live`; the engine
        gets the whole set through ``Session.apply_settings`` in a background task
        (:attr:`applying`), since restarting listeners or the DHT is async and a click handler
        must not wait for it. A failure (say, a busy port) becomes a message.
        """
        changes = self.live.apply(settings)
        if changes and self.session is not None:
            self.applying = self.run(self._apply_to_session(settings), "Applying settings")
        return changes

    async def _apply_to_session(self, settings: Settings) -> dict[str, tuple[object, object]]:
        assert self.session is not None
        return await self.session.apply_settings(settings)

    def apply_limits(self, changes: Changes) -> None:
        """Changed limit keys reach the engine at once (a tray click must not wait for
        ``apply_settings``). The engine owns the alternative-speed switch and its schedule:
        the GUI only flips it, exactly as the CLI or the daemon would."""
        if self.session is None:
            return
        lim = self.settings.limits
        if changes.keys() & {"limits.global_down_kib", "limits.global_up_kib"}:
            self.session.set_limits(lim.global_down_kib * 1024, lim.global_up_kib * 1024)
        if "limits.alt_enabled" in changes:
            self.session.set_alt_speed(lim.alt_enabled)

    # -- state ------------------------------------------------------------
    def _restart_snapshots(self) -> None:
        if self.session is None:
            return
        if self._snap_task is not None:
            self._snap_task.cancel()
        self._snap_task = asyncio.ensure_future(self._pump_snapshots())

    async def _pump_snapshots(self) -> None:
        assert self.session is not None
        session = self.session
        interval = self.settings.ui.snapshot_interval_ms / 1000
        async for changed in session.snapshots(interval):
            if changed:
                self.snapshot.emit(changed)
            down, up = session.global_rates()
            self.globalRates.emit(down, up)

    def _on_event(self, event: ev.Event) -> None:
        self.engineEvent.emit(event)

    def handle(self, info_hash: str) -> TorrentHandle | None:
        if self.session is None:
            return None
        try:
            return self.session.get(info_hash)
        except SessionError:
            return None

    def statuses(self) -> list[TorrentStatus]:
        return [] if self.session is None else self.session.statuses()

    # -- commands ------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run a command in the background; failures become a status-bar message."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                log.warning("%s failed: %s", what, exc)
                self.message.emit(f"{what} failed: {exc}")

        task.add_done_callback(done)
        return task

    async def add_torrent(
        self,
        metainfo: Metainfo,
        save_path: str | Path | None = None,
        *,
        paused: bool = False,
        file_priorities: Sequence[int] | None = None,
        sequential: bool = False,
    ) -> TorrentHandle:
        if self.session is None:
            raise SessionError("the engine is not running")
        return await self.session.add_torrent(
            metainfo,
            save_path,
            paused=paused,
            file_priorities=file_priorities,
            sequential=sequential,
        )

    async def add_magnet(
        self, uri: str, save_path: str | Path | None = None, *, paused: bool = False
    ) -> TorrentHandle:
        """Add a magnet link; its row shows state "metadata" until the info dict arrives."""
        if self.session is None:
            raise SessionError("the engine is not running")
        return await self.session.add_magnet(uri, save_path, paused=paused)

    def trackers(self, info_hash: str) -> list[TrackerStatus]:
        handle = self.handle(info_hash)
        return [] if handle is None else handle.trackers()

    def pause(self, hashes: Sequence[str]) -> None:
        for h in self._handles(hashes):
            self.run(h.pause(), f"Pausing {h.name}")

    def resume(self, hashes: Sequence[str]) -> None:
        for h in self._handles(hashes):
            self.run(h.resume(), f"Resuming {h.name}")

    def remove(self, hashes: Sequence[str], *, delete_files: bool) -> None:
        for h in self._handles(hashes):
            self.run(h.remove(delete_files=delete_files), f"Removing {h.name}")

    def recheck(self, hashes: Sequence[str]) -> None:
        for h in self._handles(hashes):
            self.run(h.force_recheck(), f"Rechecking {h.name}")

    def set_sequential(self, hashes: Sequence[str], value: bool) -> None:
        for h in self._handles(hashes):
            h.set_sequential(value)

    def queue_move(self, hashes: Sequence[str], direction: QueueDirection) -> None:
        """Move the selection in the queue, keeping its relative order: one step up or to
        the bottom goes top-first, down or to the top bottom-first."""
        handles = sorted(self._handles(hashes), key=lambda h: h.queue_position)
        if direction in ("down", "top"):
            handles.reverse()
        for h in handles:
            if h.queue_position >= 0:  # a magnet still fetching metadata is not queued yet
                h.queue_move(direction)

    def set_limits(self, hashes: Sequence[str], download: int, upload: int) -> None:
        """Per-torrent limits in bytes/s (0 = unlimited)."""
        for h in self._handles(hashes):
            h.set_limits(download, upload)

    def all_hashes(self) -> list[str]:
        return [] if self.session is None else [h.info_hash for h in self.session.torrents()]

    def _handles(self, hashes: Sequence[str]) -> list[TorrentHandle]:
        return [h for h in (self.handle(x) for x in hashes) if h is not None]
