"""The right-hand side of the main window's status bar, as in qBittorrent.

Connection icon (tooltip: listening port, external IP, incoming seen, port mappings), DHT node
count, global rates with session totals, and the alternative-speed toggle. It shows a
:class:`~ccbt_engine.api.NetworkStatus` the window fetches once per snapshot tick (one engine
call, no walk over the torrents here); with no engine it shows "disconnected".
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from ccbt_engine.api import NetworkStatus
from ccbt_gui.widgets.statusbar_text import (
    CONNECTION_LABELS,
    Connection,
    connection_state,
    connection_tooltip,
    dht_text,
    rates_text,
)

ICON_SIZE = 16

_COLORS = {
    Connection.CONNECTED: "#27ae60",
    Connection.FIREWALLED: "#e67e22",
    Connection.DISCONNECTED: "#c0392b",
}


def connection_pixmap(state: Connection, size: int = ICON_SIZE) -> QPixmap:
    """A coloured disc with a tick, an exclamation mark or a cross (green, orange, red), drawn
    in code like the app icon, so colour is not the only cue."""
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(QColor(_COLORS[state])))
    p.drawEllipse(QRectF(s * 0.05, s * 0.05, s * 0.9, s * 0.9))
    pen = QPen(QColor("white"), max(1.5, s * 0.13))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    path = QPainterPath()
    if state is Connection.CONNECTED:
        path.moveTo(s * 0.28, s * 0.52)
        path.lineTo(s * 0.44, s * 0.68)
        path.lineTo(s * 0.72, s * 0.34)
    elif state is Connection.FIREWALLED:
        path.moveTo(s * 0.5, s * 0.26)
        path.lineTo(s * 0.5, s * 0.56)
        path.moveTo(s * 0.5, s * 0.74)
        path.lineTo(s * 0.5, s * 0.745)
    else:
        path.moveTo(s * 0.32, s * 0.32)
        path.lineTo(s * 0.68, s * 0.68)
        path.moveTo(s * 0.68, s * 0.32)
        path.lineTo(s * 0.32, s * 0.68)
    p.drawPath(path)
    p.end()
    return pm


def alt_speed_icon(size: int = ICON_SIZE) -> QIcon:
    """A speedometer: needle high and blue for the normal limits, low and orange for the
    alternative ones (the button's checked state picks the "On" pixmap)."""
    icon = QIcon()
    icon.addPixmap(_gauge(size, QColor("#2e86de"), 0.8), QIcon.Mode.Normal, QIcon.State.Off)
    icon.addPixmap(_gauge(size, QColor("#e67e22"), 0.2), QIcon.Mode.Normal, QIcon.State.On)
    return icon


def _gauge(size: int, color: QColor, needle: float) -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    pen = QPen(color, max(1.5, s * 0.12))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    arc = QRectF(s * 0.1, s * 0.2, s * 0.8, s * 0.8)
    p.drawArc(arc, 0, 180 * 16)  # the upper half: 0° (right) to 180° (left)
    centre = QPointF(s * 0.5, s * 0.6)
    path = QPainterPath(centre)
    theta = math.pi * (1.0 - needle)  # needle 0 points left (slow), 1 right (fast)
    path.lineTo(centre + QPointF(math.cos(theta), -math.sin(theta)) * (s * 0.32))
    p.drawPath(path)
    p.end()
    return pm


def _separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


class NetworkStatusBar(QWidget):
    """Connection, DHT, rates and alt-speed; one permanent widget of the window's status bar."""

    #: the user clicked the alternative-speed button (not emitted by :meth:`set_alt_speed`)
    altSpeedToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.connection = QLabel()
        self.connection.setFixedSize(QSize(ICON_SIZE + 4, ICON_SIZE + 4))
        self.connection.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.dht = QLabel()
        self.rates = QLabel()
        self.alt_button = QToolButton()
        self.alt_button.setCheckable(True)
        self.alt_button.setAutoRaise(True)
        self.alt_button.setIcon(alt_speed_icon())
        self.alt_button.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.alt_button.toggled.connect(self._alt_toggled)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        for widget in (
            self.connection,
            _separator(),
            self.dht,
            _separator(),
            self.rates,
            _separator(),
            self.alt_button,
        ):
            layout.addWidget(widget)
        self._down = self._up = 0.0
        self._totals: tuple[int, int] | None = None
        self.state = Connection.DISCONNECTED
        self.set_network(None)
        self._alt_tooltip(False)

    def set_network(self, ns: NetworkStatus | None) -> None:
        """Show one tick's network facts (None: no engine)."""
        state = connection_state(ns)
        if state is not self.state or self.connection.pixmap().isNull():
            self.connection.setPixmap(connection_pixmap(state))
            self.connection.setAccessibleName(f"Connection status: {CONNECTION_LABELS[state]}")
        self.state = state
        self.connection.setToolTip(connection_tooltip(ns))
        self.dht.setText(dht_text(ns))
        self.dht.setToolTip("Nodes in the DHT routing table (peers found without trackers)")
        self._totals = None if ns is None else (ns.downloaded, ns.uploaded)
        self._show_rates()

    def set_rates(self, down: float, up: float) -> None:
        """Global rates (the controller's once-per-tick ``globalRates``)."""
        self._down, self._up = down, up
        self._show_rates()

    def _show_rates(self) -> None:
        downloaded, uploaded = self._totals if self._totals is not None else (None, None)
        self.rates.setText(rates_text(self._down, self._up, downloaded, uploaded))
        self.rates.setToolTip(
            "Global download and upload rate"
            + ("" if self._totals is None else " (in brackets: transferred this session)")
        )

    def set_alt_speed(self, enabled: bool) -> None:
        """Follow the engine (schedule, tray, settings) without echoing a click."""
        self.alt_button.blockSignals(True)
        self.alt_button.setChecked(enabled)
        self.alt_button.blockSignals(False)
        self._alt_tooltip(enabled)

    def _alt_toggled(self, enabled: bool) -> None:
        self._alt_tooltip(enabled)
        self.altSpeedToggled.emit(enabled)

    def _alt_tooltip(self, enabled: bool) -> None:
        self.alt_button.setToolTip(
            "Alternative speed limits are on: click for the normal limits"
            if enabled
            else "Click to switch to the alternative speed limits"
        )
