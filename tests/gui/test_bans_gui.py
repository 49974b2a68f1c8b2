"""Banned peers in the GUI (list, reason, since when, Unban) and the speed settings it exposes.

Screenshots of the new widgets go to ``/tmp/ccbt-bans-*.png`` for a human to look at.
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication, QWidget

from ccbt_engine import events as ev
from ccbt_engine.api import BannedPeer
from ccbt_engine.config import LimitsSettings, Settings, load_settings
from ccbt_engine.metainfo import load_torrent
from ccbt_gui.controller import EngineController
from ccbt_gui.dialogs.bans import BannedPeersDialog
from ccbt_gui.dialogs.settings import SettingsDialog
from ccbt_gui.main_window import MainWindow
from ccbt_gui.models.bans import BanClock, BanColumn, BanRow
from ccbt_gui.widgets.details import DetailsPane
from tests.gui.conftest import make_status

NOW = 1_800_000_000.0  # a fixed wall time for the clock tests


def _grab(widget: QWidget, name: str) -> Path:
    QApplication.processEvents()  # lay out what was just shown before grabbing it
    path = Path(f"/tmp/ccbt-bans-{name}.png")
    assert widget.grab().save(str(path))
    return path


class FakeBans:
    """The session facade's ban commands, in memory."""

    def __init__(self, bans: list[BannedPeer]) -> None:
        self.bans = bans
        self.unbanned: list[str] = []

    def banned_peers(self) -> list[BannedPeer]:
        return list(self.bans)

    def unban_peer(self, address: str) -> bool:
        self.unbanned.append(address)
        before = len(self.bans)
        self.bans = [b for b in self.bans if b.address != address]
        return len(self.bans) < before


BANS = [
    BannedPeer("203.0.113.7", "sent 3 pieces that failed the hash check", 1800.0),
    BannedPeer("198.51.100.23", "smart ban: block differs from the verified piece", None),
    BannedPeer("2001:db8::5", "anomaly: request rate z-score 9.1", 3540.0),
]


def _select(view: Any, row: int) -> None:
    index = view.model().index(row, 0)
    flags = (
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    view.selectionModel().select(index, flags)


def test_ban_start_comes_from_the_event_or_the_duration() -> None:
    clock = BanClock()
    rows = {r.address: r for r in clock.rows(BANS, 3600.0, NOW)}
    # 1800 s of a 3600 s ban left: it began half an hour ago
    assert rows["203.0.113.7"].since == pytest.approx(NOW - 1800)
    # a ban until the session ends, not seen happening: the start is not known
    assert rows["198.51.100.23"].since is None
    clock.saw("198.51.100.23", NOW - 42)
    clock.saw("203.0.113.7", NOW - 5)  # a seen event beats the estimate
    rows = {r.address: r for r in clock.rows(BANS, 3600.0, NOW)}
    assert rows["198.51.100.23"].since == NOW - 42
    assert rows["203.0.113.7"].since == NOW - 5
    clock.forget("203.0.113.7")
    assert clock.rows(BANS[:1], 3600.0, NOW)[0].since == pytest.approx(NOW - 1800)
    # ban_duration 0 (= until the session ends) gives no estimate
    assert clock.rows(BANS[:1], 0.0, NOW)[0].since is None


def test_dialog_lists_bans_and_unbans_the_selected(qtbot: Any) -> None:
    source = FakeBans(list(BANS))
    dialog = BannedPeersDialog(source, BanClock(), lambda: 3600.0)
    qtbot.addWidget(dialog)
    dialog.show()
    table = dialog.table
    model = table.model
    assert model.rowCount() == 3
    assert table.count.text() == "3 banned peers"
    cells = {
        model.index(r, BanColumn.ADDRESS).data(): [
            model.index(r, c).data() for c in range(model.columnCount())
        ]
        for r in range(model.rowCount())
    }
    assert cells["198.51.100.23"][1].startswith("smart ban")
    assert cells["198.51.100.23"][2:] == ["unknown", "session end"]
    assert cells["203.0.113.7"][3] == "30m 0s"
    assert cells["203.0.113.7"][2] != "unknown"
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(4)]
    assert headers == ["IP address", "Reason", "Banned since", "Lifts in"]
    assert not table.unban_button.isEnabled(), "nothing selected, nothing to unban"
    _grab(dialog, "dialog")

    row = next(r for r in range(3) if model.row(r).address == "203.0.113.7")
    _select(table.view, row)
    assert table.unban_button.isEnabled()
    qtbot.mouseClick(table.unban_button, Qt.MouseButton.LeftButton)
    assert source.unbanned == ["203.0.113.7"]
    assert [model.row(r).address for r in range(model.rowCount())] == [
        "198.51.100.23",
        "2001:db8::5",
    ]
    assert table.count.text() == "2 banned peers"
    # a ban that arrives while the dialog is open shows on the next refresh
    source.bans.append(BannedPeer("192.0.2.1", "protocol violation: bad bitfield", 3600.0))
    dialog.refresh()
    assert model.rowCount() == 3


class _Handle:
    info_hash = make_status(1).info_hash

    def peers(self) -> list[Any]:
        return []

    def files(self) -> list[Any]:
        return []

    def pieces(self) -> bytes:
        return b""

    def set_file_priorities(self, priorities: Any) -> None:
        pass


def test_peers_tab_shows_bans_with_reason_and_unban(qtbot: Any) -> None:
    pane = DetailsPane(lambda _h: _Handle())
    qtbot.addWidget(pane)
    pane.resize(900, 420)
    pane.show()
    shown: list[BanRow] = BanClock().rows(BANS, 3600.0, time.time())
    pane.ban_rows = lambda _h: shown
    pane.setCurrentIndex(pane.PEERS)
    pane.show_torrent(make_status(1))
    assert pane.bans_box.isVisible()
    model = pane.ban_table.model
    reasons = {model.row(r).address: model.index(r, BanColumn.REASON).data() for r in range(3)}
    assert reasons["2001:db8::5"] == "anomaly: request rate z-score 9.1"
    _grab(pane, "peers-tab")
    requested: list[str] = []
    pane.unbanRequested.connect(requested.append)
    _select(pane.ban_table.view, 0)
    qtbot.mouseClick(pane.ban_table.unban_button, Qt.MouseButton.LeftButton)
    assert requested == [model.row(0).address]
    shown = []
    pane.refresh_bans()
    assert not pane.bans_box.isVisible(), "no bans: the section goes away"
    pane.show_torrent(None)
    assert model.rowCount() == 0


def test_settings_dialog_has_bans_button_and_every_speed_setting(
    qtbot: Any, tmp_path: Path
) -> None:
    opened: list[bool] = []
    dialog = SettingsDialog(
        Settings(), tmp_path / "config.toml", show_bans=lambda: opened.append(True)
    )
    qtbot.addWidget(dialog)
    dialog.resize(860, 640)
    dialog.show()
    # alternative limits, their schedule and the per-peer limits are all editable
    limit_keys = {f"limits.{name}" for name in LimitsSettings.model_fields}
    for key in (
        "limits.alt_down_kib",
        "limits.alt_up_kib",
        "limits.alt_enabled",
        "limits.alt_schedule_enabled",
        "limits.alt_schedule_from",
        "limits.alt_schedule_to",
        "limits.alt_days",
        "limits.per_peer_down_kib",
        "limits.per_peer_up_kib",
    ):
        assert key in limit_keys
    assert limit_keys <= set(dialog.fields)
    dialog.show_page("Speed")
    _grab(dialog, "settings-speed")
    # the schedule round-trips through the dialog's editors
    dialog.fields["limits.alt_schedule_from"].set_text("22:30")
    dialog.fields["limits.alt_days"].set_text("sat, sun")
    new = dialog.validate()
    assert new is not None
    assert new.limits.alt_schedule_from == "22:30"
    assert list(new.limits.alt_days) == ["sat", "sun"]
    dialog.fields["limits.alt_schedule_to"].set_text("25:00")
    assert dialog.validate() is None, "an impossible time is refused"
    dialog.fields["limits.alt_schedule_to"].set_text("06:00")
    assert dialog.validate() is not None

    dialog.show_page("Privacy & security")
    assert dialog.bans_button is not None
    assert dialog.bans_button.isVisible()
    _grab(dialog, "settings-security")
    qtbot.mouseClick(dialog.bans_button, Qt.MouseButton.LeftButton)
    assert opened == [True]
    # without a session to ask (show_bans None) there is no button
    bare = SettingsDialog(Settings(), tmp_path / "config.toml")
    qtbot.addWidget(bare)
    assert bare.bans_button is None


async def _until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_real_ban_reaches_the_window_and_unban_lifts_it(
    qtbot: Any, run_async: Any, small_torrent: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine bans (as its guard does for bad data); the window lists it and unbans it."""
    monkeypatch.setenv("CCBT_UI_SNAPSHOT_INTERVAL_MS", "100")
    data, torrent = small_torrent

    async def body() -> None:
        controller = EngineController(load_settings())
        await controller.start()
        window = MainWindow(controller)
        qtbot.addWidget(window)
        window.show()
        try:
            session = controller.session
            assert session is not None
            handle = await session.add_torrent(torrent.read_bytes(), data.parent)
            info_hash = load_torrent(torrent).info.info_hash.hex()
            await _until(lambda: window.model.row_of(info_hash) is not None, "the row")
            engine_torrent = session._core.torrents[handle._t.info_hash]
            engine_torrent.guard.ban("192.0.2.66", "sent 3 pieces that failed the hash check")
            await _until(lambda: bool(window.ban_rows()), "the ban in the window")
            assert [b.address for b in handle.banned_peers()] == ["192.0.2.66"]
            row = window.ban_rows()[0]
            assert row.reason == "sent 3 pieces that failed the hash check"
            assert row.since is not None, "the window saw the PeerBanned event"
            assert "Banned peer 192.0.2.66" in window.statusBar().currentMessage()

            window.select_row(0)
            window.details.setCurrentIndex(window.details.PEERS)
            await _until(lambda: window.details.bans_box.isVisible(), "the Peers tab's bans")

            dialog = window.open_bans()
            assert isinstance(dialog, BannedPeersDialog)
            assert dialog.table.model.rowCount() == 1
            _select(dialog.table.view, 0)
            qtbot.mouseClick(dialog.table.unban_button, Qt.MouseButton.LeftButton)
            assert session.banned_peers() == []
            assert dialog.table.model.rowCount() == 0
            assert not window.details.bans_box.isVisible()
            dialog.close()
        finally:
            await controller.stop()

    run_async(body(), timeout=30)


def test_event_type_is_the_engines() -> None:
    """The window's ban clock listens for this event type (a rename must fail here)."""
    fields = {f for f in typing.get_type_hints(ev.PeerBanned)}
    assert {"address", "reason"} <= fields
