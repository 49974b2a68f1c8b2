"""The details pane under the torrent list: General, Trackers, Peers, Files, Pieces and Speed.

It shows one torrent (the current one in the list). On each engine tick the main window calls
:meth:`DetailsPane.refresh` with that torrent's latest status; the pane then asks the handle for
what snapshots do not carry (peers, file priorities, the piece bitfield), and only for the tab that
is visible, so an idle tab costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QStackedLayout,
    QTableView,
    QTabWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.api import FileStatus, PeerStatus, TorrentStatus, TrackerStatus
from ccbt_gui import formatting as fmt
from ccbt_gui.models.bans import BanRow
from ccbt_gui.models.files import FileColumn, FileTreeModel
from ccbt_gui.models.peers import PeerTableModel
from ccbt_gui.models.torrents import selected_size, status_text
from ccbt_gui.models.trackers import TrackerTableModel
from ccbt_gui.widgets.bans import BanTable
from ccbt_gui.widgets.charts import RateHistory, SpeedCharts
from ccbt_gui.widgets.delegates import PriorityDelegate, ProgressDelegate
from ccbt_gui.widgets.pieces_bar import PiecesBar


class HandleLike(Protocol):
    """What the pane needs from a :class:`ccbt_engine.api.TorrentHandle`."""

    @property
    def info_hash(self) -> str: ...
    def peers(self) -> list[PeerStatus]: ...
    def files(self) -> list[FileStatus]: ...
    def pieces(self) -> bytes: ...
    def set_file_priorities(self, priorities: Sequence[int]) -> None: ...


HandleLookup = Callable[[str], HandleLike | None]
TrackerLookup = Callable[[str], list[TrackerStatus]]


def _empty_state(view: QWidget, text: str) -> tuple[QWidget, QLabel]:
    """A page showing ``view``, or a centred explanation when there is nothing to show."""
    page = QWidget()
    stack = QStackedLayout(page)
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setEnabled(False)
    stack.addWidget(view)
    stack.addWidget(label)
    return page, label


class DetailsPane(QTabWidget):
    GENERAL, TRACKERS, PEERS, FILES, PIECES, SPEED = range(6)

    #: Unban clicked in the Peers tab's banned list (the owner calls the session)
    unbanRequested = Signal(str)

    def __init__(
        self,
        handles: HandleLookup,
        trackers: TrackerLookup | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._handles = handles
        self._trackers = trackers or (lambda _h: [])
        #: the bans to show under the peers of a torrent (set by the main window); bans are
        #: session-wide, so a refused address shows here with its reason, not as a peer
        self.ban_rows: Callable[[str], list[BanRow]] = lambda _h: []
        self._status: TorrentStatus | None = None
        self._history = RateHistory()
        self.session_history = RateHistory()
        self._build_general()
        self._build_trackers()
        self._build_peers()
        self._build_files()
        self._build_pieces()
        self.speed = SpeedCharts()
        self.addTab(self.speed, "Speed")
        self.currentChanged.connect(lambda _i: self._refresh_tab())
        self.show_torrent(None)

    # -- construction ------------------------------------------------------------
    def _build_general(self) -> None:
        page = QWidget()
        outer = QVBoxLayout(page)
        self.general_pieces = PiecesBar()
        outer.addWidget(self.general_pieces)
        transfer = QGroupBox("Transfer")
        info = QGroupBox("Information")
        self._fields: dict[str, QLabel] = {}
        tf = QFormLayout(transfer)
        for key, label in (
            ("status", "Status:"),
            ("time_active", "Time active:"),
            ("eta", "ETA:"),
            ("downloaded", "Downloaded:"),
            ("uploaded", "Uploaded:"),
            ("rates", "Speed (down / up):"),
            ("limits", "Limits (down / up):"),
            ("peers", "Seeds / peers:"),
            ("ratio", "Share ratio:"),
            ("wasted", "Wasted:"),
            ("error", "Error:"),
        ):
            self._fields[key] = self._add_field(tf, label)
        inf = QFormLayout(info)
        for key, label in (
            ("size", "Total size:"),
            ("pieces", "Pieces:"),
            ("save_path", "Save path:"),
            ("hash_v1", "Info hash v1:"),
            ("hash_v2", "Info hash v2:"),
            ("added", "Added on:"),
            ("sequential", "Sequential:"),
        ):
            self._fields[key] = self._add_field(inf, label)
        row = QWidget()
        from PySide6.QtWidgets import QHBoxLayout

        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(transfer, 1)
        h.addWidget(info, 1)
        outer.addWidget(row, 1)
        self.addTab(page, "General")

    @staticmethod
    def _add_field(form: QFormLayout, label: str) -> QLabel:
        value = QLabel()
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value.setWordWrap(True)
        form.addRow(label, value)
        return value

    def _build_trackers(self) -> None:
        self.tracker_model = TrackerTableModel(self)
        view = self._table(self.tracker_model)
        header = view.horizontalHeader()
        for col, width in enumerate((45, 320, 110, 60, 60, 105, 115)):
            header.resizeSection(col, width)
        page, self._trackers_empty = _empty_state(view, "")
        self._trackers_stack = page.layout()
        self.addTab(page, "Trackers")

    def _build_peers(self) -> None:
        self.peer_model = PeerTableModel(self)
        view = self._table(self.peer_model)
        view.setSortingEnabled(False)
        header = view.horizontalHeader()
        header.resizeSection(0, 170)
        header.resizeSection(1, 170)
        header.resizeSection(2, 60)
        for col in range(3, 8):
            header.resizeSection(col, 95)
        page, self._peers_empty = _empty_state(view, "No connected peers")
        self._peers_stack = page.layout()
        self.bans_box = QGroupBox("Banned peers")
        self.ban_table = BanTable()
        self.ban_table.unbanRequested.connect(self.unbanRequested)
        QVBoxLayout(self.bans_box).addWidget(self.ban_table)
        self.bans_box.hide()  # shown only while there are bans
        outer = QWidget()
        column = QVBoxLayout(outer)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(page, 1)
        column.addWidget(self.bans_box, 1)
        self.addTab(outer, "Peers")

    def _build_files(self) -> None:
        self.file_model = FileTreeModel(self)
        self.files_view = QTreeView()
        self.files_view.setModel(self.file_model)
        self.files_view.setItemDelegateForColumn(FileColumn.PRIORITY, PriorityDelegate(self))
        self.files_view.setItemDelegateForColumn(FileColumn.PROGRESS, ProgressDelegate(self))
        self.files_view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.files_view.setAlternatingRowColors(True)
        size_file_columns(self.files_view)
        self.file_model.prioritiesChanged.connect(self._send_priorities)
        self._files_hash: str | None = None
        page, self._files_empty = _empty_state(self.files_view, "")
        self._files_stack = page.layout()
        self.addTab(page, "Files")

    def _build_pieces(self) -> None:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.pieces_bar = PiecesBar()
        self.pieces_bar.setMinimumHeight(40)
        self._pieces_label = QLabel()
        layout.addWidget(self.pieces_bar)
        layout.addWidget(self._pieces_label)
        layout.addStretch(1)
        self.addTab(page, "Pieces")

    @staticmethod
    def _table(model: PeerTableModel | TrackerTableModel) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.verticalHeader().hide()
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setAlternatingRowColors(True)
        view.setShowGrid(False)
        view.horizontalHeader().setHighlightSections(False)
        view.horizontalHeader().setStretchLastSection(True)
        view.verticalHeader().setDefaultSectionSize(24)
        return view

    # -- showing a torrent ------------------------------------------------------------
    @property
    def info_hash(self) -> str | None:
        return None if self._status is None else self._status.info_hash

    def show_torrent(self, status: TorrentStatus | None) -> None:
        """Switch to another torrent (or none); resets its per-torrent history."""
        if status is None or status.info_hash != self.info_hash:
            self._history = RateHistory()
            self._files_hash = None
        self._status = status
        if status is None:
            for label in self._fields.values():
                label.setText("")
            self.tracker_model.set_rows([])
            self.peer_model.set_peers([])
            self.refresh_bans()
            self.file_model.set_files([])
            self.general_pieces.clear()
            self.pieces_bar.clear()
            self._pieces_label.setText("")
            self._set_empty(self._trackers_stack, self._trackers_empty, "No torrent selected")
            self._set_empty(self._peers_stack, self._peers_empty, "No torrent selected")
            self._set_empty(self._files_stack, self._files_empty, "No torrent selected")
            self.speed.show_history(None, self.session_history)
            return
        self.refresh(status)

    def refresh(self, status: TorrentStatus) -> None:
        """New state for the shown torrent (call on every tick)."""
        if status.info_hash != self.info_hash:
            self.show_torrent(status)
            return
        self._status = status
        self._history.add(status.download_rate, status.upload_rate, status.num_peers)
        self._refresh_tab()

    def add_session_sample(self, down: float, up: float, peers: int) -> None:
        self.session_history.add(down, up, peers)
        if self.currentIndex() == self.SPEED:
            self.speed.show_history(self._history if self._status else None, self.session_history)

    def _refresh_tab(self) -> None:
        s = self._status
        if s is None:
            return
        tab = self.currentIndex()
        handle = self._handles(s.info_hash)
        if tab == self.GENERAL:
            self._fill_general(s)
            if handle is not None:
                self.general_pieces.set_pieces(handle.pieces(), s.num_pieces)
        elif tab == self.TRACKERS:
            rows = self._trackers(s.info_hash)
            self.tracker_model.set_rows(rows)
            self._set_empty(
                self._trackers_stack,
                self._trackers_empty,
                "" if rows else "No trackers: peers come from DHT, PEX and manual connections",
            )
        elif tab == self.PEERS:
            peers = handle.peers() if handle is not None else []
            self.peer_model.set_peers(peers)
            self._set_empty(self._peers_stack, self._peers_empty, "" if peers else "No peers")
            self.refresh_bans()
        elif tab == self.FILES and handle is not None:
            self._fill_files(s, handle)
        elif tab == self.PIECES:
            if handle is not None:
                self.pieces_bar.set_pieces(handle.pieces(), s.num_pieces)
            self._pieces_label.setText(
                f"{s.pieces_have} of {s.num_pieces} pieces verified, "
                f"{fmt.size(s.piece_length)} each; {s.hash_failures} failed hash checks, "
                f"{fmt.size(s.wasted)} wasted"
            )
        elif tab == self.SPEED:
            self.speed.show_history(self._history, self.session_history)

    def refresh_bans(self) -> None:
        """Re-read the banned list under the peers (also after an unban)."""
        bans = [] if self._status is None else self.ban_rows(self._status.info_hash)
        self.ban_table.set_rows(bans)
        self.bans_box.setVisible(bool(bans))

    @staticmethod
    def _set_empty(stack: object, label: QLabel, text: str) -> None:
        assert isinstance(stack, QStackedLayout)
        label.setText(text)
        stack.setCurrentIndex(1 if text else 0)

    def _fill_general(self, s: TorrentStatus) -> None:
        f = self._fields
        f["status"].setText(status_text(s))
        f["time_active"].setText(fmt.duration(s.time_active))
        f["eta"].setText("" if s.wanted_done >= s.wanted_size else fmt.duration(s.eta))
        f["downloaded"].setText(fmt.size(s.downloaded))
        f["uploaded"].setText(fmt.size(s.uploaded))
        f["rates"].setText(f"{fmt.rate_always(s.download_rate)} / {fmt.rate_always(s.upload_rate)}")
        f["limits"].setText(f"{_limit(s.download_limit)} / {_limit(s.upload_limit)}")
        f["peers"].setText(f"{s.num_seeds} / {s.num_peers}")
        f["ratio"].setText(fmt.ratio(s.ratio))
        f["wasted"].setText(f"{fmt.size(s.wasted)} ({s.hash_failures} hash failures)")
        f["error"].setText(s.error or "none")
        f["size"].setText(
            f"{fmt.size(s.total_size)} (selected {fmt.size(selected_size(s))}, "
            f"{fmt.percent(s.progress)} done)"
        )
        f["pieces"].setText(f"{s.num_pieces} × {fmt.size(s.piece_length)} (have {s.pieces_have})")
        f["save_path"].setText(s.save_path)
        f["hash_v1"].setText(s.info_hash)
        f["hash_v2"].setText(s.info_hash_v2 or "n/a (v1 torrent)")
        f["added"].setText(fmt.timestamp(s.added_time))
        f["sequential"].setText("yes" if s.sequential else "no")

    def _fill_files(self, s: TorrentStatus, handle: HandleLike) -> None:
        """The file tree; a magnet has no file list until its metadata arrived."""
        files = handle.files()
        if not files:
            self.file_model.set_files([])
            self._files_hash = None
            waiting = s.state == "metadata"
            text = "Waiting for metadata: the file list comes from peers" if waiting else ""
            self._set_empty(self._files_stack, self._files_empty, text or "No files")
            return
        self._set_empty(self._files_stack, self._files_empty, "")
        if self._files_hash != s.info_hash:
            self.file_model.set_files(files)
            self.files_view.expandToDepth(1)
            self._files_hash = s.info_hash
        else:
            self.file_model.update_files(files)

    def _send_priorities(self, priorities: list[int]) -> None:
        if self._status is None:
            return
        handle = self._handles(self._status.info_hash)
        if handle is not None:
            handle.set_file_priorities(priorities)


def size_file_columns(view: QTreeView) -> None:
    """Name takes the spare width; the other columns fit their longest values."""
    header = view.header()
    header.setStretchLastSection(False)
    header.setSectionResizeMode(FileColumn.NAME, QHeaderView.ResizeMode.Stretch)
    header.resizeSection(FileColumn.SIZE, 100)
    header.resizeSection(FileColumn.PROGRESS, 110)
    header.resizeSection(FileColumn.PRIORITY, 150)


def _limit(value: int) -> str:
    return "∞" if value <= 0 else fmt.rate_always(value)
