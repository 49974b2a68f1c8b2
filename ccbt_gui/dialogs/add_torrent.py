"""The add-torrent dialog: where to save, which files, start paused, sequential.

The save folder is remembered between runs (gui-state.ini), like qBittorrent's "last location".
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.api import FileStatus, expand_home
from ccbt_engine.metainfo import Metainfo
from ccbt_gui import formatting as fmt
from ccbt_gui.models.files import NORMAL, FileColumn, FileTreeModel
from ccbt_gui.state import gui_state
from ccbt_gui.widgets.delegates import PriorityDelegate
from ccbt_gui.widgets.details import size_file_columns

SAVE_PATH_KEY = "add/last_save_path"


def remember_save_path(text: str) -> str | None:
    """Keep ``text`` (``~`` expanded) as the folder the next add dialog offers.

    Returns why it cannot be a save folder (a ``~user`` with no home here), else None: the
    dialogs show that and stay open instead of passing the engine a path it must refuse.
    """
    path = text.strip()
    if not path:
        return None
    try:
        gui_state().setValue(SAVE_PATH_KEY, str(expand_home(path)))
    except ValueError as exc:
        return f"Cannot save there: {exc}"
    return None


def save_path_accepted(edit: QLineEdit, error: QLabel) -> bool:
    """A dialog's OK: remember the folder in ``edit``, or show in ``error`` why it is refused."""
    problem = remember_save_path(edit.text())
    if problem is not None:
        error.setText(problem)
        error.show()
    return problem is None


def path_error_label() -> QLabel:
    """The line under "Save at" that says why the folder was refused (hidden until then)."""
    label = QLabel()
    label.setStyleSheet("color: #c62828")
    label.setWordWrap(True)
    label.hide()
    return label


@dataclass(frozen=True, slots=True)
class AddRequest:
    save_path: str
    paused: bool
    sequential: bool
    file_priorities: list[int]


def files_of(metainfo: Metainfo) -> list[FileStatus]:
    return [
        FileStatus(i, "/".join(f.path), f.length, NORMAL, f.is_pad)
        for i, f in enumerate(metainfo.info.files)
    ]


class AddTorrentDialog(QDialog):
    def __init__(
        self, metainfo: Metainfo, default_save_path: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.metainfo = metainfo
        info = metainfo.info
        self.setWindowTitle(f"Add torrent — {info.name}")
        self.resize(640, 520)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.save_path = QLineEdit(str(gui_state().value(SAVE_PATH_KEY, default_save_path)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.save_path, 1)
        h.addWidget(browse)
        form.addRow("Save at:", row)
        self.path_error = path_error_label()
        form.addRow("", self.path_error)
        form.addRow("Name:", QLabel(info.name))
        self.size_label = QLabel()
        form.addRow("Size:", self.size_label)
        hashes = info.info_hash.hex()
        if info.info_hash_v2 is not None:
            hashes += f"\n{info.info_hash_v2.hex()} (v2)"
        hash_label = QLabel(hashes)
        hash_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Info hash:", hash_label)
        if metainfo.comment:
            form.addRow("Comment:", QLabel(metainfo.comment))
        layout.addLayout(form)
        self.model = FileTreeModel(self)
        self.model.set_files(files_of(metainfo))
        self.model.prioritiesChanged.connect(lambda _p: self._update_size())
        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setItemDelegateForColumn(FileColumn.PRIORITY, PriorityDelegate(self))
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
        size_file_columns(self.tree)
        self.tree.setColumnHidden(FileColumn.PROGRESS, True)  # nothing downloaded yet
        self.tree.expandToDepth(1)
        layout.addWidget(self.tree, 1)
        self.paused = QCheckBox("Start paused (don't start the download)")
        self.sequential = QCheckBox("Download in sequential order")
        layout.addWidget(self.paused)
        layout.addWidget(self.sequential)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._update_size()

    def _update_size(self) -> None:
        total = sum(f.length for f in self.metainfo.info.files if not f.is_pad)
        self.size_label.setText(
            f"{fmt.size(self.model.selected_size())} selected of {fmt.size(total)}"
        )

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save at", self.save_path.text())
        if folder:
            self.save_path.setText(folder)

    def request(self) -> AddRequest:
        return AddRequest(
            save_path=self.save_path.text().strip(),
            paused=self.paused.isChecked(),
            sequential=self.sequential.isChecked(),
            file_priorities=self.model.priorities(),
        )

    def accept(self) -> None:
        if save_path_accepted(self.save_path, self.path_error):
            super().accept()
