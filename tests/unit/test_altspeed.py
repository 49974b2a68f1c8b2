"""Alternative speed limits in the engine: the switch's rule, the session's buckets, the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from ccbt_engine import events as ev
from ccbt_engine.api import Session
from ccbt_engine.config import Settings, update_settings
from ccbt_engine.session import SessionCore
from ccbt_engine.strategy import altspeed
from ccbt_engine.strategy.altspeed import AltSpeedChanged, AltSpeedSwitch, schedule_of
from ccbt_engine.strategy.ratelimit import AltSpeedSchedule
from tests.engine_settings import loopback_settings

KIB = 1024
# Monday 2026-11-23
MON_0900 = datetime(2026, 11, 23, 9, 0)
MON_1030 = datetime(2026, 11, 23, 10, 30)
MON_1200 = datetime(2026, 11, 23, 12, 0)
MON_1300 = datetime(2026, 11, 23, 13, 0)
TUE_1030 = datetime(2026, 11, 24, 10, 30)
WINDOW = AltSpeedSchedule("10:00", "12:00")


def scheduled(**limits: object) -> Settings:
    base = {
        "global_down_kib": 800,
        "global_up_kib": 400,
        "alt_down_kib": 100,
        "alt_up_kib": 50,
        "alt_schedule_enabled": True,
        "alt_schedule_from": "10:00",
        "alt_schedule_to": "12:00",
    }
    return loopback_settings(limits={**base, **limits})


@pytest.fixture
def core_factory() -> Iterator[list[SessionCore]]:
    made: list[SessionCore] = []
    yield made
    for core in made:
        core.executor.shutdown(wait=False)


def make_core(made: list[SessionCore], settings: Settings, now: datetime) -> SessionCore:
    """A session core whose alternative-speed clock reads ``now`` (until a test ticks it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(altspeed, "local_now", lambda: now)
        core = SessionCore(settings)
    made.append(core)
    return core


def rates(core: SessionCore) -> tuple[float, float]:
    return core.down_bucket.rate, core.up_bucket.rate


# -------------------------------------------------------------------------- the switch


def test_without_a_schedule_the_manual_switch_decides() -> None:
    sw = AltSpeedSwitch(manual=False)
    assert sw.update(MON_1030) is False
    sw.set_manual(True)
    assert sw.update(MON_1030) is True and sw.update(MON_1300) is True


def test_schedule_turns_on_at_the_window_start_and_off_at_its_end() -> None:
    sw = AltSpeedSwitch(schedule=WINDOW)
    assert [sw.update(t) for t in (MON_0900, MON_1030, MON_1200, MON_1300)] == [
        False,
        True,
        False,
        False,
    ]


def test_manual_switch_wins_until_the_next_edge() -> None:
    sw = AltSpeedSwitch(schedule=WINDOW)
    sw.update(MON_1030)
    sw.set_manual(False)  # the user lifts the limits in the middle of the window
    assert sw.update(datetime(2026, 11, 23, 11, 0)) is False
    assert sw.update(MON_1300) is False
    sw.set_manual(True)  # and turns them on outside it
    assert sw.update(datetime(2026, 11, 23, 23, 0)) is True
    assert sw.update(TUE_1030) is True  # the next window starts: on (it was already)
    assert sw.update(datetime(2026, 11, 24, 12, 0)) is False  # window over: off


def test_starting_outside_the_window_keeps_a_manual_on() -> None:
    sw = AltSpeedSwitch(manual=True, schedule=WINDOW)
    assert sw.update(MON_0900) is True
    assert sw.update(MON_1030) is True
    assert sw.update(MON_1200) is False


def test_a_changed_schedule_is_judged_afresh() -> None:
    sw = AltSpeedSwitch(schedule=WINDOW)
    assert sw.update(MON_1300) is False
    sw.set_schedule(AltSpeedSchedule("12:30", "14:00"))
    assert sw.update(MON_1300) is True
    sw.set_schedule(None)
    assert sw.update(MON_1300) is True  # no schedule: the switch stays where it is


def test_schedule_from_settings_uses_day_names() -> None:
    limits = scheduled(alt_days=["tue"]).limits
    sched = schedule_of(limits)
    assert sched is not None
    assert not sched.active(MON_1030) and sched.active(TUE_1030)
    assert schedule_of(scheduled(alt_schedule_enabled=False).limits) is None


# -------------------------------------------------------------------------- the session


def test_session_starts_with_the_limits_the_schedule_says(
    core_factory: list[SessionCore],
) -> None:
    assert rates(make_core(core_factory, scheduled(), MON_0900)) == (800 * KIB, 400 * KIB)
    assert rates(make_core(core_factory, scheduled(), MON_1030)) == (100 * KIB, 50 * KIB)
    manual = make_core(core_factory, scheduled(alt_enabled=True), MON_0900)
    assert rates(manual) == (100 * KIB, 50 * KIB)


def test_tick_switches_the_buckets_and_announces_it(core_factory: list[SessionCore]) -> None:
    core = make_core(core_factory, scheduled(), MON_0900)
    seen: list[ev.Event] = []
    core.events.subscribe(seen.append)
    assert core.alt_speed.tick(MON_1030) is True
    assert rates(core) == (100 * KIB, 50 * KIB)
    assert core.alt_speed.tick(MON_1030) is True  # no edge: no second event
    assert core.alt_speed.tick(MON_1300) is False
    assert rates(core) == (800 * KIB, 400 * KIB)
    changes = [e for e in seen if isinstance(e, AltSpeedChanged)]
    assert [(e.enabled, e.by) for e in changes] == [(True, "schedule"), (False, "schedule")]


def test_set_limits_changes_the_normal_limits_only(core_factory: list[SessionCore]) -> None:
    """A command while the alternative limits are on waits for them to end."""
    core = make_core(core_factory, scheduled(), MON_1030)
    core.set_global_limits(download=2000 * KIB)
    assert rates(core) == (100 * KIB, 50 * KIB)
    core.alt_speed.tick(MON_1300)
    assert rates(core) == (2000 * KIB, 400 * KIB)


async def test_apply_settings_drives_the_switch_and_per_peer_limits(
    core_factory: list[SessionCore],
) -> None:
    core = make_core(core_factory, scheduled(alt_schedule_enabled=False), MON_1030)
    assert rates(core) == (800 * KIB, 400 * KIB)
    await core.apply_settings(update_settings(core.settings, {"limits.alt_enabled": True}))
    assert core.alt_speed.active and rates(core) == (100 * KIB, 50 * KIB)
    await core.apply_settings(update_settings(core.settings, {"limits.alt_down_kib": 70}))
    assert rates(core) == (70 * KIB, 50 * KIB)
    await core.apply_settings(update_settings(core.settings, {"limits.alt_enabled": False}))
    assert rates(core) == (800 * KIB, 400 * KIB)
    new = update_settings(core.settings, {"limits.per_peer_down_kib": 30})
    await core.apply_settings(new)
    down, up = core.peer_buckets()
    assert (down.rate, up.rate) == (30 * KIB, 0)


async def test_facade_query_and_switch() -> None:
    async with Session(scheduled(alt_schedule_enabled=False), listen_port=0) as session:
        seen: list[ev.Event] = []
        session.subscribe(seen.append)
        assert session.alt_speed is False
        assert session.global_limits() == (800 * KIB, 400 * KIB)
        session.set_alt_speed(True)
        assert session.alt_speed is True
        assert session.global_limits() == (100 * KIB, 50 * KIB)
        session.set_limits(download=0)  # normal limits: unlimited once the switch is off
        session.set_alt_speed(False)
        assert session.global_limits() == (0, 400 * KIB)
        assert [e.enabled for e in seen if isinstance(e, AltSpeedChanged)] == [True, False]
