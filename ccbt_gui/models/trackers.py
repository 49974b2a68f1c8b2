"""The Trackers tab model.

The engine facade does not report tracker state yet (no announce results, seeds/peers per
tracker or messages). Rather than invent numbers, this model lists only what is known for
certain: the tracker URLs of a .torrent added through this GUI, with the status column saying the
engine does not report it. When the facade grows tracker status, :meth:`set_rows` takes it as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex

NOT_REPORTED = "not reported by the engine yet"


@dataclass(frozen=True, slots=True)
class TrackerRow:
    tier: int
    url: str
    status: str = NOT_REPORTED
    message: str = ""


_HEADERS = ("Tier", "URL", "Status", "Message")


def rows_from_tiers(tiers: Sequence[Sequence[str]]) -> list[TrackerRow]:
    return [TrackerRow(tier, url) for tier, urls in enumerate(tiers) for url in urls]


class TrackerTableModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[TrackerRow] = []

    def set_rows(self, rows: Sequence[TrackerRow]) -> None:
        if list(rows) == self._rows:
            return
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

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
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        r = self._rows[index.row()]
        return (str(r.tier + 1), r.url, r.status, r.message)[index.column()]
