"""Adding magnet links: the input dialog (links + where to save), and the warning for a link that
is not a usable magnet. Valid links go straight to ``Session.add_magnet``; the torrent's row then
shows "Downloading metadata" until peers have sent the info dict (BEP 9)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.magnet import MagnetError, parse_magnet
from ccbt_gui.dialogs.add_torrent import SAVE_PATH_KEY, path_error_label, save_path_accepted
from ccbt_gui.state import gui_state


def remembered_save_path(default: str) -> str:
    """The folder the user last saved a torrent to, else the configured download folder."""
    return str(gui_state().value(SAVE_PATH_KEY, default))


class MagnetInputDialog(QDialog):
    """A text box for one or more magnet links (one per line) and the folder to save them to."""

    def __init__(self, parent: QWidget | None = None, text: str = "", save_path: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Add magnet links")
        self.resize(560, 240)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("One magnet link per line:"))
        self.edit = QPlainTextEdit(text)
        layout.addWidget(self.edit, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Save at:"))
        self.save_path = QLineEdit(save_path)
        row.addWidget(self.save_path, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        layout.addLayout(row)
        self.path_error = path_error_label()
        layout.addWidget(self.path_error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def links(self) -> list[str]:
        return [ln.strip() for ln in self.edit.toPlainText().splitlines() if ln.strip()]

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save at", self.save_path.text())
        if folder:
            self.save_path.setText(folder)

    def accept(self) -> None:
        if save_path_accepted(self.save_path, self.path_error):
            super().accept()


def invalid_reason(uri: str) -> str | None:
    """Why ``uri`` cannot be added (None when it is a usable magnet link)."""
    try:
        parse_magnet(uri)
    except MagnetError as exc:
        return f"This is not a valid magnet link: {exc}"
    return None


def show_invalid_magnet(parent: QWidget | None, reason: str) -> QMessageBox:
    """Non-modal warning (a handoff from a browser must not block the event loop)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Cannot add magnet link")
    box.setText(reason)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box
