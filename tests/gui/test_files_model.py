"""File priorities: the Files tree edits reach a real engine torrent through its handle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QDialog

from ccbt_engine.api import FileStatus, Session
from ccbt_engine.config import load_settings
from ccbt_engine.metainfo import load_torrent
from ccbt_gui.dialogs.add_torrent import AddTorrentDialog
from ccbt_gui.dialogs.magnet import remembered_save_path
from ccbt_gui.models.files import HIGH, NORMAL, SKIP, FileColumn, FileTreeModel


def _find(model: FileTreeModel, *names: str) -> QModelIndex:
    parent = QModelIndex()
    for name in names:
        for row in range(model.rowCount(parent)):
            idx = model.index(row, 0, parent)
            if idx.data() == name:
                parent = idx
                break
        else:
            raise AssertionError(f"{name} not found")
    return parent


def test_tree_edits_call_set_file_priorities_on_a_real_torrent(
    qapp: Any, run_async: Any, small_torrent: tuple[Path, Path], tmp_path: Path
) -> None:
    _data, torrent = small_torrent

    async def body() -> None:
        async with Session(load_settings(), listen_port=0) as session:
            handle = await session.add_torrent(torrent, tmp_path / "dl", paused=True)
            model = FileTreeModel()
            model.set_files(handle.files())
            model.prioritiesChanged.connect(handle.set_file_priorities)
            by_path = {f.path: f.index for f in handle.files()}

            # uncheck one file -> priority 0 in the engine
            a = _find(model, "album", "cd1", "a.bin")
            assert model.setData(a, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
            prios = {f.path: f.priority for f in handle.files()}
            assert prios["album/cd1/a.bin"] == SKIP
            assert prios["album/cd1/b.bin"] == NORMAL
            cd1 = _find(model, "album", "cd1")
            assert cd1.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.PartiallyChecked

            # a folder's priority applies to every file below it
            prio_cell = model.index(cd1.row(), FileColumn.PRIORITY, cd1.parent())
            assert model.setData(prio_cell, HIGH, Qt.ItemDataRole.EditRole)
            prios = {f.path: f.priority for f in handle.files()}
            assert prios["album/cd1/a.bin"] == HIGH and prios["album/cd1/b.bin"] == HIGH
            assert prios["album/notes.txt"] == NORMAL
            assert prio_cell.data() == "High"
            album_prio = model.index(0, FileColumn.PRIORITY)
            assert album_prio.data() == "Mixed"

            # the engine's wanted size follows (whole pieces: cd1 alone fills pieces 0-3)
            status = handle.status()
            assert status.wanted_size == status.total_size
            assert status.selected_size == 75_000
            model.setData(cd1, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
            assert handle.files()[by_path["album/cd1/b.bin"]].priority == SKIP
            assert handle.status().wanted_size < status.total_size
            assert handle.status().selected_size == 5_000 == model.selected_size()  # notes.txt
            # re-checking a folder restores Normal, not the old High
            model.setData(cd1, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
            assert handle.files()[by_path["album/cd1/a.bin"]].priority == NORMAL

    run_async(body())


def test_pad_files_are_hidden_and_keep_their_priority(qapp: Any) -> None:
    files = [
        FileStatus(0, "t/a", 10, 4, False),
        FileStatus(1, "t/.pad/5", 5, 4, True),
        FileStatus(2, "t/b", 10, 4, False),
    ]
    model = FileTreeModel()
    model.set_files(files)
    seen: list[list[int]] = []
    model.prioritiesChanged.connect(seen.append)
    assert model.rowCount(_find(model, "t")) == 2
    model.setData(_find(model, "t"), 0, Qt.ItemDataRole.CheckStateRole)
    assert seen == [[0, 4, 0]]


def test_add_dialog_returns_selection_and_options(
    qapp: Any, qtbot: Any, small_torrent: tuple[Path, Path], tmp_path: Path
) -> None:
    _data, torrent = small_torrent
    dialog = AddTorrentDialog(load_torrent(torrent), str(tmp_path / "first"))
    qtbot.addWidget(dialog)
    dialog.model.setData(
        _find(dialog.model, "album", "notes.txt"), 0, Qt.ItemDataRole.CheckStateRole
    )
    dialog.paused.setChecked(True)
    dialog.sequential.setChecked(True)
    dialog.save_path.setText(str(tmp_path / "chosen"))
    req = dialog.request()
    assert req.paused and req.sequential
    assert req.file_priorities.count(SKIP) == 1
    assert dialog.size_label.text().startswith("68.4 KiB selected of 73.2 KiB")
    dialog.accept()
    # the save folder is remembered for the next dialog
    again = AddTorrentDialog(load_torrent(torrent), str(tmp_path / "first"))
    qtbot.addWidget(again)
    assert again.save_path.text() == str(tmp_path / "chosen")


def test_add_dialogs_refuse_a_home_folder_this_system_does_not_have(
    qapp: Any, qtbot: Any, small_torrent: tuple[Path, Path], tmp_path: Path
) -> None:
    # "~nobody-here/x" used to raise RuntimeError inside OK's slot: the dialog stayed open
    # with no word why (a traceback on stderr)
    _data, torrent = small_torrent
    remembered = str(tmp_path / "kept")
    add = AddTorrentDialog(load_torrent(torrent), remembered)
    for dialog in (add,):  # the magnet dialog's OK runs the same save_path_accepted
        qtbot.addWidget(dialog)
        dialog.save_path.setText("~ccbt-no-such-user/x")
        dialog.accept()
        assert dialog.result() != QDialog.DialogCode.Accepted  # stays open
        assert not dialog.path_error.isHidden()
        assert "no home folder for '~ccbt-no-such-user'" in dialog.path_error.text()
        dialog.save_path.setText("~/ok")
        dialog.accept()
        assert dialog.result() == QDialog.DialogCode.Accepted
        assert remembered_save_path("") == str(Path("~").expanduser() / "ok")
