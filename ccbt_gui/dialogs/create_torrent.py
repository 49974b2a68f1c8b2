"""Create a .torrent from a file or folder (hashing runs on a worker thread, with progress).

Uses ``ccbt_engine.api.create_torrent_async``: creating a torrent is a pure function of the
files on disk, not session state, so it is a function next to the Session facade.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.api import CreateError, create_torrent_async, expand_home

_PIECE_SIZES = [0] + [1 << n for n in range(14, 25)]  # auto, 16 KiB .. 16 MiB


class CreateTorrentDialog(QDialog):
    #: (path of the written .torrent, seed it now, folder holding the data)
    created = Signal(str, bool, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Create torrent")
        self.resize(560, 460)
        self._task: asyncio.Task[None] | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.source = QLineEdit()
        pick_file = QPushButton("File…")
        pick_dir = QPushButton("Folder…")
        pick_file.clicked.connect(self._pick_file)
        pick_dir.clicked.connect(self._pick_dir)
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.source, 1)
        h.addWidget(pick_file)
        h.addWidget(pick_dir)
        form.addRow("Path to share:", row)
        self.version = QComboBox()
        for label, value in (("Hybrid (v1 + v2)", "hybrid"), ("v1", "v1"), ("v2", "v2")):
            self.version.addItem(label, value)
        form.addRow("Torrent format:", self.version)
        self.piece_size = QComboBox()
        for size in _PIECE_SIZES:
            self.piece_size.addItem("Auto" if size == 0 else f"{size // 1024} KiB", size)
        form.addRow("Piece size:", self.piece_size)
        self.private = QCheckBox("Private torrent (no DHT/PEX)")
        form.addRow("", self.private)
        self.trackers = QPlainTextEdit()
        self.trackers.setPlaceholderText("One tracker URL per line; an empty line starts a tier")
        self.trackers.setMaximumHeight(90)
        form.addRow("Trackers:", self.trackers)
        self.comment = QLineEdit()
        form.addRow("Comment:", self.comment)
        self.seed = QCheckBox("Start seeding after creation")
        self.seed.setChecked(True)
        form.addRow("", self.seed)
        layout.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        layout.addWidget(self.progress)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton(
            "Create torrent", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.buttons.accepted.connect(self._start)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "File to share")
        if path:
            self.source.setText(path)

    def _pick_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to share")
        if path:
            self.source.setText(path)

    def tiers(self) -> list[list[str]]:
        tiers: list[list[str]] = [[]]
        for line in self.trackers.toPlainText().splitlines():
            if line.strip():
                tiers[-1].append(line.strip())
            elif tiers[-1]:
                tiers.append([])
        return [t for t in tiers if t]

    def _start(self) -> None:
        try:
            src = expand_home(self.source.text().strip())
        except ValueError as exc:
            self.progress.setFormat(f"Cannot use that path: {exc}")
            return
        if not src.exists():
            self.progress.setFormat("Choose an existing file or folder first")
            return
        out, _ = QFileDialog.getSaveFileName(
            self, "Save torrent", str(src.parent / f"{src.name}.torrent"), "Torrent (*.torrent)"
        )
        if out:
            self.create_to(src, Path(out))

    def create_to(self, src: Path, out: Path) -> asyncio.Task[None]:
        """Hash ``src`` and write ``out`` in the background (also the test entry point)."""
        self.create_button.setEnabled(False)
        self._task = asyncio.ensure_future(self._create(src, out))
        return self._task

    async def _create(self, src: Path, out: Path) -> None:
        piece = int(self.piece_size.currentData())
        try:
            data = await create_torrent_async(
                src,
                trackers=self.tiers(),
                piece_length=piece or None,
                private=self.private.isChecked(),
                version=self.version.currentData(),
                comment=self.comment.text().strip() or None,
                progress=self._progress,
            )
            out.write_bytes(data)
        except (CreateError, OSError) as exc:
            self.progress.setFormat(f"Failed: {exc}")
            self.create_button.setEnabled(True)
            return
        self.progress.setValue(1000)
        self.created.emit(str(out), self.seed.isChecked(), str(src.parent))
        self.accept()

    def _progress(self, done: int, total: int) -> None:
        self.progress.setValue(round(1000 * done / total) if total else 1000)

    def reject(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(Exception):
                self._task.exception() if self._task.done() else None
        super().reject()
