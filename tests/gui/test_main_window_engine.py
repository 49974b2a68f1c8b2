"""The main window on a real engine session: snapshots fill the table, commands reach torrents."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.config import load_settings
from ccbt_engine.metainfo import load_torrent
from ccbt_gui.controller import EngineController
from ccbt_gui.dialogs.add_torrent import AddTorrentDialog
from ccbt_gui.dialogs.torrent_options import RateLimitDialog, RemoveDialog
from ccbt_gui.main_window import MainWindow
from ccbt_gui.models.torrents import Category, Column
from tests.interop.refpeers import free_port


async def _until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def fast_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCBT_UI_SNAPSHOT_INTERVAL_MS", "100")


def test_torrent_lifecycle_through_the_window(
    qtbot: Any, run_async: Any, small_torrent: tuple[Path, Path]
) -> None:
    data, torrent = small_torrent

    async def body() -> None:
        controller = EngineController(load_settings())
        await controller.start()  # a busy 6881 falls back to a random port; fine here
        window = MainWindow(controller)
        qtbot.addWidget(window)
        window.show()
        try:
            # a .torrent path (command line / second launch / drop) opens the add dialog
            window.handle_items([str(torrent)])
            dialog = window._open_dialogs[-1]
            assert isinstance(dialog, AddTorrentDialog)
            dialog.save_path.setText(str(data.parent))
            dialog.accept()
            await _until(lambda: window.model.rowCount() == 1, "the row")
            info_hash = load_torrent(torrent).info.info_hash.hex()
            row = window.model.row_of(info_hash)
            assert row is not None
            await _until(
                lambda: window.model.status(window.model.row_of(info_hash) or 0).state == "seeding",
                "seeding (payload already on disk)",
            )
            assert window.model.category_count(Category.SEEDING) == 1
            assert window.sidebar.item(2).text() == "Seeding (1)"
            assert window.proxy.index(0, Column.PROGRESS).data() == "100.0%"
            # the details pane follows the current row
            window.select_row(0)
            assert window.selected_hashes() == [info_hash]
            assert window.details.info_hash == info_hash
            assert window.details._fields["hash_v1"].text() == info_hash

            # tray "Pause all" pauses it in the engine; "Resume all" resumes it
            window.tray.pause_action.trigger()
            await _until(lambda: controller.statuses()[0].state == "paused", "paused")
            await _until(lambda: window.model.category_count(Category.PAUSED) == 1, "model")
            window.tray.resume_action.trigger()
            await _until(lambda: controller.statuses()[0].state != "paused", "resumed")

            # context menu: magnet link, sequential order, per-torrent limits
            texts = [a.text() for a in window.row_menu().actions() if not a.isSeparator()]
            assert "Copy magnet link" in texts and "Limit rates…" in texts
            link = window.copy_magnet_links()
            assert link.startswith(f"magnet:?xt=urn:btih:{info_hash}")
            assert link.endswith("&dn=album")
            seq = next(
                a for a in window.row_menu().actions() if a.text() == "Download in sequential order"
            )
            assert not seq.isChecked()
            seq.trigger()
            assert controller.statuses()[0].sequential
            window.limit_rates_selected()
            limits = window._open_dialogs[-1]
            assert isinstance(limits, RateLimitDialog)
            limits.down.setValue(50)
            limits.accept()
            assert controller.statuses()[0].download_limit == 50 * 1024
            assert controller.statuses()[0].upload_limit == 0

            # remove asks first; cancel keeps it, OK removes it (files stay: box unchecked)
            window.remove_selected()
            ask = window._open_dialogs[-1]
            assert isinstance(ask, RemoveDialog)
            ask.reject()
            await asyncio.sleep(0.2)
            assert window.model.rowCount() == 1
            window.remove_selected()
            ask = window._open_dialogs[-1]
            assert isinstance(ask, RemoveDialog)
            assert not ask.delete_files.isChecked()
            ask.accept()
            await _until(lambda: window.model.rowCount() == 0, "row removed")
            assert (data / "notes.txt").exists()
            assert window.details.info_hash is None
        finally:
            await controller.stop()

    run_async(body())


def test_busy_port_falls_back_to_random(qtbot: Any, run_async: Any) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]

    async def body() -> None:
        settings = load_settings(overrides={"network.listen_port": port})
        controller = EngineController(settings)
        note = await controller.start()
        try:
            assert note is not None and f"Port {port} is busy" in note
            assert controller.session is not None
            assert controller.session.listen_port not in (0, port)
        finally:
            await controller.stop()

    try:
        run_async(body())
    finally:
        blocker.close()


def test_settings_apply_live_to_the_session(qtbot: Any, run_async: Any) -> None:
    from ccbt_engine.config import update_settings

    async def body() -> None:
        controller = EngineController(load_settings())
        await controller.start()
        session = controller.session
        assert session is not None
        limits: list[tuple[int | None, int | None]] = []
        real = session.set_limits

        def spy(download: int | None = None, upload: int | None = None) -> None:
            limits.append((download, upload))
            real(download, upload)

        session.set_limits = spy  # type: ignore[method-assign]
        try:
            task = controller._snap_task
            changes = controller.set_settings(
                update_settings(
                    controller.settings,
                    {"limits.global_down_kib": 100, "ui.snapshot_interval_ms": 250},
                )
            )
            assert set(changes) == {"limits.global_down_kib", "ui.snapshot_interval_ms"}
            assert limits == [(100 * 1024, 0)]
            assert controller._snap_task is not task  # the stream restarted at the new rate
            assert controller.applying is not None
            await controller.applying  # Session.apply_settings got the whole set
            assert session.settings.limits.global_down_kib == 100
            controller.set_settings(
                update_settings(controller.settings, {"limits.alt_enabled": True})
            )
            await controller.applying
            # the alternative limits' defaults, still in force after the engine applied the set
            assert session.alt_speed
            assert session.global_limits() == (1024 * 1024, 256 * 1024)
            assert session._core.down_bucket.rate == 1024 * 1024
            # engine keys apply live too: peer limits, and the listen port (listeners restart)
            port = free_port()
            controller.set_settings(
                update_settings(
                    controller.settings, {"network.max_half_open": 7, "network.listen_port": port}
                )
            )
            await controller.applying
            assert session.settings.network.max_half_open == 7
            assert session.listen_port == port
            # a failure (the port is taken) becomes a status-bar message, not an exception
            messages: list[str] = []
            controller.message.connect(messages.append)
            with socket.socket() as blocker:
                blocker.bind(("127.0.0.1", 0))
                blocker.listen()
                busy = blocker.getsockname()[1]
                controller.set_settings(
                    update_settings(controller.settings, {"network.listen_port": busy})
                )
                await asyncio.gather(controller.applying, return_exceptions=True)
            assert messages and messages[-1].startswith("Applying settings failed")
        finally:
            await controller.stop()

    run_async(body())
