"""The main window: toolbar, status sidebar, torrent table, details pane, status bar, tray.

Everything engine-related goes through :class:`~ccbt_gui.controller.EngineController`; with no
controller (``MainWindow()``) the window still opens, which the smoke test and the screenshot
script rely on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import (
    QByteArray,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QSplitter,
    QStyle,
    QTableView,
    QToolBar,
    QWidget,
)

from ccbt_engine import CLIENT_NAME
from ccbt_engine import events as ev
from ccbt_engine.api import QueueDirection, SessionError, TorrentStatus, TrackerStatus
from ccbt_engine.config import (
    ConfigError,
    Settings,
    load_settings_with_sources,
    user_config_path,
)
from ccbt_gui.adding import AddingMixin
from ccbt_gui.controller import EngineController
from ccbt_gui.dialogs.torrent_options import (
    RateLimitDialog,
    RemoveDialog,
    magnet_link,
    pending_magnet_link,
)
from ccbt_gui.icons import app_icon
from ccbt_gui.models.bans import BanClock, BanRow
from ccbt_gui.models.torrents import HASH_ROLE, Column, TorrentFilterProxy, TorrentTableModel
from ccbt_gui.state import gui_state
from ccbt_gui.tray import Tray
from ccbt_gui.widgets.delegates import ColoredTextDelegate, ProgressDelegate
from ccbt_gui.widgets.details import DetailsPane, HandleLike
from ccbt_gui.widgets.sidebar import StatusSidebar
from ccbt_gui.widgets.statusbar import NetworkStatusBar

log = logging.getLogger(__name__)


def overridden_keys() -> dict[str, str]:
    """Settings whose effective value comes from above the user's config.toml."""
    try:
        _settings, sources = load_settings_with_sources()
    except ConfigError:
        return {}
    return {
        key: source.split(" /")[0] if source.startswith("local") else source
        for key, source in sources.items()
        if not source.startswith("user config file")
    }


class MainWindow(AddingMixin, QMainWindow):
    """Top-level window."""

    #: the items (magnets, .torrent paths) the window was asked to add, for logs and tests
    itemsReceived = Signal(list)

    def __init__(
        self, controller: EngineController | None = None, settings: Settings | None = None
    ) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings or (controller.settings if controller else Settings())
        self._quitting = False
        #: set by app.py: ends the asyncio main coroutine, which stops the engine cleanly
        self.on_quit: Callable[[], None] | None = None
        self._open_dialogs: list[QWidget] = []
        self.setWindowTitle(CLIENT_NAME)
        self.setWindowIcon(app_icon())
        self.resize(1180, 720)
        self.setAcceptDrops(True)

        self.model = TorrentTableModel(self)
        self.proxy = TorrentFilterProxy(self.model, self)
        self.table = self._build_table()
        self.sidebar = StatusSidebar(self.model)
        self.sidebar.categoryChanged.connect(self.proxy.set_category)
        self.details = DetailsPane(self._handle, self._tracker_rows)
        self.ban_clock = BanClock()  # when this window saw each ban (the engine has no clock)
        self.details.ban_rows = self.ban_rows
        self.details.unbanRequested.connect(self.unban_peer)
        self._build_actions()
        self._build_toolbar()
        self._build_layout()
        self._build_statusbar()
        self.tray = Tray(app_icon(), self)
        self._connect_tray()
        self._restore_state()
        if controller is not None:
            controller.snapshot.connect(self.apply_snapshot)
            controller.engineEvent.connect(self.on_engine_event)
            controller.globalRates.connect(self.on_global_rates)
            controller.message.connect(self.show_message)

    # -- construction ------------------------------------------------------------
    def _build_table(self) -> QTableView:
        table = QTableView()
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        table.sortByColumn(Column.ADDED, Qt.SortOrder.AscendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.verticalHeader().hide()
        table.verticalHeader().setDefaultSectionSize(24)
        table.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(table))
        table.setItemDelegateForColumn(Column.STATUS, ColoredTextDelegate(table))
        header = table.horizontalHeader()
        header.setSectionsMovable(True)
        header.setHighlightSections(False)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {Column.NAME: 250, Column.SIZE: 80, Column.PROGRESS: 115, Column.STATUS: 145}
        widths |= {Column.DOWN: 85, Column.UP: 85, Column.ETA: 70, Column.ADDED: 125}
        widths |= {Column.SEEDS: 55, Column.PEERS: 55, Column.RATIO: 55, Column.QUEUE: 40}
        for col, width in widths.items():
            header.resizeSection(col, width)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._row_menu)
        table.selectionModel().currentRowChanged.connect(self._current_changed)
        table.doubleClicked.connect(lambda _i: self.details.setCurrentIndex(DetailsPane.GENERAL))
        return table

    def _action(
        self, text: str, icon: QStyle.StandardPixmap, shortcut: str, slot: object
    ) -> QAction:
        action = QAction(self.style().standardIcon(icon), text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setToolTip(f"{text} ({QKeySequence(shortcut).toString()})")
        action.triggered.connect(lambda _checked=False: slot())  # type: ignore[operator]
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.act_add_file = self._action(
            "Add torrent file…", sp.SP_DialogOpenButton, "Ctrl+O", self.add_torrent_file
        )
        self.act_add_magnet = self._action(
            "Add magnet link…", sp.SP_DriveNetIcon, "Ctrl+U", self.add_magnet
        )
        self.act_create = self._action(
            "Create torrent…", sp.SP_FileDialogNewFolder, "Ctrl+N", self.create_torrent
        )
        self.act_resume = self._action("Start", sp.SP_MediaPlay, "Ctrl+S", self.resume_selected)
        self.act_pause = self._action("Pause", sp.SP_MediaPause, "Ctrl+P", self.pause_selected)
        self.act_remove = self._action("Remove", sp.SP_TrashIcon, "Delete", self.remove_selected)
        self.act_remove_files = self._action(
            "Remove with files",
            sp.SP_TrashIcon,
            "Shift+Delete",
            lambda: self.remove_selected(delete_files=True),
        )
        self.act_recheck = self._action(
            "Force recheck", sp.SP_BrowserReload, "", self.recheck_selected
        )
        # queue order (limits.max_active_*): qBittorrent's Move up/down/to top/to bottom
        self.act_queue_top = self._action(
            "Move to top", sp.SP_ArrowUp, "Ctrl+Shift+Home", lambda: self.queue_selected("top")
        )
        self.act_queue_up = self._action(
            "Move up", sp.SP_ArrowUp, "Ctrl+Shift+Up", lambda: self.queue_selected("up")
        )
        self.act_queue_down = self._action(
            "Move down", sp.SP_ArrowDown, "Ctrl+Shift+Down", lambda: self.queue_selected("down")
        )
        self.act_queue_bottom = self._action(
            "Move to bottom",
            sp.SP_ArrowDown,
            "Ctrl+Shift+End",
            lambda: self.queue_selected("bottom"),
        )
        self.act_settings = self._action(
            "Options…", sp.SP_FileDialogDetailedView, "Alt+O", self.open_settings
        )
        self.act_search = self._action(
            "Search", sp.SP_FileDialogContentsView, "Ctrl+F", self._focus_search
        )
        self.act_quit = self._action("Quit", sp.SP_DialogCloseButton, "Ctrl+Q", self.request_quit)
        self.act_select_all = self._action(
            "Select all", sp.SP_DialogYesButton, "Ctrl+A", self.table_select_all
        )

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.act_add_file, self.act_add_magnet, self.act_create):
            tb.addAction(action)
        tb.addSeparator()
        for action in (self.act_resume, self.act_pause, self.act_remove):
            tb.addAction(action)
        tb.addSeparator()
        for action in (self.act_queue_up, self.act_queue_down):
            tb.addAction(action)
        tb.addSeparator()
        tb.addAction(self.act_settings)
        spacer = QWidget()
        spacer.setSizePolicy(
            spacer.sizePolicy().Policy.Expanding, spacer.sizePolicy().Policy.Preferred
        )
        tb.addWidget(spacer)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter torrent names…")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(260)
        self.search.textChanged.connect(self.proxy.set_search)
        tb.addWidget(self.search)
        self.addToolBar(tb)

    def _build_layout(self) -> None:
        self.v_split = QSplitter(Qt.Orientation.Vertical)
        self.v_split.addWidget(self.table)
        self.v_split.addWidget(self.details)
        self.v_split.setStretchFactor(0, 3)
        self.v_split.setStretchFactor(1, 2)
        self.h_split = QSplitter(Qt.Orientation.Horizontal)
        self.h_split.addWidget(self.sidebar)
        self.h_split.addWidget(self.v_split)
        self.h_split.setStretchFactor(1, 1)
        self.h_split.setSizes([170, 1000])
        self.v_split.setSizes([400, 300])
        self.setCentralWidget(self.h_split)

    def _build_statusbar(self) -> None:
        bar = self.statusBar()
        # connection icon, DHT nodes, rates with totals, alt-speed button (widgets/statusbar.py)
        self.net_status = NetworkStatusBar()
        self.net_status.set_alt_speed(self.settings.limits.alt_enabled)
        self.net_status.altSpeedToggled.connect(self.set_alt_speed)
        self.rates_label = self.net_status.rates
        self.count_label = QLabel()
        self.port_label = QLabel()
        bar.addPermanentWidget(self.port_label)
        bar.addPermanentWidget(self.count_label)
        bar.addPermanentWidget(self.net_status)
        self.model.rowsInserted.connect(self._update_count)
        self.model.rowsRemoved.connect(self._update_count)
        self._update_count()

    def _connect_tray(self) -> None:
        self.tray.toggleWindow.connect(self.toggle_visible)
        self.tray.pauseAll.connect(self.pause_all)
        self.tray.resumeAll.connect(self.resume_all)
        self.tray.altSpeedToggled.connect(self.set_alt_speed)
        self.tray.quitRequested.connect(self.request_quit)
        self.tray.set_alt_speed(self.settings.limits.alt_enabled)
        self.tray.show()

    # -- remembered layout ------------------------------------------------------------
    def _restore_state(self) -> None:
        st = gui_state()
        header = st.value("main/header")
        if isinstance(header, QByteArray | bytes):
            h = self.table.horizontalHeader()
            h.restoreState(QByteArray(header))
            # restoreState sets the indicator without sorting; sort the model to match it
            self.table.sortByColumn(h.sortIndicatorSection(), h.sortIndicatorOrder())
        for key, widget in (("main/v_split", self.v_split), ("main/h_split", self.h_split)):
            value = st.value(key)
            if isinstance(value, QByteArray | bytes):
                widget.restoreState(QByteArray(value))
        geometry = st.value("main/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(QByteArray(geometry))
        tab = st.value("main/details_tab")
        if tab is not None:
            self.details.setCurrentIndex(int(tab))

    def save_state(self) -> None:
        st = gui_state()
        st.setValue("main/header", self.table.horizontalHeader().saveState())
        st.setValue("main/v_split", self.v_split.saveState())
        st.setValue("main/h_split", self.h_split.saveState())
        st.setValue("main/geometry", self.saveGeometry())
        st.setValue("main/details_tab", self.details.currentIndex())
        st.sync()

    def _column_menu(self, pos: QPoint) -> None:
        self.column_menu().popup(self.table.horizontalHeader().mapToGlobal(pos))

    def column_menu(self) -> QMenu:
        """Checkable list of columns; at least one stays visible."""
        header = self.table.horizontalHeader()
        menu = QMenu(self)
        for col in Column:
            action = menu.addAction(self.model.headerData(col, Qt.Orientation.Horizontal))
            action.setCheckable(True)
            action.setChecked(not header.isSectionHidden(col))
            action.toggled.connect(lambda on, c=col: self.set_column_visible(c, on))
        return menu

    def set_column_visible(self, column: Column, visible: bool) -> None:
        header = self.table.horizontalHeader()
        if not visible and header.count() - header.hiddenSectionCount() <= 1:
            return
        header.setSectionHidden(column, not visible)
        self.save_state()

    # -- engine state ------------------------------------------------------------
    def apply_snapshot(self, changed: list[TorrentStatus]) -> None:
        self.model.apply_snapshot(changed)
        current = self.details.info_hash
        if current is not None:
            row = self.model.row_of(current)
            if row is not None:
                self.details.refresh(self.model.status(row))
        elif self.proxy.rowCount() and not self.table.selectionModel().hasSelection():
            self.select_row(0)

    def on_engine_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.TorrentRemoved) and event.info_hash:
            if event.info_hash == self.details.info_hash:
                self.details.show_torrent(None)
            self.model.remove(event.info_hash)
        elif isinstance(event, ev.TorrentFinished):
            self.show_message(f"Download finished: {event.name}")
            if self.settings.ui.show_notifications:
                self.tray.notify("Download completed", f"“{event.name}” has finished downloading.")
        elif isinstance(event, ev.TorrentError):
            self.show_message(f"Error: {event.message}")
        elif isinstance(event, ev.PeerBanned):
            self.ban_clock.saw(event.address)
            self.show_message(f"Banned peer {event.address}: {event.reason}")
        elif isinstance(event, ev.AltSpeedChanged) and (
            event.enabled != self.settings.limits.alt_enabled
        ):
            self.set_alt_speed(event.enabled)  # the engine's schedule flipped it: follow

    def on_global_rates(self, down: float, up: float) -> None:
        self.net_status.set_rates(down, up)
        self.refresh_network()
        self.tray.set_rates(down, up)
        peers = sum(s.num_peers for s in self.model.statuses())
        self.details.add_session_sample(down, up, peers)

    def refresh_network(self) -> None:
        """Once per tick: one ``Session.network_status()`` call feeds the status bar's
        connection icon, DHT count and session totals (no walk over the torrents here).
        A controller stand-in without a session (tests) reads as no engine."""
        session = getattr(self.controller, "session", None)
        self.net_status.set_network(None if session is None else session.network_status())

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def set_port_note(self, text: str) -> None:
        self.port_label.setText(text)

    def _update_count(self) -> None:
        n = self.model.rowCount()
        self.count_label.setText(f"{n} torrent" if n == 1 else f"{n} torrents")

    def _handle(self, info_hash: str) -> HandleLike | None:
        return None if self.controller is None else self.controller.handle(info_hash)

    def _tracker_rows(self, info_hash: str) -> list[TrackerStatus]:
        return [] if self.controller is None else self.controller.trackers(info_hash)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            self.details.show_torrent(None)
            return
        row = self.model.row_of(current.data(HASH_ROLE))
        self.details.show_torrent(None if row is None else self.model.status(row))

    # -- selection and commands ------------------------------------------------------------
    def selected_hashes(self) -> list[str]:
        rows = self.table.selectionModel().selectedRows()
        return [str(i.data(HASH_ROLE)) for i in rows]

    def select_row(self, row: int) -> None:
        """Select one row of the (filtered, sorted) table and make it current.

        Not ``QTableView.selectRow``: in extended-selection mode that reads the live keyboard
        modifiers, so a held Ctrl would toggle the row off instead of selecting it.
        """
        index = self.proxy.index(row, 0)
        if not index.isValid():
            return
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
            | QItemSelectionModel.SelectionFlag.Current
        )
        self.table.selectionModel().setCurrentIndex(index, flags)

    def table_select_all(self) -> None:
        self.table.selectAll()

    def _row_menu(self, pos: QPoint) -> None:
        self.row_menu().popup(self.table.viewport().mapToGlobal(pos))

    def row_menu(self) -> QMenu:
        """The torrent list's context menu (qBittorrent's most used entries)."""
        menu = QMenu(self)
        hashes = self.selected_hashes()
        if not hashes:
            return menu
        for action in (
            self.act_resume,
            self.act_pause,
            None,
            self.act_remove,
            self.act_remove_files,
            None,
        ):
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.addAction("Open destination folder", self.open_destination)
        menu.addAction("Copy magnet link", self.copy_magnet_links)
        menu.addSeparator()
        rows = [r for r in (self.model.row_of(h) for h in hashes) if r is not None]
        sequential = menu.addAction("Download in sequential order")
        sequential.setCheckable(True)
        sequential.setChecked(all(self.model.status(r).sequential for r in rows))
        sequential.toggled.connect(self.set_sequential_selected)
        menu.addAction("Limit rates…", self.limit_rates_selected)
        menu.addAction(self.act_recheck)
        queue = menu.addMenu("Queue")
        for action in (
            self.act_queue_top,
            self.act_queue_up,
            self.act_queue_down,
            self.act_queue_bottom,
        ):
            queue.addAction(action)
        return menu

    def open_destination(self) -> None:
        for h in self.selected_hashes()[:5]:  # never open dozens of windows at once
            row = self.model.row_of(h)
            if row is not None:
                QDesktopServices.openUrl(QUrl.fromLocalFile(self.model.status(row).save_path))

    def copy_magnet_links(self) -> str:
        """Magnet links of the selection to the clipboard (and returned, for tests)."""
        links = []
        for h in self.selected_hashes():
            handle = self.controller.handle(h) if self.controller is not None else None
            if handle is None:
                continue
            try:
                links.append(magnet_link(handle.info))
            except SessionError:  # a magnet still fetching its metadata: no info dict yet
                urls = [t.url for t in sorted(handle.trackers(), key=lambda t: t.tier)]
                links.append(pending_magnet_link(handle.status(), urls))
        text = "\n".join(links)
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def set_sequential_selected(self, value: bool) -> None:
        if self.controller is not None:
            self.controller.set_sequential(self.selected_hashes(), value)

    def limit_rates_selected(self) -> None:
        hashes = self.selected_hashes()
        rows = [r for r in (self.model.row_of(h) for h in hashes) if r is not None]
        if not rows or self.controller is None:
            return
        first = self.model.status(rows[0])
        dialog = RateLimitDialog(first.download_limit, first.upload_limit, self)
        self._open_dialogs.append(dialog)

        def done(result: int) -> None:
            self._open_dialogs.remove(dialog)
            if result == QDialog.DialogCode.Accepted and self.controller is not None:
                down, up = dialog.limits()
                self.controller.set_limits(hashes, down, up)

        dialog.finished.connect(done)
        dialog.open()

    def resume_selected(self) -> None:
        if self.controller is not None:
            self.controller.resume(self.selected_hashes())

    def pause_selected(self) -> None:
        if self.controller is not None:
            self.controller.pause(self.selected_hashes())

    def recheck_selected(self) -> None:
        if self.controller is not None:
            self.controller.recheck(self.selected_hashes())

    def queue_selected(self, direction: QueueDirection) -> None:
        if self.controller is not None:
            self.controller.queue_move(self.selected_hashes(), direction)

    def pause_all(self) -> None:
        if self.controller is not None:
            self.controller.pause(self.controller.all_hashes())

    def resume_all(self) -> None:
        if self.controller is not None:
            self.controller.resume(self.controller.all_hashes())

    def remove_selected(self, *, delete_files: bool = False) -> None:
        hashes = self.selected_hashes()
        if not hashes or self.controller is None:
            return
        if self.settings.ui.confirm_on_remove or delete_files:
            names = [
                self.model.status(r).name
                for r in (self.model.row_of(h) for h in hashes)
                if r is not None
            ]
            dialog = RemoveDialog(names, self)
            dialog.delete_files.setChecked(delete_files)
            self._open_dialogs.append(dialog)

            def done(result: int) -> None:
                self._open_dialogs.remove(dialog)
                if result == QDialog.DialogCode.Accepted and self.controller is not None:
                    self.controller.remove(hashes, delete_files=dialog.delete_files.isChecked())

            dialog.finished.connect(done)
            dialog.open()
            return
        self.controller.remove(hashes, delete_files=False)

    def set_alt_speed(self, enabled: bool) -> None:
        """Switch alternative limits now (applied live; not written to the config file).

        The engine owns the switch (``Session.set_alt_speed``, reached through the controller)
        and its schedule; its ``AltSpeedChanged`` events bring the tray back in line.
        """
        from ccbt_engine.config import update_settings

        self.settings = update_settings(self.settings, {"limits.alt_enabled": enabled})
        self.tray.set_alt_speed(enabled)
        self.net_status.set_alt_speed(enabled)
        if self.controller is not None:
            self.controller.set_settings(self.settings)
        self.show_message("Alternative speed limits " + ("on" if enabled else "off"))

    def apply_settings(self, settings: Settings, changes: dict[str, object]) -> None:
        """After the settings dialog: apply to the running engine (``Session.apply_settings``),
        say what only affects torrents added later. An engine failure (a busy port) arrives as a
        status-bar message from the controller."""
        self.settings = settings
        self.tray.set_alt_speed(settings.limits.alt_enabled)
        self.net_status.set_alt_speed(settings.limits.alt_enabled)
        if self.controller is not None:
            self.controller.set_settings(settings)
        if "ui.theme" in changes:
            from ccbt_gui.theme import apply_theme, chart_colors

            app = QApplication.instance()
            if isinstance(app, QApplication):
                mode = apply_theme(app, settings.ui.theme)
                self.details.speed.set_colors(*chart_colors(mode))
        # Session.apply_settings applies everything live; disk settings (preallocation, file
        # handles, where state lives) are read when a torrent is added, so say so
        later = sorted(k for k in changes if k.startswith("disk."))
        if later:
            self.show_message(
                "Saved and applied. Applies to torrents added from now on: " + ", ".join(later),
                15000,
            )
        elif changes:
            self.show_message("Settings saved and applied")

    def open_settings(self) -> QDialog:
        from ccbt_gui.dialogs.settings import SettingsDialog

        dialog = SettingsDialog(
            self.settings,
            user_config_path(),
            self,
            overridden=overridden_keys(),
            show_bans=self.open_bans,
        )
        dialog.applied.connect(self.apply_settings)
        self._open_dialogs.append(dialog)
        dialog.finished.connect(lambda _r: self._open_dialogs.remove(dialog))
        dialog.open()
        return dialog

    # -- bans (ccbt_gui/dialogs/bans.py) ------------------------------------------------------
    def ban_rows(self, _info_hash: str = "") -> list[BanRow]:
        """The session's bans as rows (a ban covers every torrent, so ``_info_hash`` is moot)."""
        session = None if self.controller is None else self.controller.session
        if session is None:
            return []
        duration = float(self.settings.security.ban_duration)
        return self.ban_clock.rows(session.banned_peers(), duration, time.time())

    def unban_peer(self, address: str) -> None:
        session = None if self.controller is None else self.controller.session
        if session is not None and session.unban_peer(address):
            self.ban_clock.forget(address)
            self.show_message(f"Unbanned {address}")
        self.details.refresh_bans()

    def open_bans(self) -> QDialog | None:
        from ccbt_gui.dialogs.bans import BannedPeersDialog

        session = None if self.controller is None else self.controller.session
        if session is None:
            self.show_message("The engine is not running")
            return None
        dialog = BannedPeersDialog(
            session, self.ban_clock, lambda: float(self.settings.security.ban_duration), self
        )
        dialog.table.unbanRequested.connect(lambda _a: self.details.refresh_bans())
        self._open_dialogs.append(dialog)
        dialog.finished.connect(lambda _r: self._open_dialogs.remove(dialog))
        dialog.open()
        return dialog

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # -- window and tray ------------------------------------------------------------
    def bring_to_front(self) -> None:
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.raise_()
        self.activateWindow()

    def toggle_visible(self) -> None:
        if self.isVisible() and not self.isMinimized():
            self.hide()
        else:
            self.bring_to_front()

    def request_quit(self) -> None:
        self._quitting = True
        self.save_state()
        self.tray.hide()
        if self.on_quit is not None:
            self.on_quit()
            return
        app = QApplication.instance()
        if app is not None:
            app.quit()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        if not self._quitting and self.settings.ui.close_to_tray and self.tray.available():
            event.ignore()
            self.hide()
            self.tray.notify(CLIENT_NAME, "Still running in the tray")
            return
        event.accept()
        if not self._quitting and self.controller is not None:
            self.request_quit()
