"""Alternative speed limits ("turtle mode"): the manual switch and the schedule, in the engine.

The switch lives in the engine, not in a front end, so the GUI, the CLI and the daemon behave
the same: the session ticks :class:`SessionAltSpeed` every :data:`TICK_SECONDS`, which decides
whether the normal global limits (``limits.global_*``, or what ``Session.set_limits`` set) or
the alternative ones (``limits.alt_*``) are in force, and sets the session's token buckets.

The decision itself is the sans-I/O :class:`AltSpeedSwitch` (local time is passed in). Its rule,
as in qBittorrent and Transmission: the schedule *flips the switch at the window's edges* (on
when the window opens, off when it closes) and the manual switch wins in between, so a user can
lift the limits during a scheduled window, or turn them on outside it, until the next edge. A
session that starts inside a window starts with the alternative limits; one that starts outside
keeps whatever ``limits.alt_enabled`` says.

Changes are announced with :class:`~ccbt_engine.events.AltSpeedChanged` on the event bus (a
tray icon shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ccbt_engine.config.model import LimitsSettings
from ccbt_engine.events import AltSpeedChanged
from ccbt_engine.strategy.ratelimit import AltSpeedSchedule

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = ["TICK_SECONDS", "AltSpeedChanged", "AltSpeedSwitch", "SessionAltSpeed"]

log = logging.getLogger(__name__)

#: How often the schedule is looked at. Windows are set in minutes: a switch at most this late.
TICK_SECONDS = 15.0
KIB = 1024


#: ``limits.alt_days`` names, in ``datetime.weekday()`` order
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def schedule_of(limits: LimitsSettings) -> AltSpeedSchedule | None:
    """The settings' schedule, or None when it is switched off."""
    if not limits.alt_schedule_enabled:
        return None
    days = {_DAYS.index(d) for d in limits.alt_days}
    return AltSpeedSchedule(limits.alt_schedule_from, limits.alt_schedule_to, days)


class AltSpeedSwitch:
    """Whether the alternative limits are in force; no clock of its own (``now`` is local time)."""

    def __init__(self, manual: bool = False, schedule: AltSpeedSchedule | None = None) -> None:
        self.manual = manual
        self.schedule = schedule
        #: whether ``now`` was inside the window at the previous update (None: not looked yet)
        self._in_window: bool | None = None

    @property
    def active(self) -> bool:
        return self.manual

    def set_manual(self, enabled: bool) -> None:
        """The user's switch: wins until the schedule's next edge."""
        self.manual = enabled

    def set_schedule(self, schedule: AltSpeedSchedule | None) -> None:
        """A changed schedule is judged afresh at the next update."""
        self.schedule = schedule
        self._in_window = None

    def update(self, now: datetime) -> bool:
        """Apply the schedule's edge, if one passed since the last update; returns ``active``.

        The first look after start (or after the schedule changed) counts as an edge only into
        the window: starting outside it must not undo a manual "on".
        """
        if self.schedule is None:
            self._in_window = None
            return self.manual
        inside = self.schedule.active(now)
        if inside != self._in_window and (self._in_window is not None or inside):
            self.manual = inside
        self._in_window = inside
        return self.manual


def local_now() -> datetime:
    """The local wall-clock time the schedule is read in (tests replace it)."""
    return datetime.now()


class SessionAltSpeed:
    """The switch applied to a session: owns the normal limits and sets the global buckets."""

    def __init__(self, core: SessionCore, clock: Callable[[], datetime] | None = None) -> None:
        self._core = core
        self._clock = clock if clock is not None else local_now
        limits = core.settings.limits
        #: the normal global limits in bytes/s (settings, or a ``Session.set_limits`` command)
        self.normal = (limits.global_down_kib * KIB, limits.global_up_kib * KIB)
        self.switch = AltSpeedSwitch(limits.alt_enabled, schedule_of(limits))
        self._task: asyncio.Task[None] | None = None
        self._active: bool | None = None
        self.tick()

    @property
    def active(self) -> bool:
        return self.switch.active

    def effective(self) -> tuple[int, int]:
        """The (download, upload) limits in force, bytes/s, 0 = unlimited."""
        if not self.switch.active:
            return self.normal
        limits = self._core.settings.limits
        return limits.alt_down_kib * KIB, limits.alt_up_kib * KIB

    def set_normal(self, download: int | None = None, upload: int | None = None) -> None:
        """New normal limits (``None`` = unchanged); in force now unless the switch is on."""
        self.normal = (
            self.normal[0] if download is None else download,
            self.normal[1] if upload is None else upload,
        )
        self._apply("command")

    def set_enabled(self, enabled: bool) -> None:
        """The manual switch (tray, ``Session.set_alt_speed``, ``limits.alt_enabled``)."""
        self.switch.set_manual(enabled)
        self._apply("manual")

    def settings_changed(self, limits: LimitsSettings, changed: set[str]) -> None:
        """``limits.*`` keys changed in the session's settings (``apply_settings``)."""
        if "limits.alt_enabled" in changed:
            self.switch.set_manual(limits.alt_enabled)
        if changed & {"limits.alt_schedule_enabled", "limits.alt_schedule_from",
                      "limits.alt_schedule_to", "limits.alt_days"}:  # fmt: skip
            self.switch.set_schedule(schedule_of(limits))
            self.switch.update(self._clock())
        self._apply("manual" if "limits.alt_enabled" in changed else "schedule")

    def tick(self, now: datetime | None = None) -> bool:
        """Look at the schedule (``now``: local time, for tests); returns ``active``."""
        self.switch.update(self._clock() if now is None else now)
        self._apply("schedule")
        return self.switch.active

    def _apply(self, by: str) -> None:
        down, up = self.effective()
        core = self._core
        if core.down_bucket.rate != down:
            core.down_bucket.set_rate(down)
        if core.up_bucket.rate != up:
            core.up_bucket.set_rate(up)
        active = self.switch.active
        if self._active is not None and active != self._active:
            log.info("alternative speed limits %s (%s)", "on" if active else "off", by)
            core.events.publish(AltSpeedChanged(enabled=active, by=by))
        self._active = active

    # -- the session's timer ------------------------------------------------------------
    def start(self, interval: float = TICK_SECONDS) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(interval), name="ccbt-alt-speed")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick()
            except Exception:  # a bad clock or settings must not end the timer
                log.exception("alternative speed schedule failed")
