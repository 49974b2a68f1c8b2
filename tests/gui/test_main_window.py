"""Main window behaviour without an engine: drops, magnets, columns, search, shortcuts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from ccbt_gui.main_window import MainWindow
from ccbt_gui.models.torrents import Category, Column
from tests.gui.conftest import changed, make_status

MAGNET = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=Some%20Thing"


def _window(qtbot: Any) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    return win


def test_dropped_items_accepts_torrent_files_and_magnet_text(qtbot: Any) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile("/tmp/a.torrent"), QUrl.fromLocalFile("/tmp/b.iso")])
    mime.setText(f"hello\n{MAGNET}\n")
    assert MainWindow.dropped_items(mime) == ["/tmp/a.torrent", MAGNET]
    empty = QMimeData()
    empty.setText("not a link")
    assert MainWindow.dropped_items(empty) == []


def test_drop_of_magnet_without_engine_says_so(qtbot: Any, capsys: Any) -> None:
    """With an engine the magnet is added (tests/gui/test_gui_transfers.py); without one the
    window says why nothing happened instead of failing silently."""
    win = _window(qtbot)
    received: list[list[str]] = []
    win.itemsReceived.connect(received.append)
    mime = QMimeData()
    mime.setText(MAGNET)
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.dropEvent(event)
    assert received == [[MAGNET]]
    assert not win._open_dialogs
    assert "engine is not running" in win.statusBar().currentMessage()
    assert f"magnet received: {MAGNET}" in capsys.readouterr().out


def test_invalid_magnet_says_why(qtbot: Any) -> None:
    win = _window(qtbot)
    win.handle_items(["magnet:?dn=no-hash"])
    box = win._open_dialogs[-1]
    assert isinstance(box, QMessageBox)
    assert box.text().startswith("This is not a valid magnet link")


def test_bad_torrent_file_is_reported(qtbot: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"not bencode")
    win = _window(qtbot)
    win.handle_items([str(bad)])
    box = win._open_dialogs[-1]
    assert isinstance(box, QMessageBox) and "not a usable .torrent" in box.text()


def test_column_chooser_hides_columns_and_layout_is_remembered(qtbot: Any) -> None:
    win = _window(qtbot)
    header = win.table.horizontalHeader()
    menu = win.column_menu()
    ratio = next(a for a in menu.actions() if a.text() == "Ratio")
    assert ratio.isChecked()
    ratio.setChecked(False)
    assert header.isSectionHidden(Column.RATIO)
    header.resizeSection(Column.NAME, 411)
    win.table.sortByColumn(Column.SIZE, Qt.SortOrder.DescendingOrder)
    win.save_state()
    again = _window(qtbot)
    h2 = again.table.horizontalHeader()
    assert h2.isSectionHidden(Column.RATIO)
    assert h2.sectionSize(Column.NAME) == 411
    assert h2.sortIndicatorSection() == Column.SIZE
    again.apply_snapshot([make_status(1), make_status(5)])
    assert again.proxy.index(0, Column.NAME).data() == "torrent 005"  # sorted by size, desc
    assert not next(a for a in again.column_menu().actions() if a.text() == "Ratio").isChecked()


def test_last_visible_column_cannot_be_hidden(qtbot: Any) -> None:
    win = _window(qtbot)
    for col in Column:
        win.set_column_visible(col, False)
    header = win.table.horizontalHeader()
    assert header.count() - header.hiddenSectionCount() == 1


def test_search_box_and_sidebar_filter_the_table(qtbot: Any) -> None:
    win = _window(qtbot)
    statuses = [make_status(i) for i in range(3)]
    win.apply_snapshot(statuses)
    win.apply_snapshot([changed(statuses[1], name="Debian ISO", state="paused")])
    assert win.sidebar.item(4).text() == "Paused (1)"
    qtbot.keyClicks(win.search, "debian")
    assert win.proxy.rowCount() == 1
    win.search.clear()
    win.sidebar.select(Category.DOWNLOADING)
    assert win.proxy.rowCount() == 2
    win.sidebar.select(None)
    assert win.proxy.rowCount() == 3


def test_shortcuts_are_bound(qtbot: Any) -> None:
    win = _window(qtbot)
    shortcuts = {a.text(): a.shortcut().toString() for a in win.actions()}
    assert shortcuts["Add torrent file…"] == "Ctrl+O"
    assert shortcuts["Add magnet link…"] == "Ctrl+U"
    assert shortcuts["Start"] == "Ctrl+S"
    assert shortcuts["Pause"] == "Ctrl+P"
    assert shortcuts["Remove"] == "Del"
    assert shortcuts["Options…"] == "Alt+O"
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    win.table.setFocus()
    qtbot.keyClick(win.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert win.focusWidget() is win.search
