"""Adding magnet links: the input dialog, and the honest notice that the engine cannot fetch
metadata from peers yet (BEP 9 discovery is not in the facade), so nothing is downloaded."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.magnet import Magnet, MagnetError, parse_magnet


class MagnetInputDialog(QDialog):
    """A text box for one or more magnet links (one per line)."""

    def __init__(self, parent: QWidget | None = None, text: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Add magnet links")
        self.resize(560, 220)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("One magnet link per line:"))
        self.edit = QPlainTextEdit(text)
        layout.addWidget(self.edit, 1)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def links(self) -> list[str]:
        return [ln.strip() for ln in self.edit.toPlainText().splitlines() if ln.strip()]


def describe(uri: str) -> tuple[Magnet | None, str]:
    """Parse a magnet link for the notice; the text says what it is, or why it is invalid."""
    try:
        m = parse_magnet(uri)
    except MagnetError as exc:
        return None, f"This is not a valid magnet link: {exc}"
    name = m.display_name or "(no name given)"
    ih = m.info_hash.hex()
    return m, (
        f"Magnet link for “{name}” (info hash {ih}) received.\n\n"
        "It cannot be downloaded yet: adding a torrent from a magnet link needs its metadata "
        "from peers, and the engine does not support metadata download yet (waiting for "
        "metadata support). Use the .torrent file meanwhile."
    )


def show_magnet_notice(parent: QWidget | None, uri: str) -> QMessageBox:
    """Non-modal notice (a handoff from a browser must not block the event loop)."""
    magnet, text = describe(uri)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information if magnet else QMessageBox.Icon.Warning)
    box.setWindowTitle("Magnet link — waiting for metadata support")
    box.setText(text)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box
