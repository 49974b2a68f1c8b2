"""System tray icon: rates in the tooltip, a menu with the everyday commands, notifications."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from ccbt_engine import CLIENT_NAME
from ccbt_gui import formatting as fmt


class Tray(QObject):
    """Owns the QSystemTrayIcon and its menu; emits what the user asked for."""

    toggleWindow = Signal()
    pauseAll = Signal()
    resumeAll = Signal()
    altSpeedToggled = Signal(bool)
    quitRequested = Signal()

    def __init__(self, icon: QIcon, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.icon = QSystemTrayIcon(icon, self)
        self.menu = QMenu()
        self.show_action = self._add("Show / hide " + CLIENT_NAME, self.toggleWindow.emit)
        self.menu.addSeparator()
        self.pause_action = self._add("Pause all", self.pauseAll.emit)
        self.resume_action = self._add("Resume all", self.resumeAll.emit)
        self.alt_action = QAction("Alternative speed limits", self.menu)
        self.alt_action.setCheckable(True)
        self.alt_action.toggled.connect(self.altSpeedToggled.emit)
        self.menu.addAction(self.alt_action)
        self.menu.addSeparator()
        self.quit_action = self._add("Quit", self.quitRequested.emit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.set_rates(0.0, 0.0)

    def _add(self, text: str, slot: object) -> QAction:
        action = QAction(text, self.menu)
        action.triggered.connect(lambda _checked=False: slot())  # type: ignore[operator]
        self.menu.addAction(action)
        return action

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        if self.available():
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def set_rates(self, down: float, up: float) -> None:
        self.icon.setToolTip(
            f"{CLIENT_NAME}\nDown: {fmt.rate_always(down)}\nUp: {fmt.rate_always(up)}"
        )

    def tooltip(self) -> str:
        return self.icon.toolTip()

    def set_alt_speed(self, enabled: bool) -> None:
        """Reflect the setting without re-emitting (the menu item is a view of it)."""
        self.alt_action.blockSignals(True)
        self.alt_action.setChecked(enabled)
        self.alt_action.blockSignals(False)

    def notify(self, title: str, message: str) -> bool:
        """Show a desktop notification; False when there is no tray to show it from."""
        if not (self.available() and self.icon.isVisible() and self.icon.supportsMessages()):
            return False
        self.icon.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, 5000)
        return True

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggleWindow.emit()
