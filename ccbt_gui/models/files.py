"""The Files tree: folders and files of one torrent, with a checkbox and a priority each.

Used by the Files tab (edits go to ``TorrentHandle.set_file_priorities`` through the
``prioritiesChanged`` signal) and by the add-torrent dialog (edits become the ``file_priorities``
of ``Session.add_torrent``; it hides the Progress column). Pad files (BEP 47) are never shown;
they keep their priority. Progress is ``FileStatus.done`` (bytes covered by verified pieces), and
a folder's progress is its files' done bytes over their sizes, as qBittorrent shows it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from ccbt_engine.api import FileStatus
from ccbt_gui import formatting as fmt
from ccbt_gui.models.torrents import PROGRESS_ROLE

Index = QModelIndex | QPersistentModelIndex

SKIP, LOW, NORMAL, HIGH = 0, 1, 4, 7
#: what the Priority column offers, in menu order
PRIORITY_CHOICES: tuple[tuple[int, str], ...] = (
    (SKIP, "Do not download"),
    (LOW, "Low"),
    (NORMAL, "Normal"),
    (HIGH, "High"),
)
MIXED = "Mixed"


def priority_label(priority: int) -> str:
    """Engine priorities are 0..7; qBittorrent shows four buckets."""
    if priority <= 0:
        return "Do not download"
    if priority <= 3:
        return "Low"
    if priority <= 5:
        return "Normal"
    return "High"


class FileColumn(enum.IntEnum):
    NAME = 0
    SIZE = 1
    PROGRESS = 2
    PRIORITY = 3


_HEADERS = ("Name", "Size", "Progress", "Priority")


@dataclass(eq=False)
class _Node:
    name: str
    parent: _Node | None
    #: index into the torrent's file list; None for folders
    file_index: int | None = None
    size: int = 0
    priority: int = NORMAL
    #: bytes verified (files); folders sum their children
    done: int = 0
    children: list[_Node] = field(default_factory=list)

    def progress(self) -> float:
        """Done share (an empty file counts as complete)."""
        return 1.0 if self.size <= 0 else self.done / self.size

    def row(self) -> int:
        return 0 if self.parent is None else self.parent.children.index(self)

    def files(self) -> list[_Node]:
        if self.file_index is not None:
            return [self]
        return [f for c in self.children for f in c.files()]


class FileTreeModel(QAbstractItemModel):
    """Folder tree over a flat file list; priority edits are emitted as a full list."""

    #: list[int], one priority per file of the torrent (pad files included)
    prioritiesChanged = Signal(list)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._root = _Node("", None)
        self._priorities: list[int] = []
        self._by_index: dict[int, _Node] = {}

    # -- filling ------------------------------------------------------------
    def set_files(self, files: Sequence[FileStatus]) -> None:
        """Rebuild from the facade's file list (a single-file torrent is a single row)."""
        self.beginResetModel()
        self._root = _Node("", None)
        self._priorities = [f.priority for f in files]
        self._by_index = {}
        folders: dict[tuple[str, ...], _Node] = {(): self._root}
        for f in files:
            if f.is_pad:
                continue
            parts = tuple(p for p in f.path.split("/") if p)
            parent = self._root
            for depth in range(1, len(parts)):
                key = parts[:depth]
                node = folders.get(key)
                if node is None:
                    node = _Node(parts[depth - 1], parent)
                    parent.children.append(node)
                    folders[key] = node
                parent = node
            name = parts[-1] if parts else f.path
            leaf = _Node(name, parent, f.index, f.size, f.priority, min(f.done, f.size))
            parent.children.append(leaf)
            self._by_index[f.index] = leaf
        self._sum_sizes(self._root)
        self.endResetModel()

    def update_files(self, files: Sequence[FileStatus]) -> None:
        """Refresh priorities and progress from the engine without rebuilding (keeps the
        expansion state and an open priority editor)."""
        changed = False
        for f in files:
            node = self._by_index.get(f.index)
            if f.index < len(self._priorities):
                self._priorities[f.index] = f.priority
            done = min(f.done, f.size)
            if node is not None and (node.priority != f.priority or node.done != done):
                node.priority = f.priority
                node.done = done
                changed = True
        if changed:
            self._sum_done(self._root)
            self._emit_all(self._root)

    def _sum_sizes(self, node: _Node) -> int:
        if node.file_index is None:
            node.size = sum(self._sum_sizes(c) for c in node.children)
            node.done = sum(c.done for c in node.children)
        return node.size

    def _sum_done(self, node: _Node) -> int:
        if node.file_index is None:
            node.done = sum(self._sum_done(c) for c in node.children)
        return node.done

    def priorities(self) -> list[int]:
        return list(self._priorities)

    def file_count(self) -> int:
        return len(self._by_index)

    def selected_size(self) -> int:
        return sum(n.size for n in self._by_index.values() if n.priority > 0)

    # -- Qt model interface -----------------------------------------------------------------
    def _node(self, index: Index) -> _Node:
        if index.isValid():
            node = index.internalPointer()
            assert isinstance(node, _Node)
            return node
        return self._root

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        node = self._node(parent)
        if not 0 <= row < len(node.children) or not 0 <= column < len(FileColumn):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        node = self._node(index).parent
        if node is None or node is self._root:
            return QModelIndex()
        return self.createIndex(node.row(), 0, node)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._node(parent).children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(FileColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == FileColumn.NAME:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
            if self._node(index).file_index is None:
                flags |= Qt.ItemFlag.ItemIsAutoTristate
        if index.column() == FileColumn.PRIORITY:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self._node(index)
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == FileColumn.NAME:
                return node.name
            if col == FileColumn.SIZE:
                return fmt.size(node.size)
            if col == FileColumn.PROGRESS:
                return fmt.percent(node.progress())
            return self._priority_text(node)
        if role == PROGRESS_ROLE and col == FileColumn.PROGRESS:
            return node.progress()
        if role == Qt.ItemDataRole.EditRole and col == FileColumn.PRIORITY:
            return self._priority_value(node)
        if role == Qt.ItemDataRole.CheckStateRole and col == FileColumn.NAME:
            return self._check_state(node)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == FileColumn.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _priority_value(self, node: _Node) -> int | None:
        values = {f.priority for f in node.files()}
        return values.pop() if len(values) == 1 else None

    def _priority_text(self, node: _Node) -> str:
        labels = {priority_label(f.priority) for f in node.files()}
        return labels.pop() if len(labels) == 1 else MIXED

    def _check_state(self, node: _Node) -> Qt.CheckState:
        wanted = [f.priority > 0 for f in node.files()]
        if all(wanted):
            return Qt.CheckState.Checked
        if not any(wanted):
            return Qt.CheckState.Unchecked
        return Qt.CheckState.PartiallyChecked

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid():
            return False
        node = self._node(index)
        if role == Qt.ItemDataRole.CheckStateRole and index.column() == FileColumn.NAME:
            checked = Qt.CheckState(value) != Qt.CheckState.Unchecked
            return self.set_priority(node, NORMAL if checked else SKIP, keep_nonzero=checked)
        if role == Qt.ItemDataRole.EditRole and index.column() == FileColumn.PRIORITY:
            return self.set_priority(node, int(value))
        return False

    def set_priority_at(self, index: Index, priority: int) -> bool:
        return self.set_priority(self._node(index), priority)

    def set_priority(self, node: _Node, priority: int, *, keep_nonzero: bool = False) -> bool:
        """Set ``priority`` on a file or every file under a folder; emits prioritiesChanged."""
        if not 0 <= priority <= 7:
            return False
        changed = False
        for f in node.files():
            new = f.priority if keep_nonzero and f.priority > 0 else priority
            if f.priority != new:
                f.priority = new
                assert f.file_index is not None
                self._priorities[f.file_index] = new
                changed = True
        if changed:
            self._emit_all(self._root)
            self.prioritiesChanged.emit(list(self._priorities))
        return True

    def _emit_all(self, node: _Node, parent: QModelIndex | None = None) -> None:
        """Signal every cell under ``node`` (trees here are small; folders aggregate children)."""
        parent = parent if parent is not None else QModelIndex()
        if node.children:
            last = len(node.children) - 1
            self.dataChanged.emit(
                self.index(0, 0, parent), self.index(last, len(FileColumn) - 1, parent)
            )
            for row, child in enumerate(node.children):
                if child.children:
                    self._emit_all(child, self.index(row, 0, parent))
