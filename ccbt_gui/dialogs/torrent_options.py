"""Small per-torrent dialogs: remove confirmation, rate limits; and the magnet link of a torrent."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.api import TorrentStatus
from ccbt_engine.magnet import Magnet
from ccbt_engine.metainfo import TorrentInfo


class RemoveDialog(QDialog):
    """qBittorrent's remove confirmation: a question and "also delete the files"."""

    def __init__(self, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Remove torrent(s)")
        layout = QVBoxLayout(self)
        what = f"“{names[0]}”" if len(names) == 1 else f"these {len(names)} torrents"
        layout.addWidget(QLabel(f"Are you sure you want to remove {what} from the transfer list?"))
        self.delete_files = QCheckBox("Also permanently delete the files")
        layout.addWidget(self.delete_files)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Remove")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class RateLimitDialog(QDialog):
    """Download/upload limits of the selected torrents in KiB/s; 0 = unlimited."""

    def __init__(self, download: int, upload: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Torrent speed limits")
        form = QFormLayout(self)
        self.down = self._spin(download)
        self.up = self._spin(upload)
        form.addRow("Download limit:", self.down)
        form.addRow("Upload limit:", self.up)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    @staticmethod
    def _spin(bytes_per_s: int) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(0, 10_000_000)
        spin.setSuffix(" KiB/s")
        spin.setSpecialValueText("∞ (unlimited)")
        spin.setValue(max(0, bytes_per_s) // 1024)
        return spin

    def limits(self) -> tuple[int, int]:
        """(download, upload) in bytes per second."""
        return self.down.value() * 1024, self.up.value() * 1024


def magnet_link(info: TorrentInfo) -> str:
    """The torrent's magnet link: v1 and/or v2 hash (hybrid torrents get both) and its name."""
    magnet = Magnet(
        info_hash_v1=info.info_hash if info.has_v1 else None,
        info_hash_v2=info.info_hash_v2,
        display_name=info.name,
    )
    return magnet.to_uri()


def pending_magnet_link(s: TorrentStatus, trackers: Sequence[str] = ()) -> str:
    """The magnet link of a torrent still fetching its metadata (no info dict to read yet):
    its hashes, name and trackers, which is all the original link could have said that matters
    to someone else (a v2-only magnet's ``info_hash`` is its v2 hash truncated, BEP 52)."""
    v2 = bytes.fromhex(s.info_hash_v2) if s.info_hash_v2 else None
    v1 = bytes.fromhex(s.info_hash)
    magnet = Magnet(
        info_hash_v1=None if v2 is not None and v2[:20] == v1 else v1,
        info_hash_v2=v2,
        display_name=s.name,
        trackers=list(trackers),
    )
    return magnet.to_uri()
