"""A table of banned peers with an Unban button (the Peers tab and the Banned peers dialog)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ccbt_gui.models.bans import BanRow, BanTableModel

__all__ = ["BanTable"]


class BanTable(QWidget):
    """A ban table with an Unban button; the owner lifts the bans it emits."""

    #: the user asked to lift the ban on this address
    unbanRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = BanTableModel(self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        header = self.view.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        for col, width in enumerate((150, 300, 130)):
            header.resizeSection(col, width)
        self.unban_button = QPushButton("Unban")
        self.unban_button.setToolTip("Lift the selected bans; the peers' scores start over")
        self.unban_button.setEnabled(False)
        self.unban_button.clicked.connect(self._unban_selected)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_button())
        self.model.modelReset.connect(self._update_button)
        self.count = QLabel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.addWidget(self.count, 1)
        row.addWidget(self.unban_button)
        layout.addLayout(row)
        self.set_rows([])

    def set_rows(self, rows: list[BanRow]) -> None:
        self.model.set_rows(rows)
        n = len(rows)
        self.count.setText("No banned peers" if n == 0 else f"{n} banned peer{'s' * (n != 1)}")

    def selected_addresses(self) -> list[str]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return [self.model.row(r).address for r in rows]

    def _update_button(self) -> None:
        self.unban_button.setEnabled(bool(self.view.selectionModel().selectedRows()))

    def _unban_selected(self) -> None:
        for address in self.selected_addresses():
            self.unbanRequested.emit(address)
