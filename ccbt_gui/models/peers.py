"""The Peers tab: one row per connected peer of the selected torrent."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from ccbt_engine.api import PeerStatus
from ccbt_gui import formatting as fmt

Index = QModelIndex | QPersistentModelIndex


class PeerColumn(enum.IntEnum):
    ADDRESS = 0
    CLIENT = 1
    FLAGS = 2
    PROGRESS = 3
    DOWN = 4
    UP = 5
    DOWNLOADED = 6
    UPLOADED = 7
    SOURCE = 8


_HEADERS: tuple[str, ...] = ("IP/Address", "Client", "Flags", "Progress", "Down Speed")
_HEADERS += ("Up Speed", "Downloaded", "Uploaded", "Source")
_FLAG_HELP = (
    "D = downloading from the peer, d = we want to but it chokes us, "
    "U = uploading to it, u = it wants to but we choke it, I = incoming, S = snubbed"
)


def _cell(p: PeerStatus, col: PeerColumn) -> str:
    if col == PeerColumn.ADDRESS:
        return p.address
    if col == PeerColumn.CLIENT:
        return p.client
    if col == PeerColumn.FLAGS:
        return p.flags
    if col == PeerColumn.PROGRESS:
        return fmt.percent(p.progress)
    if col == PeerColumn.DOWN:
        return fmt.rate(p.download_rate)
    if col == PeerColumn.UP:
        return fmt.rate(p.upload_rate)
    if col == PeerColumn.DOWNLOADED:
        return fmt.size(p.downloaded)
    if col == PeerColumn.UPLOADED:
        return fmt.size(p.uploaded)
    return f"{p.source} ({p.transport}{', encrypted' if p.encrypted else ''})"


class PeerTableModel(QAbstractTableModel):
    """Rows keyed by address: same peers update in place, others insert/remove."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._peers: list[PeerStatus] = []

    def set_peers(self, peers: Sequence[PeerStatus]) -> None:
        peers = sorted(peers, key=lambda p: p.address)
        if [p.address for p in peers] == [p.address for p in self._peers]:
            changed = [i for i, (a, b) in enumerate(zip(self._peers, peers, strict=True)) if a != b]
            self._peers = list(peers)
            if changed:
                self.dataChanged.emit(
                    self.index(min(changed), 0), self.index(max(changed), len(PeerColumn) - 1)
                )
            return
        self.beginResetModel()
        self._peers = list(peers)
        self.endResetModel()

    def peer(self, row: int) -> PeerStatus:
        return self._peers[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._peers)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(PeerColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == PeerColumn.FLAGS:
            return _FLAG_HELP
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self._peers[index.row()]
        col = PeerColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(p, col)
        if (
            role == Qt.ItemDataRole.TextAlignmentRole
            and PeerColumn.PROGRESS <= col < PeerColumn.SOURCE
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col == PeerColumn.FLAGS:
            return _FLAG_HELP
        return None
