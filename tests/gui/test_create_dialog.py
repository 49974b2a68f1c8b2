"""Create-torrent dialog: hashes on a worker thread, writes a loadable .torrent, offers seeding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccbt_engine.metainfo import load_torrent
from ccbt_gui.dialogs.create_torrent import CreateTorrentDialog


def test_create_writes_a_valid_torrent(qtbot: Any, run_async: Any, tmp_path: Path) -> None:
    src = tmp_path / "share"
    src.mkdir()
    (src / "a.txt").write_bytes(b"x" * 70_000)
    out = tmp_path / "share.torrent"
    dialog = CreateTorrentDialog()
    qtbot.addWidget(dialog)
    dialog.trackers.setPlainText("http://127.0.0.1:6969/announce\n\nudp://127.0.0.1:6969\n")
    dialog.private.setChecked(True)
    created: list[tuple[str, bool, str]] = []
    dialog.created.connect(lambda p, seed, d: created.append((p, seed, d)))
    assert dialog.tiers() == [["http://127.0.0.1:6969/announce"], ["udp://127.0.0.1:6969"]]

    async def body() -> None:
        await dialog.create_to(src, out)

    run_async(body())
    meta = load_torrent(out)
    assert meta.info.name == "share"
    assert meta.info.private
    assert meta.trackers == (("http://127.0.0.1:6969/announce",), ("udp://127.0.0.1:6969",))
    assert created == [(str(out), True, str(tmp_path))]
    assert dialog.progress.value() == 1000


def test_a_source_in_an_unknown_users_home_is_refused_with_a_reason(qtbot: Any) -> None:
    dialog = CreateTorrentDialog()
    qtbot.addWidget(dialog)
    dialog.source.setText("~ccbt-no-such-user/share")
    dialog._start()  # the Create button's slot; was a RuntimeError traceback
    assert "no home folder for '~ccbt-no-such-user'" in dialog.progress.format()
    assert dialog.create_button.isEnabled()
