"""Icons drawn in code, so the app needs no image files to look complete."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap


def app_icon() -> QIcon:
    """A blue disc with a down and an up arrow (download/upload)."""
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(_draw(size))
    return icon


def _draw(size: int) -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    p.setBrush(QBrush(QColor("#2e86de")))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(QRectF(s * 0.04, s * 0.04, s * 0.92, s * 0.92))
    pen = QPen(QColor("white"), max(1.5, s * 0.09))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    _arrow(p, s * 0.36, s * 0.25, s * 0.72, down=True, size=s)
    _arrow(p, s * 0.64, s * 0.75, s * 0.28, down=False, size=s)
    p.end()
    return pm


def _arrow(p: QPainter, x: float, y0: float, y1: float, *, down: bool, size: float) -> None:
    head = size * 0.13
    path = QPainterPath(QPointF(x, y0))
    path.lineTo(x, y1)
    tip = 1 if down else -1
    path.moveTo(x - head, y1 - tip * head)
    path.lineTo(x, y1)
    path.lineTo(x + head, y1 - tip * head)
    p.drawPath(path)
