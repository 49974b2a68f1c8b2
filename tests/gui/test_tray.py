"""Tray: menu actions, tooltip with global rates, close-to-tray, finish notifications."""

from __future__ import annotations

from typing import Any

import pytest

from ccbt_engine import events as ev
from ccbt_engine.config import Settings, update_settings
from ccbt_gui.main_window import MainWindow
from ccbt_gui.tray import Tray


class FakeController:
    """Records the commands the window sends (the real one is covered by the engine tests)."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.calls: list[tuple[str, Any]] = []
        from PySide6.QtCore import QObject, Signal

        class _Sig(QObject):
            s = Signal(object)

        self._sig = _Sig()
        for name in ("snapshot", "engineEvent", "globalRates", "message"):
            setattr(self, name, self._sig.s)

    def all_hashes(self) -> list[str]:
        return ["aa" * 20, "bb" * 20]

    def pause(self, hashes: list[str]) -> None:
        self.calls.append(("pause", list(hashes)))

    def resume(self, hashes: list[str]) -> None:
        self.calls.append(("resume", list(hashes)))

    def set_settings(self, settings: Settings) -> None:
        self.calls.append(("settings", settings.limits.alt_enabled))
        self.settings = settings

    def handle(self, _h: str) -> None:
        return None

    def trackers(self, _h: str) -> list[Any]:
        return []


@pytest.fixture
def window(qtbot: Any) -> tuple[MainWindow, FakeController]:
    controller = FakeController()
    win = MainWindow(controller)  # type: ignore[arg-type]
    qtbot.addWidget(win)
    win.show()
    return win, controller


def test_menu_has_the_expected_actions(window: tuple[MainWindow, FakeController]) -> None:
    win, _ = window
    texts = [a.text() for a in win.tray.menu.actions() if not a.isSeparator()]
    assert texts == [
        "Show / hide ccBitTorrent",
        "Pause all",
        "Resume all",
        "Alternative speed limits",
        "Quit",
    ]


def test_pause_resume_all_and_alt_speed(window: tuple[MainWindow, FakeController]) -> None:
    win, ctl = window
    win.tray.pause_action.trigger()
    win.tray.resume_action.trigger()
    assert ctl.calls == [("pause", ["aa" * 20, "bb" * 20]), ("resume", ["aa" * 20, "bb" * 20])]
    win.tray.alt_action.trigger()
    assert win.settings.limits.alt_enabled is True
    assert ctl.calls[-1] == ("settings", True)
    assert win.tray.alt_action.isChecked()
    win.tray.alt_action.trigger()
    assert ctl.calls[-1] == ("settings", False)


def test_show_hide_and_quit(window: tuple[MainWindow, FakeController]) -> None:
    win, _ = window
    assert win.isVisible()
    win.tray.show_action.trigger()
    assert not win.isVisible()
    win.tray.show_action.trigger()
    assert win.isVisible()
    quits: list[bool] = []
    win.on_quit = lambda: quits.append(True)
    win.tray.quit_action.trigger()
    assert quits == [True]


def test_tooltip_shows_global_rates(window: tuple[MainWindow, FakeController]) -> None:
    win, _ = window
    win.on_global_rates(2 * 1024 * 1024, 512.0)
    assert "Down: 2.0 MiB/s" in win.tray.tooltip()
    assert "Up: 512 B/s" in win.tray.tooltip()
    assert "2.0 MiB/s" in win.rates_label.text()


def test_close_to_tray_hides_instead_of_quitting(
    window: tuple[MainWindow, FakeController], monkeypatch: pytest.MonkeyPatch
) -> None:
    win, _ = window
    monkeypatch.setattr(Tray, "available", staticmethod(lambda: True))
    quits: list[bool] = []
    win.on_quit = lambda: quits.append(True)
    win.close()
    assert not win.isVisible() and quits == []
    win.show()
    win.settings = update_settings(win.settings, {"ui.close_to_tray": False})
    win.close()
    assert quits == [True]


def test_finished_torrent_notifies(
    window: tuple[MainWindow, FakeController], monkeypatch: pytest.MonkeyPatch
) -> None:
    win, _ = window
    shown: list[tuple[str, str]] = []

    def notify(title: str, message: str) -> bool:
        shown.append((title, message))
        return True

    monkeypatch.setattr(win.tray, "notify", notify)
    win.on_engine_event(ev.TorrentFinished(info_hash="aa" * 20, name="Album"))
    assert shown == [("Download completed", "“Album” has finished downloading.")]
    assert "Download finished: Album" in win.statusBar().currentMessage()
    win.settings = update_settings(win.settings, {"ui.show_notifications": False})
    win.on_engine_event(ev.TorrentFinished(info_hash="aa" * 20, name="Other"))
    assert len(shown) == 1
