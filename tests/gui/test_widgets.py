"""Details pane, pieces bar and formatting helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import QStackedLayout

from ccbt_engine.api import FileStatus, PeerStatus, TrackerStatus
from ccbt_gui import formatting as fmt
from ccbt_gui.models.trackers import TrackerTableModel
from ccbt_gui.widgets.details import DetailsPane
from ccbt_gui.widgets.pieces_bar import PiecesBar, piece_fractions
from tests.gui.conftest import changed, make_status


class Handle:
    def __init__(self, info_hash: str) -> None:
        self.info_hash = info_hash
        self.sent: list[list[int]] = []
        self.file_list = [
            FileStatus(0, "t/a", 10, 4, False, 10),
            FileStatus(1, "t/b", 10, 4, False, 5),
        ]

    def peers(self) -> list[PeerStatus]:
        return [
            PeerStatus(
                "127.0.0.1:6881",
                "libtorrent 2.0",
                "DI",
                0.5,
                2048.0,
                0.0,
                10,
                0,
                "incoming",
                "TCP",
                False,
                False,
                0,
            )
        ]

    def files(self) -> list[FileStatus]:
        return list(self.file_list)

    def pieces(self) -> bytes:
        return b"\xf0"

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        self.sent.append(list(priorities))


def test_piece_fractions() -> None:
    assert list(piece_fractions(b"\xff\x0f", 12, 4)) == [1.0, 1.0, 2 / 3, 0.0]
    assert list(piece_fractions(b"\x80", 2, 4)) == [1.0, 1.0, 0.0, 0.0]  # fewer pieces than bins
    assert list(piece_fractions(b"", 4, 2)) == [0.0, 0.0]  # short bitfield
    assert len(piece_fractions(b"", 0, 3)) == 3


def test_pieces_bar_paints(qtbot: Any) -> None:
    bar = PiecesBar()
    qtbot.addWidget(bar)
    bar.resize(200, 24)
    bar.set_pieces(b"\xf0", 8)
    image = bar.grab().toImage()
    left, right = image.pixelColor(20, 12), image.pixelColor(180, 12)
    assert left != right  # have (highlight) on the left half, missing (base) on the right


def test_details_pane_tabs(qtbot: Any) -> None:
    s = make_status(1, num_peers=1, download_rate=2048.0, eta=30.0)
    handle = Handle(s.info_hash)
    trackers: dict[str, list[TrackerStatus]] = {}
    pane = DetailsPane(
        lambda h: handle if h == s.info_hash else None, lambda h: trackers.get(h, [])
    )
    qtbot.addWidget(pane)
    pane.show()
    pane.show_torrent(s)
    assert pane._fields["status"].text() == "Downloading"
    assert pane._fields["hash_v1"].text() == s.info_hash
    # Trackers: an honest empty state, no invented rows
    pane.setCurrentIndex(DetailsPane.TRACKERS)
    stack = pane._trackers_stack
    assert isinstance(stack, QStackedLayout) and stack.currentIndex() == 1
    assert "No trackers" in pane._trackers_empty.text()
    url = "http://127.0.0.1:6969/announce"
    trackers[s.info_hash] = [TrackerStatus(url, 0, "working", "", 1.0, None, 3, 7, None)]
    pane.refresh(changed(s, time_active=5.0))
    assert stack.currentIndex() == 0
    row = [pane.tracker_model.index(0, c).data() for c in range(8)]
    assert row == ["1", url, "Working", "3", "7", "", "", ""]
    pane.setCurrentIndex(DetailsPane.PEERS)
    assert pane.peer_model.rowCount() == 1
    assert pane.peer_model.index(0, 1).data() == "libtorrent 2.0"
    pane.setCurrentIndex(DetailsPane.FILES)
    assert pane.file_model.file_count() == 2
    folder = pane.file_model.index(0, 0)
    assert pane.file_model.index(0, 2).data() == "75.0%"  # the folder: 15 of 20 bytes
    assert pane.file_model.index(1, 2, folder).data() == "50.0%"
    handle.file_list[1] = FileStatus(1, "t/b", 10, 4, False, 10)
    pane.refresh(changed(s, time_active=6.0))  # progress refreshes without a rebuild
    assert pane.file_model.index(1, 2, folder).data() == "100.0%"
    assert pane.file_model.index(0, 2).data() == "100.0%"
    pane.file_model.set_priority_at(pane.file_model.index(0, 0, folder), 7)
    assert handle.sent == [[7, 4]]
    pane.setCurrentIndex(DetailsPane.PIECES)
    assert "0 of 40 pieces" in pane._pieces_label.text()
    pane.setCurrentIndex(DetailsPane.SPEED)
    pane.refresh(changed(s, download_rate=4096.0))
    assert len(pane._history) >= 2
    pane.show_torrent(None)
    assert pane.info_hash is None and pane.peer_model.rowCount() == 0


def test_files_tab_waits_for_a_magnets_metadata(qtbot: Any) -> None:
    s = make_status(2, state="metadata", total_size=0, selected_size=0, num_pieces=0)
    handle = Handle(s.info_hash)
    handle.file_list = []  # what a MagnetHandle answers before the info dict arrived
    pane = DetailsPane(lambda h: handle)
    qtbot.addWidget(pane)
    pane.show()
    pane.setCurrentIndex(DetailsPane.FILES)
    pane.show_torrent(s)
    stack = pane._files_stack
    assert isinstance(stack, QStackedLayout) and stack.currentIndex() == 1
    assert "Waiting for metadata" in pane._files_empty.text()
    assert pane.file_model.file_count() == 0
    handle.file_list = [FileStatus(0, "t/a", 10, 4, False, 0)]
    pane.refresh(changed(s, state="downloading", total_size=10, selected_size=10))
    assert stack.currentIndex() == 0 and pane.file_model.file_count() == 1


def test_tracker_model_next_announce_is_relative() -> None:
    model = TrackerTableModel(clock=lambda: 1000.0)
    row = TrackerStatus(
        "udp://127.0.0.1:1/announce", 1, "error", "timed out", None, 1090.0, None, None, None
    )
    model.set_rows([row])
    assert model.index(0, 0).data() == "2"
    assert model.index(0, 2).data() == "Not working"
    assert model.index(0, 6).data() == "1m 30s"
    assert model.index(0, 7).data() == "timed out"


def test_formatting() -> None:
    assert fmt.size(0) == "0 B"
    assert fmt.size(1536) == "1.5 KiB"
    assert fmt.size(5 * 1024**3) == "5.0 GiB"
    assert fmt.rate(0) == ""
    assert fmt.rate_always(0) == "0 B/s"
    assert fmt.duration(None) == "∞"
    assert fmt.duration(59) == "59s"
    assert fmt.duration(3 * 3600 + 120) == "3h 2m"
    assert fmt.duration(2 * 86400 + 3600) == "2d 1h"
    assert fmt.duration(10**9) == "∞"
    assert fmt.percent(0.1234) == "12.3%"
