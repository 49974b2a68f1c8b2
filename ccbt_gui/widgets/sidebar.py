"""The status filter list on the left: All, Downloading, Seeding ... each with its count."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from ccbt_gui.models.torrents import CATEGORY_LABELS, Category, TorrentTableModel

_ROLE = Qt.ItemDataRole.UserRole


class StatusSidebar(QListWidget):
    #: the chosen category, or None for All
    categoryChanged = Signal(object)

    def __init__(self, model: TorrentTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        for category, label in CATEGORY_LABELS:
            item = QListWidgetItem(label)
            item.setData(_ROLE, category)
            self.addItem(item)
        self.setCurrentRow(0)
        self.setMaximumWidth(190)
        self.currentItemChanged.connect(self._changed)
        model.countsChanged.connect(self.update_counts)
        model.rowsInserted.connect(self.update_counts)
        model.rowsRemoved.connect(self.update_counts)
        model.modelReset.connect(self.update_counts)
        self.update_counts()

    def update_counts(self) -> None:
        for row, (category, label) in enumerate(CATEGORY_LABELS):
            item = self.item(row)
            item.setText(f"{label} ({self._model.category_count(category)})")

    def select(self, category: Category | None) -> None:
        for row, (cat, _label) in enumerate(CATEGORY_LABELS):
            if cat == category:
                self.setCurrentRow(row)

    def _changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        if current is not None:
            self.categoryChanged.emit(current.data(_ROLE))
