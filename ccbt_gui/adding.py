"""Adding torrents: .torrent files and magnet links from the command line, a second launch,
the toolbar, the clipboard or a drop, and creating new torrents.

A mixin of :class:`ccbt_gui.main_window.MainWindow` so the window module stays about layout and
state; everything here ends in ``EngineController.add_torrent`` or ``add_magnet``. A magnet from a
drop or a second launch is added at once, to the folder the user last saved to (no dialog: the
file list is unknown until the metadata arrives, so there is nothing to choose yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QDialog, QFileDialog, QMainWindow, QMessageBox, QWidget

from ccbt_engine.config import Settings
from ccbt_engine.metainfo import MetainfoError, load_torrent
from ccbt_gui.controller import EngineController
from ccbt_gui.dialogs.add_torrent import AddTorrentDialog
from ccbt_gui.dialogs.magnet import (
    MagnetInputDialog,
    invalid_reason,
    remembered_save_path,
    show_invalid_magnet,
)
from ccbt_gui.state import gui_state

if TYPE_CHECKING:  # the mixin is always combined with a QMainWindow
    _Base = QMainWindow
else:
    _Base = object


class AddingMixin(_Base):
    """Needs ``controller``, ``settings``, ``_open_dialogs``, ``itemsReceived``,
    ``show_message`` and ``bring_to_front`` from the window it is mixed into."""

    controller: EngineController | None
    settings: Settings
    _open_dialogs: list[QWidget]
    itemsReceived: Any

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        raise NotImplementedError

    def bring_to_front(self) -> None:
        raise NotImplementedError

    def handle_items(self, items: Sequence[str]) -> None:
        """Magnet links and .torrent paths from the command line, a second launch, or a drop."""
        items = [i for i in items if i.strip()]
        if not items:
            self.bring_to_front()
            return
        self.itemsReceived.emit(list(items))
        for item in items:
            if item.lower().startswith("magnet:"):
                print(f"magnet received: {item}", flush=True)
                self.add_magnet_link(
                    item, remembered_save_path(str(self.settings.disk.download_path))
                )
            else:
                print(f"torrent file received: {item}", flush=True)
                self.open_add_dialog(Path(item.removeprefix("file://")))
        self.bring_to_front()

    def open_add_dialog(self, path: Path) -> AddTorrentDialog | None:
        try:
            metainfo = load_torrent(path)
        except MetainfoError as exc:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Cannot add torrent",
                f"{path} is not a usable .torrent file:\n{exc}",
                parent=self,
            )
            box.open()
            self._open_dialogs.append(box)
            return None
        default = str(self.settings.disk.download_path)
        dialog = AddTorrentDialog(metainfo, default, self)
        self._open_dialogs.append(dialog)

        def done(result: int) -> None:
            self._open_dialogs.remove(dialog)
            if result != QDialog.DialogCode.Accepted or self.controller is None:
                return
            req = dialog.request()
            self.controller.run(
                self.controller.add_torrent(
                    metainfo,
                    req.save_path or None,
                    paused=req.paused,
                    file_priorities=req.file_priorities,
                    sequential=req.sequential,
                ),
                f"Adding {metainfo.info.name}",
            )

        dialog.finished.connect(done)
        dialog.open()
        return dialog

    def add_torrent_file(self) -> None:
        st = gui_state()
        start = str(st.value("add/last_open_dir", str(Path.home())))
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open torrent files", start, "Torrent files (*.torrent);;All files (*)"
        )
        if paths:
            st.setValue("add/last_open_dir", str(Path(paths[0]).parent))
            self.handle_items(paths)

    def add_magnet_link(self, uri: str, save_path: str) -> None:
        """Start fetching a magnet's metadata; an unusable link gets a warning instead."""
        reason = invalid_reason(uri)
        if reason is not None:
            box = show_invalid_magnet(self, reason)
            self._open_dialogs.append(box)
            box.finished.connect(lambda _r, b=box: self._open_dialogs.remove(b))
            return
        if self.controller is None:
            self.show_message("Cannot add the magnet link: the engine is not running")
            return
        controller = self.controller

        async def add() -> None:
            handle = await controller.add_magnet(uri, save_path or None)
            # stdout, like "magnet received": the log a browser handoff can be checked with
            print(f"magnet added: {handle.info_hash} ({handle.name})", flush=True)

        controller.run(add(), "Adding magnet link")

    def add_magnet(self) -> MagnetInputDialog:
        clip = QGuiApplication.clipboard().text() if QGuiApplication.clipboard() else ""
        default = remembered_save_path(str(self.settings.disk.download_path))
        dialog = MagnetInputDialog(self, clip if clip.startswith("magnet:") else "", default)
        self._open_dialogs.append(dialog)

        def done(result: int) -> None:
            self._open_dialogs.remove(dialog)
            if result != QDialog.DialogCode.Accepted:
                return
            self.itemsReceived.emit(dialog.links())
            for link in dialog.links():
                self.add_magnet_link(link, dialog.save_path.text().strip())

        dialog.finished.connect(done)
        dialog.open()
        return dialog

    def create_torrent(self) -> None:
        from ccbt_gui.dialogs.create_torrent import CreateTorrentDialog

        dialog = CreateTorrentDialog(self)
        self._open_dialogs.append(dialog)
        dialog.finished.connect(lambda _r: self._open_dialogs.remove(dialog))
        dialog.created.connect(self._created)
        dialog.open()

    def _created(self, torrent_path: str, seed: bool, data_dir: str) -> None:
        self.show_message(f"Created {torrent_path}")
        if seed and self.controller is not None:
            metainfo = load_torrent(Path(torrent_path))
            self.controller.run(
                self.controller.add_torrent(metainfo, data_dir), f"Seeding {metainfo.info.name}"
            )

    # -- drag and drop ------------------------------------------------------------
    @staticmethod
    def dropped_items(mime: object) -> list[str]:
        """.torrent files and magnet links in a drag's MIME data."""
        assert isinstance(mime, QMimeData)
        items = [
            u.toLocalFile()
            for u in mime.urls()
            if u.isLocalFile() and u.toLocalFile().lower().endswith(".torrent")
        ]
        items += [u.toString() for u in mime.urls() if u.scheme() == "magnet"]
        if mime.hasText():
            items += [
                ln.strip()
                for ln in mime.text().splitlines()
                if ln.strip().lower().startswith("magnet:")
            ]
        return list(dict.fromkeys(items))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.dropped_items(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        items = self.dropped_items(event.mimeData())
        if items:
            event.acceptProposedAction()
            self.handle_items(items)
