"""Queueing in the GUI: the Queued state, the "#" column, and Move up/down/top/bottom."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

from ccbt_engine.config import load_settings
from ccbt_engine.create import create_torrent
from ccbt_gui.controller import EngineController
from ccbt_gui.main_window import MainWindow
from ccbt_gui.models.torrents import (
    Category,
    Column,
    TorrentTableModel,
    categories,
    status_text,
)
from tests.gui.conftest import make_status


async def _until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_queued_rows(qapp: Any) -> None:
    queued_dl = make_status(0, state="queued", queue_position=1)
    queued_seed = make_status(1, state="queued", queue_position=0, wanted_done=10_000_001)
    assert status_text(queued_dl) == "Queued"
    assert categories(queued_dl) & Category.DOWNLOADING
    assert categories(queued_seed) & Category.SEEDING
    assert not categories(queued_dl) & Category.PAUSED  # queued is not paused

    model = TorrentTableModel()
    model.apply_snapshot([queued_dl, queued_seed, make_status(2, state="metadata")])
    assert model.headerData(Column.QUEUE, Qt.Orientation.Horizontal) == "#"
    assert [model.index(r, Column.QUEUE).data() for r in range(3)] == ["2", "1", ""]
    model.sort(Column.QUEUE)
    assert [s.info_hash[-1] for s in model.statuses()] == ["1", "0", "2"]
    model.apply_snapshot([make_status(0, state="downloading", queue_position=0)])
    assert model.index(model.row_of(f"{0:040x}") or 0, Column.STATUS).data() != "Queued"


@pytest.fixture(autouse=True)
def fast_ticks_one_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCBT_UI_SNAPSHOT_INTERVAL_MS", "100")
    monkeypatch.setenv("CCBT_LIMITS_MAX_ACTIVE_DOWNLOADS", "1")


def test_queue_actions_move_torrents(qtbot: Any, run_async: Any, tmp_path: Path) -> None:
    torrents = []
    for name in ("a", "b", "c"):
        src = tmp_path / "src" / name
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(os.urandom(30_000))
        torrents.append(create_torrent(src, piece_length=16384, version="v1"))

    async def body() -> None:
        controller = EngineController(load_settings())
        await controller.start()
        window = MainWindow(controller)
        qtbot.addWidget(window)
        window.show()
        try:
            assert controller.session is not None
            handles = [await controller.session.add_torrent(t, tmp_path / "dl") for t in torrents]
            hashes = [h.info_hash for h in handles]

            def row_text(h: str, col: Column) -> str:
                row = window.model.row_of(h)
                return "" if row is None else str(window.model.index(row, col).data())

            def column(col: Column) -> list[str]:
                return [row_text(h, col) for h in hashes]

            await _until(lambda: column(Column.QUEUE) == ["1", "2", "3"], "queue column")
            await _until(lambda: column(Column.STATUS)[1:] == ["Queued", "Queued"], "queued rows")

            last = window.model.index(window.model.row_of(hashes[2]) or 0, 0)
            window.select_row(window.proxy.mapFromSource(last).row())
            assert window.selected_hashes() == [hashes[2]]
            (queue_menu,) = [a.menu() for a in window.row_menu().actions() if a.text() == "Queue"]
            assert isinstance(queue_menu, QMenu)
            assert [a.text() for a in queue_menu.actions()] == [
                "Move to top",
                "Move up",
                "Move down",
                "Move to bottom",
            ]
            window.act_queue_top.trigger()
            moved = 2
            await _until(lambda: row_text(hashes[moved], Column.QUEUE) == "1", "moved to top")
            assert controller.session.get(hashes[moved]).queue_position == 0
            # the torrent at the top takes the only download slot
            await _until(
                lambda: (
                    controller.session is not None
                    and controller.session.get(hashes[moved]).status().state == "downloading"
                ),
                "slot taken",
            )
            window.act_queue_down.trigger()
            await _until(lambda: row_text(hashes[moved], Column.QUEUE) == "2", "moved down")
            window.act_queue_bottom.trigger()
            await _until(lambda: row_text(hashes[moved], Column.QUEUE) == "3", "to bottom")
            window.act_queue_up.trigger()
            await _until(lambda: row_text(hashes[moved], Column.QUEUE) == "2", "moved up")
            assert sorted(column(Column.QUEUE)) == ["1", "2", "3"]
        finally:
            await controller.stop()

    run_async(body())
