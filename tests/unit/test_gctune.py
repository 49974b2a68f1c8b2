"""gctune: the engine's one-time garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ccbt_engine import gctune


@pytest.fixture
def gc_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a fresh module flag and restore the process's collector afterwards."""
    monkeypatch.setattr(gctune, "_tuned", False)
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        if enabled:
            gc.enable()
        else:
            gc.disable()


@pytest.mark.usefixtures("gc_state")
def test_freezes_and_raises_young_threshold_once() -> None:
    gc.enable()
    gc.set_threshold(700, 10, 10)
    survivor = [object()]  # a start-up object: tracked now, frozen after
    assert gctune.tune_for_engine() is True
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (gctune.GEN0_THRESHOLD, 10, 10)
    gc.set_threshold(800, 10, 10)
    assert gctune.tune_for_engine() is False  # once per process
    assert gc.get_threshold() == (800, 10, 10)
    assert survivor


@pytest.mark.usefixtures("gc_state")
def test_keeps_a_higher_host_threshold() -> None:
    gc.enable()
    gc.set_threshold(50_000, 5, 5)
    assert gctune.tune_for_engine() is True
    assert gc.get_threshold() == (50_000, 5, 5)


@pytest.mark.usefixtures("gc_state")
def test_leaves_a_disabled_collector_alone() -> None:
    gc.unfreeze()
    gc.disable()
    gc.set_threshold(700, 10, 10)
    assert gctune.tune_for_engine() is False
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
