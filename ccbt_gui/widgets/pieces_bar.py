"""A bar painting which pieces of the selected torrent are verified (TorrentHandle.pieces()).

With more pieces than pixels, each pixel column is shaded by the fraction of its pieces we have,
so a half-downloaded region looks half-filled instead of flickering between on and off.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


def piece_fractions(bitfield: bytes, num_pieces: int, bins: int) -> np.ndarray:
    """Fraction (0..1) of verified pieces in each of ``bins`` equal slices of the torrent."""
    if num_pieces <= 0 or bins <= 0:
        return np.zeros(max(bins, 0))
    bits = np.unpackbits(np.frombuffer(bitfield, dtype=np.uint8))[:num_pieces].astype(float)
    if len(bits) < num_pieces:  # short bitfield: missing bits are pieces we do not have
        bits = np.concatenate([bits, np.zeros(num_pieces - len(bits))])
    edges = np.linspace(0, num_pieces, bins + 1)
    starts = np.minimum(edges[:-1].astype(int), num_pieces - 1)
    ends = np.maximum(edges[1:].astype(int), starts + 1)
    csum = np.concatenate([[0.0], np.cumsum(bits)])
    sums = csum[ends] - csum[starts]
    return np.asarray(sums / (ends - starts))


class PiecesBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bitfield = b""
        self._num_pieces = 0
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Verified pieces")

    def sizeHint(self) -> QSize:
        return QSize(400, 24)

    def set_pieces(self, bitfield: bytes, num_pieces: int) -> None:
        if (bitfield, num_pieces) != (self._bitfield, self._num_pieces):
            self._bitfield, self._num_pieces = bitfield, num_pieces
            self.update()

    def clear(self) -> None:
        self.set_pieces(b"", 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = self.rect().adjusted(0, 0, -1, -1)
        pal = self.palette()
        painter.fillRect(rect, pal.base())
        width = rect.width() - 1
        if self._num_pieces and width > 0:
            fractions = piece_fractions(self._bitfield, self._num_pieces, width)
            have = pal.highlight().color()
            base = pal.base().color()
            image = QImage(width, 1, QImage.Format.Format_RGB32)
            for x, f in enumerate(fractions):
                image.setPixelColor(x, 0, _blend(base, have, float(f)))
            painter.drawImage(QRect(rect.x() + 1, rect.y() + 1, width, rect.height() - 1), image)
        painter.setPen(pal.mid().color())
        painter.drawRect(rect)
        painter.end()


def _blend(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )
