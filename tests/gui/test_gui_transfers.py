"""Real transfers through the GUI: a libtorrent seeder on loopback, a real ccbt Session inside the
GUI's controller, and the user's own paths in (the add dialog, a dropped magnet link) and out (the
torrent table model, the details tabs). Nothing here talks to anything but 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDropEvent

from ccbt_engine.config import load_settings
from ccbt_engine.magnet import Magnet
from ccbt_gui.controller import EngineController
from ccbt_gui.dialogs.add_torrent import AddTorrentDialog
from ccbt_gui.main_window import MainWindow
from ccbt_gui.models.files import FileColumn
from ccbt_gui.models.torrents import Column
from ccbt_gui.widgets.details import DetailsPane
from tests.interop import refpeers
from tests.interop.refpeers import LibtorrentPeer, MadeTorrent, make_torrent, sha256_tree

PIECE = 32 * 1024
SIZE = 1536 * 1024  # payload bytes (a hybrid .torrent's total also counts pad files)


@pytest.fixture(autouse=True)
def fast_ticks_and_cleanup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Ticks every 100 ms; no libtorrent process outlives its test."""
    monkeypatch.setenv("CCBT_UI_SNAPSHOT_INTERVAL_MS", "100")
    yield
    pids = refpeers.live_pids()
    refpeers.stop_all()
    assert not refpeers.live_pids(), f"reference peers left running: {pids}"


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[MadeTorrent, refpeers.MiniTracker]]:
    """A 1.5 MiB, 5-file payload and its .torrent (made by libtorrent, not ccbt), announcing to
    a running loopback tracker so the Trackers tab has a real tracker to report on."""
    with refpeers.MiniTracker() as tracker:
        payload = refpeers.make_payload(tmp_path / "seed", SIZE, 5, seed=7)
        torrent = tmp_path / "p.torrent"
        yield make_torrent(payload, tracker.announce_url, PIECE, torrent, "hybrid"), tracker


async def _until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def _row_text(window: MainWindow, info_hash: str, column: Column) -> str | None:
    row = window.model.row_of(info_hash)
    if row is None:
        return None
    return str(window.model.index(row, column).data())


@contextlib.asynccontextmanager
async def _seeder(made: MadeTorrent, port: int = 0) -> AsyncIterator[LibtorrentPeer]:
    """A libtorrent seeder, started and stopped off the event loop (both block a while)."""
    loop = asyncio.get_running_loop()
    peer = LibtorrentPeer(made.path, made.save_path, seed=True, port=port)
    try:
        await loop.run_in_executor(None, peer.start)
        yield peer
    finally:
        await loop.run_in_executor(None, peer.stop)


async def _window(qtbot: Any) -> tuple[EngineController, MainWindow]:
    controller = EngineController(load_settings())
    await controller.start()  # a busy 6881 falls back to a random port, as for users
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.show()
    return controller, window


def test_torrent_file_completes_from_libtorrent_in_the_table(
    qtbot: Any, run_async: Any, tmp_path: Path, seeded: tuple[MadeTorrent, Any]
) -> None:
    made, tracker = seeded
    dl = tmp_path / "dl"

    async def body() -> None:
        controller, window = await _window(qtbot)
        try:
            async with _seeder(made) as seeder:
                # the user's path: a .torrent (open / drop / second launch) -> add dialog -> OK
                window.handle_items([str(made.path)])
                dialog = window._open_dialogs[-1]
                assert isinstance(dialog, AddTorrentDialog)
                dialog.save_path.setText(str(dl))
                dialog.accept()
                ih = made.info_hash.hex()
                await _until(lambda: window.model.row_of(ih) is not None, "the torrent's row")
                handle = controller.handle(ih)
                assert handle is not None
                handle.connect_peer("127.0.0.1", seeder.port)
                await _until(
                    lambda: (
                        _row_text(window, ih, Column.STATUS) == "Seeding"
                        and _row_text(window, ih, Column.PROGRESS) == "100.0%"
                    ),
                    "the row to show Seeding at 100%",
                )
                row = window.model.row_of(ih)
                assert row is not None
                assert window.model.status(row).selected_size == SIZE
                # Files tab: every file at 100 %, from FileStatus.done
                window.select_row(window.proxy.mapFromSource(window.model.index(row, 0)).row())
                window.details.setCurrentIndex(DetailsPane.FILES)
                files = window.details.file_model
                await _until(lambda: files.file_count() == 5, "the file tree")
                top = files.index(0, FileColumn.PROGRESS)
                assert top.data() == "100.0%"
                # Trackers tab: the engine's own tracker state, not URLs from the file
                window.details.setCurrentIndex(DetailsPane.TRACKERS)
                trackers = window.details.tracker_model
                await _until(
                    lambda: trackers.rowCount() == 1 and trackers.index(0, 2).data() == "Working",
                    "the tracker to report working",
                )
                assert trackers.index(0, 1).data() == tracker.announce_url
            assert sha256_tree(dl / made.name) == sha256_tree(made.save_path / made.name)
        finally:
            await controller.stop()

    run_async(body(), timeout=50)


def test_dropped_magnet_fetches_metadata_and_completes_in_the_table(
    qtbot: Any, run_async: Any, tmp_path: Path, seeded: tuple[MadeTorrent, Any]
) -> None:
    made, _tracker = seeded
    dl = tmp_path / "remembered"

    async def body() -> None:
        controller, window = await _window(qtbot)
        try:
            # the add-magnet dialog remembers its folder; a dropped magnet later uses it
            dialog = window.add_magnet()
            dialog.save_path.setText(str(dl))
            dialog.edit.setPlainText("")
            dialog.accept()
            async with _seeder(made) as seeder:
                uri = Magnet(
                    info_hash_v1=made.info_hash_v1,
                    info_hash_v2=made.info_hash_v2,
                    display_name=made.name,
                    peers=[("127.0.0.1", seeder.port)],
                ).to_uri()  # no tr=: the only peer is the x.pe one
                mime = QMimeData()
                mime.setText(f"some text\n{uri}\n")
                drop = QDropEvent(
                    QPointF(5, 5),
                    Qt.DropAction.CopyAction,
                    mime,
                    Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier,
                )
                window.dropEvent(drop)
                ih = made.info_hash.hex()
                await _until(lambda: window.model.row_of(ih) is not None, "the magnet's row")
                window.select_row(0)
                window.details.setCurrentIndex(DetailsPane.FILES)
                await _until(
                    lambda: (
                        _row_text(window, ih, Column.STATUS) == "Seeding"
                        and _row_text(window, ih, Column.PROGRESS) == "100.0%"
                    ),
                    "the magnet's row to show Seeding at 100%",
                )
                # the same row (the handle stayed valid), now with the files from the metadata
                assert window.model.rowCount() == 1
                assert _row_text(window, ih, Column.NAME) == made.name
                assert _row_text(window, ih, Column.SIZE) == "1.5 MiB"
                await _until(lambda: window.details.file_model.file_count() == 5, "files")
            assert sha256_tree(dl / made.name) == sha256_tree(made.save_path / made.name)
        finally:
            await controller.stop()

    run_async(body(), timeout=50)


def test_magnets_waiting_for_metadata(qtbot: Any, run_async: Any) -> None:
    """No peer answers: the rows stay in "metadata", named from dn or else the info hash,
    with no size, no files, and a copyable magnet link."""
    named = "0123456789abcdef0123456789abcdef01234567"
    bare = "89abcdef0123456789abcdef0123456789abcdef"

    async def body() -> None:
        controller, window = await _window(qtbot)
        try:
            dialog = window.add_magnet()
            dialog.edit.setPlainText(
                f"magnet:?xt=urn:btih:{named}&dn=Some%20Thing\nmagnet:?xt=urn:btih:{bare}\n"
            )
            dialog.accept()
            await _until(lambda: window.model.rowCount() == 2, "two rows")
            assert _row_text(window, named, Column.NAME) == "Some Thing"
            assert bare in str(_row_text(window, bare, Column.NAME))
            for ih in (named, bare):
                assert _row_text(window, ih, Column.STATUS) == "Downloading metadata"
                assert _row_text(window, ih, Column.PROGRESS) == "0.0%"
                assert _row_text(window, ih, Column.SIZE) == ""
            row = window.model.row_of(named)
            assert row is not None
            window.select_row(window.proxy.mapFromSource(window.model.index(row, 0)).row())
            window.details.setCurrentIndex(DetailsPane.FILES)
            assert window.details.file_model.file_count() == 0
            assert "Waiting for metadata" in window.details._files_empty.text()
            window.details.setCurrentIndex(DetailsPane.GENERAL)
            assert window.details._fields["status"].text() == "Downloading metadata"
            link = window.copy_magnet_links()
            assert link.startswith(f"magnet:?xt=urn:btih:{named}") and "dn=Some" in link
            # adding one again is refused by the engine; the user is told
            window.handle_items([f"magnet:?xt=urn:btih:{bare}"])
            await _until(lambda: "already" in window.statusBar().currentMessage(), "refusal")
            controller.remove([named, bare], delete_files=False)
            await _until(lambda: window.model.rowCount() == 0, "the rows to go")
        finally:
            await controller.stop()

    run_async(body())
