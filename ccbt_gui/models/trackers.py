"""The Trackers tab model: one row per tracker from ``TorrentHandle.trackers()``.

Rows are the facade's :class:`~ccbt_engine.api.TrackerStatus` snapshots as they are (frozen, so a
tick that changed nothing is a cheap equality check and no reset). "Next announce" is shown
relative to now, as qBittorrent does, so it is computed when painted, not stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from ccbt_engine.api import TrackerStatus
from ccbt_gui import formatting as fmt

Index = QModelIndex | QPersistentModelIndex

_HEADERS = ("Tier", "URL", "Status", "Seeds", "Peers", "Downloaded", "Next announce", "Message")
_NUMERIC = frozenset({3, 4, 5, 6})
_STATUS_LABELS = {
    "working": "Working",
    "updating": "Updating…",
    "error": "Not working",
    "not contacted": "Not contacted yet",
}


def _count(value: int | None) -> str:
    """Trackers that did not say (no scrape, UDP without counts) show nothing, not 0."""
    return "" if value is None else str(value)


class TrackerTableModel(QAbstractTableModel):
    def __init__(self, parent: Any = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self._rows: list[TrackerStatus] = []
        self._clock = clock

    def set_rows(self, rows: Sequence[TrackerStatus]) -> None:
        rows = sorted(rows, key=lambda r: r.tier)
        if rows == self._rows:
            # same state; only the relative "next announce" moved
            if rows:
                self.dataChanged.emit(self.index(0, 6), self.index(len(rows) - 1, 6))
            return
        if [(r.tier, r.url) for r in rows] == [(r.tier, r.url) for r in self._rows]:
            self._rows = rows  # same trackers: keep the view's selection and scroll position
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(_HEADERS) - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def rows(self) -> list[TrackerStatus]:
        return list(self._rows)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col in (1, 7):
            return r.message or r.url
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == 0:
            return str(r.tier + 1)
        if col == 1:
            return r.url
        if col == 2:
            return _STATUS_LABELS.get(r.status, r.status)
        if col == 3:
            return _count(r.seeds)
        if col == 4:
            return _count(r.peers)
        if col == 5:
            return _count(r.downloaded)
        if col == 6:
            if r.next_announce is None:
                return ""
            return fmt.duration(max(0.0, r.next_announce - self._clock()))
        return r.message
