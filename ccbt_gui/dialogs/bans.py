"""The "Banned peers" dialog: who is banned, why, since when, until when, and Unban.

Bans are session-wide (a peer that sent bad data is refused by every torrent), so the dialog
talks to the session facade (``banned_peers()``/``unban_peer()``), which a remote daemon facade
offers too. It re-reads the list every :data:`REFRESH_MS` while open, since bans expire and new
ones arrive while the user looks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from ccbt_engine.api import BannedPeer
from ccbt_gui.models.bans import BanClock
from ccbt_gui.widgets.bans import BanTable

__all__ = ["REFRESH_MS", "BanSource", "BannedPeersDialog"]

REFRESH_MS = 2000


class BanSource(Protocol):
    """What the dialog needs from :class:`ccbt_engine.api.Session`."""

    def banned_peers(self) -> list[BannedPeer]: ...
    def unban_peer(self, address: str) -> bool: ...


class BannedPeersDialog(QDialog):
    """Lists the session's bans; Unban lifts the selected ones at once."""

    def __init__(
        self,
        source: BanSource,
        clock: BanClock,
        ban_duration: Callable[[], float],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Banned peers")
        self.resize(720, 360)
        self._source = source
        self._clock = clock
        self._ban_duration = ban_duration
        note = QLabel(
            "Peers are banned for sending data that failed the hash check, for protocol abuse "
            "or for anomalous behaviour. A ban covers every torrent and lifts by itself after "
            "the ban duration (Privacy & security)."
        )
        note.setWordWrap(True)
        self.table = BanTable()
        self.table.unbanRequested.connect(self.unban)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        refresh = buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole)
        refresh.clicked.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    def refresh(self) -> None:
        bans = self._source.banned_peers()
        self.table.set_rows(self._clock.rows(bans, self._ban_duration(), time.time()))

    def unban(self, address: str) -> None:
        self._source.unban_peer(address)
        self._clock.forget(address)
        self.refresh()
