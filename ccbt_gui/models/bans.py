"""Banned peers as a table: address, reason, when the ban began and when it lifts.

The engine reports a ban as :class:`~ccbt_engine.api.BannedPeer` (address, reason, seconds left),
clock-free so it can cross a process boundary to a daemon. *When* it began is therefore worked
out here: from the :class:`~ccbt_engine.events.PeerBanned` event if this window saw it (the GUI
keeps the wall time it arrived, :class:`BanClock`), otherwise from ``security.ban_duration``
minus the time left (a ban that was extended shows when it was last renewed). A ban "until the
session ends" that the window did not see has no known start.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from ccbt_engine.api import BannedPeer
from ccbt_gui import formatting as fmt

Index = QModelIndex | QPersistentModelIndex


class BanColumn(enum.IntEnum):
    ADDRESS = 0
    REASON = 1
    SINCE = 2
    EXPIRES = 3


_HEADERS = ("IP address", "Reason", "Banned since", "Lifts in")


@dataclass(frozen=True, slots=True)
class BanRow:
    address: str
    reason: str
    #: wall-clock start of the ban (epoch seconds), None when unknown
    since: float | None
    #: seconds until it lifts, None = until the session ends
    expires_in: float | None


class BanClock:
    """Wall times at which this GUI saw each ban happen (from ``PeerBanned`` events)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def saw(self, address: str, when: float | None = None) -> None:
        self._seen[address] = time.time() if when is None else when

    def forget(self, address: str) -> None:
        self._seen.pop(address, None)

    def rows(self, bans: Sequence[BannedPeer], ban_duration: float, now: float) -> list[BanRow]:
        """Table rows for ``bans``; ``now`` is the wall time (epoch seconds)."""
        out = []
        for ban in bans:
            since = self._seen.get(ban.address)
            if since is None and ban.expires_in is not None and ban_duration > 0:
                since = now - max(0.0, ban_duration - ban.expires_in)
            out.append(BanRow(ban.address, ban.reason, since, ban.expires_in))
        return out


def _cell(row: BanRow, col: BanColumn) -> str:
    if col == BanColumn.ADDRESS:
        return row.address
    if col == BanColumn.REASON:
        return row.reason
    if col == BanColumn.SINCE:
        return "unknown" if row.since is None else fmt.timestamp(row.since)
    return "session end" if row.expires_in is None else fmt.duration(row.expires_in)


class BanTableModel(QAbstractTableModel):
    """Rows keyed by address, sorted by address."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[BanRow] = []

    def set_rows(self, rows: Sequence[BanRow]) -> None:
        rows = sorted(rows, key=lambda r: r.address)
        if [r.address for r in rows] == [r.address for r in self._rows]:
            self._rows = list(rows)
            if rows:  # times move every refresh: repaint the columns that carry them
                self.dataChanged.emit(
                    self.index(0, BanColumn.REASON), self.index(len(rows) - 1, BanColumn.EXPIRES)
                )
            return
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row(self, index: int) -> BanRow:
        return self._rows[index]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(BanColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = BanColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(row, col)
        if role == Qt.ItemDataRole.ToolTipRole and col == BanColumn.REASON:
            return row.reason
        return None
