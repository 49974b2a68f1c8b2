"""The Speed tab: download/upload history of the selected torrent and of the whole session, and
the peer count over time (pyqtgraph, which redraws thousands of points cheaply)."""

from __future__ import annotations

import time
from collections import deque

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

#: samples kept per series: at the default 1 s tick, ten minutes of history
HISTORY = 600
KIB = 1024.0


class RateHistory:
    """Fixed-length series of (time, down, up, peers) samples."""

    def __init__(self, maxlen: int = HISTORY) -> None:
        self.t: deque[float] = deque(maxlen=maxlen)
        self.down: deque[float] = deque(maxlen=maxlen)
        self.up: deque[float] = deque(maxlen=maxlen)
        self.peers: deque[float] = deque(maxlen=maxlen)

    def add(self, down: float, up: float, peers: int, now: float | None = None) -> None:
        self.t.append(time.monotonic() if now is None else now)
        self.down.append(down)
        self.up.append(up)
        self.peers.append(float(peers))

    def __len__(self) -> int:
        return len(self.t)


class SpeedCharts(QWidget):
    """Two plots: rates (selected torrent solid, session total dashed) and peers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.rates = pg.PlotWidget()
        self.rates.setLabel("left", "KiB/s")
        self.rates.setLabel("bottom", "seconds ago")
        # one legend row across the top; the y range leaves headroom for it (show_history)
        self.legend = self.rates.addLegend(offset=(10, 2), colCount=4)
        self.rates.showGrid(x=True, y=True, alpha=0.2)
        self.peers = pg.PlotWidget()
        self.peers.setLabel("left", "peers")
        self.peers.setLabel("bottom", "seconds ago")
        self.peers.showGrid(x=True, y=True, alpha=0.2)
        self.peers.setMaximumHeight(150)
        self._down = self.rates.plot(name="Download", pen=pg.mkPen("#2e86de", width=2))
        self._up = self.rates.plot(name="Upload", pen=pg.mkPen("#27ae60", width=2))
        dash = pg.QtCore.Qt.PenStyle.DashLine
        self._gdown = self.rates.plot(
            name="Session download", pen=pg.mkPen("#2e86de", width=1, style=dash)
        )
        self._gup = self.rates.plot(
            name="Session upload", pen=pg.mkPen("#27ae60", width=1, style=dash)
        )
        self._peer_curve = self.peers.plot(pen=pg.mkPen("#e67e22", width=2))
        layout.addWidget(self.rates, 3)
        layout.addWidget(self.peers, 1)

    def set_colors(self, background: str, foreground: str) -> None:
        """Follow the app theme (pyqtgraph does not read the Qt palette)."""
        for plot in (self.rates, self.peers):
            plot.setBackground(background)
            self.legend.setLabelTextColor(foreground)
            for axis in ("left", "bottom"):
                ax = plot.getAxis(axis)
                ax.setPen(foreground)
                ax.setTextPen(foreground)

    def show_history(self, torrent: RateHistory | None, session: RateHistory) -> None:
        now = time.monotonic()
        if torrent is not None and len(torrent):
            ago = [t - now for t in torrent.t]
            self._down.setData(ago, [v / KIB for v in torrent.down])
            self._up.setData(ago, [v / KIB for v in torrent.up])
            self._peer_curve.setData(ago, list(torrent.peers))
            self.peers.setYRange(0, max(torrent.peers) * 1.2 + 1, padding=0)
        else:
            for curve in (self._down, self._up, self._peer_curve):
                curve.setData([], [])
        top = 0.0
        if len(session):
            ago = [t - now for t in session.t]
            self._gdown.setData(ago, [v / KIB for v in session.down])
            self._gup.setData(ago, [v / KIB for v in session.up])
            top = max(max(session.down), max(session.up)) / KIB
        if torrent is not None and len(torrent):
            top = max(top, max(torrent.down) / KIB, max(torrent.up) / KIB)
        self.rates.setYRange(0, top * 1.25 + 1, padding=0)
