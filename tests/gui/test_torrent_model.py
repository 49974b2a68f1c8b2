"""The torrent table model: diffs signal exactly the changed cells; filters, counts, sorting."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt

from ccbt_gui import formatting as fmt
from ccbt_gui.models.torrents import (
    HASH_ROLE,
    PROGRESS_ROLE,
    Category,
    Column,
    TorrentFilterProxy,
    TorrentTableModel,
    status_text,
)
from tests.gui.conftest import changed, make_status


def _record(model: TorrentTableModel) -> list[tuple[int, int, int, int]]:
    """Every dataChanged as (top row, left col, bottom row, right col)."""
    seen: list[tuple[int, int, int, int]] = []

    def on(tl: QModelIndex, br: QModelIndex, _roles: Any = None) -> None:
        seen.append((tl.row(), tl.column(), br.row(), br.column()))

    model.dataChanged.connect(on)
    return seen


def _cells(spans: list[tuple[int, int, int, int]]) -> set[tuple[int, int]]:
    return {
        (r, c) for r0, c0, r1, c1 in spans for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
    }


def _model(n: int) -> tuple[TorrentTableModel, list[Any]]:
    model = TorrentTableModel()
    statuses = [make_status(i) for i in range(n)]
    model.apply_snapshot(statuses)
    return model, statuses


def test_first_snapshot_inserts_rows_in_order(qapp: Any) -> None:
    model, statuses = _model(3)
    assert model.rowCount() == 3
    assert [model.index(r, Column.NAME).data() for r in range(3)] == [s.name for s in statuses]
    assert model.index(1, 0).data(HASH_ROLE) == statuses[1].info_hash


def test_rate_change_signals_only_the_rate_cell(qapp: Any) -> None:
    model, statuses = _model(3)
    spans = _record(model)
    model.apply_snapshot([changed(statuses[1], upload_rate=1000.0)])
    # upload rate is the only visible change: Status stays "Stalled", progress unchanged
    assert _cells(spans) == {(1, Column.UP)}


def test_download_start_changes_rate_eta_and_status_cells(qapp: Any) -> None:
    model, statuses = _model(3)
    spans = _record(model)
    model.apply_snapshot([changed(statuses[2], download_rate=5000.0, eta=20.0)])
    assert _cells(spans) == {(2, Column.DOWN), (2, Column.ETA), (2, Column.STATUS)}
    assert model.index(2, Column.STATUS).data() == "Downloading"
    spans.clear()
    model.apply_snapshot([changed(statuses[2], download_rate=6000.0, eta=20.0)])
    # still "Downloading": the Status cell is not signalled again
    assert _cells(spans) == {(2, Column.DOWN)}


def test_identical_status_signals_nothing(qapp: Any) -> None:
    model, statuses = _model(2)
    spans = _record(model)
    model.apply_snapshot([statuses[0], changed(statuses[1], time_active=99.0)])
    assert spans == []  # time_active is not a column of the table


def test_adjacent_rows_with_same_change_are_one_rectangle(qapp: Any) -> None:
    model, statuses = _model(5)
    spans = _record(model)
    model.apply_snapshot([changed(s, num_peers=3, num_seeds=1) for s in statuses[1:4]])
    assert spans == [(1, Column.SEEDS, 3, Column.PEERS)]
    assert model.index(3, Column.PEERS).data() == "3"


def test_sidebar_counts_follow_state(qapp: Any) -> None:
    model, statuses = _model(4)
    assert model.category_count(None) == 4
    assert model.category_count(Category.DOWNLOADING) == 4
    model.apply_snapshot(
        [
            changed(statuses[0], state="paused"),
            changed(
                statuses[1],
                state="seeding",
                wanted_done=statuses[1].wanted_size,
                progress=1.0,
                upload_rate=10.0,
            ),
            changed(statuses[2], state="error", error="disk full"),
        ]
    )
    assert model.category_count(Category.DOWNLOADING) == 1
    assert model.category_count(Category.PAUSED) == 1
    assert model.category_count(Category.SEEDING) == 1
    assert model.category_count(Category.COMPLETED) == 1
    assert model.category_count(Category.ACTIVE) == 1
    assert model.category_count(Category.ERRORED) == 1
    model.remove(statuses[2].info_hash)
    assert model.category_count(Category.ERRORED) == 0
    assert model.rowCount() == 3


def test_proxy_filters_by_category_and_search(qapp: Any) -> None:
    model, statuses = _model(4)
    proxy = TorrentFilterProxy(model)
    model.apply_snapshot([changed(statuses[3], name="Debian netinst", state="paused")])
    proxy.set_category(Category.PAUSED)
    assert proxy.rowCount() == 1
    assert proxy.index(0, 0).data() == "Debian netinst"
    proxy.set_category(None)
    proxy.set_search("torrent 00")
    assert sorted(proxy.index(r, 0).data() for r in range(proxy.rowCount())) == [
        "torrent 000",
        "torrent 001",
        "torrent 002",
    ]
    proxy.set_search("")
    proxy.set_category(Category.DOWNLOADING)
    assert proxy.rowCount() == 3
    # a torrent leaving the category disappears from the filtered view on the next snapshot
    model.apply_snapshot([changed(statuses[0], state="paused")])
    assert proxy.rowCount() == 2


def test_sorting_by_column_and_resort_on_update(qapp: Any) -> None:
    model, statuses = _model(4)
    proxy = TorrentFilterProxy(model)
    proxy.sort(Column.DOWN, Qt.SortOrder.DescendingOrder)
    model.apply_snapshot([changed(s, download_rate=float(10 * i)) for i, s in enumerate(statuses)])
    assert [proxy.index(r, 0).data() for r in range(4)] == [
        "torrent 003",
        "torrent 002",
        "torrent 001",
        "torrent 000",
    ]
    model.apply_snapshot([changed(statuses[0], download_rate=1000.0)])
    assert proxy.index(0, 0).data() == "torrent 000"
    proxy.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 0).data() for r in range(4)] == [s.name for s in statuses]


def test_persistent_selection_follows_a_resort(qapp: Any) -> None:
    from PySide6.QtCore import QPersistentModelIndex

    model, statuses = _model(3)
    model.sort(Column.UP, Qt.SortOrder.AscendingOrder)
    held = QPersistentModelIndex(model.index(model.row_of(statuses[0].info_hash) or 0, 0))
    model.apply_snapshot([changed(statuses[0], upload_rate=999.0)])
    assert held.data() == statuses[0].name
    assert held.row() == 2


def test_status_text_words() -> None:
    s = make_status()
    assert status_text(s) == "Stalled"
    assert status_text(changed(s, download_rate=1.0)) == "Downloading"
    assert status_text(changed(s, state="paused")) == "Paused"
    assert status_text(changed(s, state="paused", wanted_done=s.wanted_size)) == "Completed"
    assert status_text(changed(s, state="checking")) == "Checking"
    assert status_text(changed(s, error="boom")) == "Errored"


def test_magnet_row_from_metadata_to_download(qapp: Any) -> None:
    """A magnet's row: metadata progress in the bar, no size until known, Downloading category;
    when the info dict arrives the same row gets the name, size and data progress."""
    model = TorrentTableModel()
    seen = _record(model)
    m = make_status(
        5,
        name="0" * 40,
        state="metadata",
        total_size=0,
        selected_size=0,
        wanted_size=0,
        checking_progress=0.25,
    )
    model.apply_snapshot([m])
    cell = {c: model.index(0, c).data() for c in Column}
    assert cell[Column.STATUS] == "Downloading metadata"
    assert cell[Column.PROGRESS] == "25.0%" and cell[Column.SIZE] == ""
    assert model.index(0, Column.PROGRESS).data(PROGRESS_ROLE) == 0.25
    assert model.category_count(Category.DOWNLOADING) == 1
    assert model.category_count(Category.COMPLETED) == 0
    # an xl= length is shown before the metadata
    model.apply_snapshot([changed(m, total_size=2048)])
    assert model.index(0, Column.SIZE).data() == "2.0 KiB"
    got = changed(m, name="album", state="downloading", total_size=3000, selected_size=2000)
    got = changed(got, wanted_size=2048, checking_progress=1.0, progress=0.5)
    seen.clear()
    model.apply_snapshot([got])
    assert model.rowCount() == 1
    assert model.index(0, Column.NAME).data() == "album"
    assert model.index(0, Column.SIZE).data() == fmt.size(2000)  # the selected files
    assert model.index(0, Column.PROGRESS).data() == "50.0%"
    assert model.index(0, Column.STATUS).data() == "Stalled"
    assert any(left <= Column.STATUS <= right for _t, left, _b, right in seen)
