"""The torrent list: a table model fed by snapshot diffs, plus a filtering proxy.

Why it looks the way it does:

* The engine sends only the statuses that changed (``Session.snapshots``). Each one is compared
  with the row's previous status column by column, and ``dataChanged`` is emitted for exactly the
  cells whose content changed. Rows next to each other with the same changed columns are merged
  into one rectangle, so "all 10,000 torrents changed their rates" costs a handful of signals, not
  tens of thousands (the budget is one frame, 16 ms; see benchmarks/gui_model_update.py).
* Sorting happens here in Python with ``list.sort`` and a key, not in QSortFilterProxyModel:
  the proxy's C++ sort would call back into Python ``data()`` for every comparison, which is
  hundreds of milliseconds at 10,000 rows. The proxy only filters (status category + search) and
  is re-filtered explicitly when a row's category or name changed, not on every update.
"""

from __future__ import annotations

import enum
import gc
import math
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter, itemgetter, ne
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

from ccbt_engine.api import TorrentStatus
from ccbt_gui import formatting as fmt

Index = QModelIndex | QPersistentModelIndex

#: the raw :class:`TorrentStatus` of a row
STATUS_ROLE = int(Qt.ItemDataRole.UserRole) + 1
#: the row's info-hash (hex)
HASH_ROLE = int(Qt.ItemDataRole.UserRole) + 2
#: progress as a float 0..1 for the progress-bar delegate
PROGRESS_ROLE = int(Qt.ItemDataRole.UserRole) + 3


class Column(enum.IntEnum):
    NAME = 0
    SIZE = 1
    PROGRESS = 2
    STATUS = 3
    DOWN = 4
    UP = 5
    ETA = 6
    SEEDS = 7
    PEERS = 8
    RATIO = 9
    ADDED = 10
    #: queue position (limits.max_active_*), 1-based like qBittorrent's "#"
    QUEUE = 11


HEADERS: dict[Column, str] = {
    Column.NAME: "Name",
    Column.SIZE: "Size",
    Column.PROGRESS: "Progress",
    Column.STATUS: "Status",
    Column.DOWN: "Down Speed",
    Column.UP: "Up Speed",
    Column.ETA: "ETA",
    Column.SEEDS: "Seeds",
    Column.PEERS: "Peers",
    Column.RATIO: "Ratio",
    Column.ADDED: "Added On",
    Column.QUEUE: "#",
}


class Category(enum.IntFlag):
    """The sidebar's status filters; a torrent can be in several at once."""

    DOWNLOADING = 1
    SEEDING = 2
    COMPLETED = 4
    PAUSED = 8
    ACTIVE = 16
    ERRORED = 32


#: sidebar order and labels; ``None`` is "All"
CATEGORY_LABELS: tuple[tuple[Category | None, str], ...] = (
    (None, "All"),
    (Category.DOWNLOADING, "Downloading"),
    (Category.SEEDING, "Seeding"),
    (Category.COMPLETED, "Completed"),
    (Category.PAUSED, "Paused"),
    (Category.ACTIVE, "Active"),
    (Category.ERRORED, "Errored"),
)


def is_complete(s: TorrentStatus) -> bool:
    return s.wanted_size > 0 and s.wanted_done >= s.wanted_size


#: a magnet whose info dict is still being fetched from peers (BEP 9)
METADATA = "metadata"
#: waiting for a slot (limits.max_active_downloads / max_active_seeds)
QUEUED = "queued"


def selected_size(s: TorrentStatus) -> int:
    """Bytes the user chose to download, as the Size column shows it: the selected files
    (pad files excluded). Before a magnet's metadata arrives there are no files; its ``xl``
    length, if the link gave one, is the best guess (``total_size``, 0 when unknown)."""
    return s.total_size if s.state == METADATA else s.selected_size


def shown_progress(s: TorrentStatus) -> float:
    """What the progress bar shows: the data, or the recheck / metadata fetch in progress."""
    return s.checking_progress if s.state in ("checking", METADATA) else s.progress


def status_text(s: TorrentStatus) -> str:
    """What the Status column says, qBittorrent's words."""
    state = s.state
    if state == "error" or s.error:
        return "Errored"
    if state == "checking":
        return "Checking"
    if state == METADATA:
        return "Downloading metadata"
    if state == "paused":
        return "Completed" if is_complete(s) else "Paused"
    if state == "seeding":
        return "Seeding"
    if state == "downloading":
        return "Downloading" if s.download_rate > 0 else "Stalled"
    if state == QUEUED:  # waiting for a download/seed slot, not paused by the user
        return "Queued"
    return state.capitalize()


# Plain ints: IntFlag arithmetic is ~10x slower and this runs for every changed row.
_DOWNLOADING, _SEEDING, _COMPLETED = int(Category.DOWNLOADING), int(Category.SEEDING), 4
_PAUSED, _ACTIVE, _ERRORED = int(Category.PAUSED), int(Category.ACTIVE), int(Category.ERRORED)
_STATE_CATEGORY = {
    "downloading": _DOWNLOADING,
    "checking": _DOWNLOADING,
    METADATA: _DOWNLOADING,
    "seeding": _SEEDING,
    "paused": _PAUSED,
    "error": _ERRORED,
}


def categories(s: TorrentStatus) -> int:
    """Bitmask of :class:`Category` for one status."""
    cats = _STATE_CATEGORY.get(s.state, 0)
    if s.state == QUEUED:  # qBittorrent: queued downloads under Downloading, seeds Seeding
        cats = _SEEDING if is_complete(s) else _DOWNLOADING
    if s.error:
        cats |= _ERRORED
    if s.wanted_size > 0 and s.wanted_done >= s.wanted_size:
        cats |= _COMPLETED
    if s.download_rate > 0 or s.upload_rate > 0:
        cats |= _ACTIVE
    return cats


# Fields compared between old and new status, and which columns each one feeds. The status text
# is a derived value appended to the key so "Downloading"→"Downloading" at a new rate is no change.
_FIELDS = (
    "name",
    "selected_size",
    "progress",
    "checking_progress",
    "state",
    "download_rate",
    "upload_rate",
    "eta",
    "num_seeds",
    "num_peers",
    "ratio",
    "added_time",
    "error",
    "wanted_done",
    "wanted_size",
    "total_size",
    "queue_position",
)
_FIELD_COLUMNS: tuple[tuple[Column, ...], ...] = (
    (Column.NAME,),
    (Column.SIZE,),
    (Column.PROGRESS,),
    (Column.PROGRESS,),
    (Column.PROGRESS,),  # the bar shows checking progress while checking
    (Column.DOWN,),
    (Column.UP,),
    (Column.ETA,),
    (Column.SEEDS,),
    (Column.PEERS,),
    (Column.RATIO,),
    (Column.ADDED,),
    (),  # error: Status column and sidebar only
    (),  # wanted_done: "Completed" only
    (),  # wanted_size: "Completed" only
    (Column.SIZE,),  # total_size: a magnet's size before its metadata
    (Column.QUEUE,),
)
_KEY_FIELDS = attrgetter(*_FIELDS)
_HASH = attrgetter("info_hash")
#: key positions whose any change may change the status text or the sidebar categories
_STRUCTURAL_POSITIONS = frozenset(_FIELDS.index(f) for f in ("state", "wanted_size", "error"))
#: positions that matter only when they cross a threshold (rate > 0, done >= size)
_DR, _UR = _FIELDS.index("download_rate"), _FIELDS.index("upload_rate")
_WD, _WS = _FIELDS.index("wanted_done"), _FIELDS.index("wanted_size")
_Runs = tuple[tuple[int, int], ...]
_MaskInfo = tuple[_Runs, _Runs, bool, bool]


def _sort_key(column: Column) -> Callable[[TorrentStatus], Any]:
    if column == Column.NAME:
        return lambda s: s.name.casefold()
    if column == Column.STATUS:
        return status_text
    if column == Column.ETA:
        return lambda s: math.inf if s.eta is None else s.eta
    if column == Column.PROGRESS:
        return lambda s: (shown_progress(s), s.name.casefold())
    if column == Column.SIZE:
        return selected_size
    if column == Column.QUEUE:  # not in the queue (a magnet fetching metadata): last
        return lambda s: s.queue_position if s.queue_position >= 0 else math.inf
    return attrgetter(
        {
            Column.DOWN: "download_rate",
            Column.UP: "upload_rate",
            Column.SEEDS: "num_seeds",
            Column.PEERS: "num_peers",
            Column.RATIO: "ratio",
            Column.ADDED: "added_time",
        }[column]
    )


def _runs(columns: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted columns as contiguous ``(first, last)`` runs: {1,2,3,6} -> ((1,3),(6,6))."""
    runs: list[tuple[int, int]] = []
    for c in sorted(set(columns)):
        if runs and runs[-1][1] == c - 1:
            runs[-1] = (runs[-1][0], c)
        else:
            runs.append((c, c))
    return tuple(runs)


#: mid-tone colours that read on both light and dark themes (None = the theme's text colour)
_STATUS_COLORS = {
    "Downloading": QColor("#2e86de"),
    "Downloading metadata": QColor("#2e86de"),
    "Seeding": QColor("#27ae60"),
    "Errored": QColor("#e74c3c"),
    "Checking": QColor("#d68910"),
    "Stalled": QColor("#8e8e93"),
    "Queued": QColor("#8e8e93"),
}
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_NUMERIC = frozenset({Column.SIZE, Column.DOWN, Column.UP, Column.SEEDS, Column.PEERS})
_NUMERIC |= {Column.RATIO, Column.ETA, Column.QUEUE}


class TorrentTableModel(QAbstractTableModel):
    """One row per torrent, in the current sort order."""

    #: the per-category counts changed (for the sidebar)
    countsChanged = Signal()
    #: a row's category or name changed, so an active filter must be re-evaluated
    filterInputsChanged = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[TorrentStatus] = []
        self._keys: list[tuple[Any, ...]] = []
        self._texts: list[str] = []
        self._cats: list[int] = []
        self._row_of: dict[str, int] = {}
        self._counts: dict[int, int] = {int(c): 0 for c in Category}
        self._mask_cache: dict[tuple[bool, ...], _MaskInfo] = {}
        self._sort_column: Column | None = None
        self._sort_order = Qt.SortOrder.AscendingOrder

    # -- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s = self._rows[index.row()]
        col = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(s, col)
        if role == PROGRESS_ROLE:
            return shown_progress(s)
        if role == STATUS_ROLE:
            return s
        if role == HASH_ROLE:
            return s.info_hash
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMERIC:
            return int(_RIGHT)
        if role == Qt.ItemDataRole.ForegroundRole and col == Column.STATUS:
            return _STATUS_COLORS.get(status_text(s))
        if role == Qt.ItemDataRole.ToolTipRole:
            return s.error or s.name if col in (Column.NAME, Column.STATUS) else None
        return None

    @staticmethod
    def _display(s: TorrentStatus, col: Column) -> str:
        if col == Column.NAME:
            return s.name
        if col == Column.SIZE:
            size = selected_size(s)
            return "" if size == 0 and s.state == METADATA else fmt.size(size)
        if col == Column.PROGRESS:
            return fmt.percent(shown_progress(s))
        if col == Column.STATUS:
            return status_text(s)
        if col == Column.DOWN:
            return fmt.rate(s.download_rate)
        if col == Column.UP:
            return fmt.rate(s.upload_rate)
        if col == Column.ETA:
            # qBittorrent shows an ETA only while downloading; a paused torrent has none
            return fmt.duration(s.eta) if s.state == "downloading" and not is_complete(s) else ""
        if col == Column.SEEDS:
            return str(s.num_seeds)
        if col == Column.PEERS:
            return str(s.num_peers)
        if col == Column.RATIO:
            return fmt.ratio(s.ratio)
        if col == Column.QUEUE:
            return str(s.queue_position + 1) if s.queue_position >= 0 else ""
        return fmt.timestamp(s.added_time)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = Column(column) if column >= 0 else None
        self._sort_order = order
        self._resort()

    # -- reading ------------------------------------------------------------
    def status(self, row: int) -> TorrentStatus:
        return self._rows[row]

    def statuses(self) -> list[TorrentStatus]:
        return list(self._rows)

    def row_of(self, info_hash: str) -> int | None:
        return self._row_of.get(info_hash)

    def category_count(self, category: Category | None) -> int:
        return len(self._rows) if category is None else self._counts[int(category)]

    def row_categories(self, row: int) -> int:
        return self._cats[row]

    # -- applying engine state ------------------------------------------------------------
    def apply_snapshot(self, changed: Sequence[TorrentStatus]) -> None:
        """Insert new torrents and update changed ones, signalling only the changed cells.

        This is the hot path (every torrent, every tick), so it is written for speed: one C-level
        attrgetter for the compared fields, a C-level ``map(ne)`` for the change mask, and the
        mask -> changed-column runs translation cached.
        """
        # The loop allocates two tuples per row that all survive; a cyclic-GC pass triggered
        # in the middle would walk every live object (tens of ms). Nothing here makes cycles.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._apply(changed)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _apply(self, changed: Sequence[TorrentStatus]) -> None:
        row_of = self._row_of
        keys, texts, rows, cats = self._keys, self._texts, self._rows, self._cats
        mask_cache = self._mask_cache
        counts = self._counts
        new: list[TorrentStatus] = []
        updates: list[tuple[int, _Runs]] = []
        counts_changed = False
        name_changed = False
        # Row lookups and key tuples for the whole batch in C-level map() calls.
        found = map(row_of.get, map(_HASH, changed))
        for s, row, key in zip(changed, found, map(_KEY_FIELDS, changed), strict=True):
            if row is None:
                new.append(s)
                continue
            rows[row] = s
            old_key = keys[row]
            if key == old_key:
                continue
            keys[row] = key
            mask = tuple(map(ne, key, old_key))
            info = mask_cache.get(mask)
            if info is None:
                info = self._mask_info(mask)
            runs, runs_with_status, structural, flips = info
            # Status text and categories only move when the state/error/size changed, or a
            # rate crossed zero, or the torrent crossed "complete" (cheap checks first).
            if structural or (
                flips
                and (
                    (key[_DR] > 0) != (old_key[_DR] > 0)
                    or (key[_UR] > 0) != (old_key[_UR] > 0)
                    or (key[_WD] >= key[_WS]) != (old_key[_WD] >= old_key[_WS])
                )
            ):
                text = status_text(s)
                if text != texts[row]:
                    texts[row] = text
                    runs = runs_with_status
                cat = categories(s)
                old_cat = cats[row]
                if cat != old_cat:
                    cats[row] = cat
                    diff = cat ^ old_cat
                    for c in counts:
                        if diff & c:
                            counts[c] += 1 if cat & c else -1
                    counts_changed = True
            if runs:
                updates.append((row, runs))
            if mask[0]:
                name_changed = True
        self._emit_updates(updates)
        if new:
            self._insert(new)
            counts_changed = True
        if counts_changed:
            self.countsChanged.emit()
        if counts_changed or name_changed:
            self.filterInputsChanged.emit()
        sort_col = self._sort_column
        if sort_col is not None and updates and not new and self._sort_touched(updates, sort_col):
            self._resort()

    def _mask_info(self, mask: tuple[bool, ...]) -> _MaskInfo:
        """For a change mask: changed-column runs without and with the Status column, whether
        status text / categories must be recomputed, and whether a rate/done threshold may have
        been crossed (checked per row)."""
        cols = [c for i, changed in enumerate(mask) if changed for c in _FIELD_COLUMNS[i]]
        structural = any(mask[i] for i in _STRUCTURAL_POSITIONS)
        flips = any(mask[i] for i in (_DR, _UR, _WD))
        info = (_runs(cols), _runs([*cols, Column.STATUS]), structural, flips)
        self._mask_cache[mask] = info
        return info

    def _emit_updates(self, updates: list[tuple[int, tuple[tuple[int, int], ...]]]) -> None:
        """Merge consecutive rows with identical changed-column runs into rectangles."""
        if not updates:
            return
        updates.sort(key=itemgetter(0))
        emit = self.dataChanged.emit
        index = self.index
        start, prev, runs = updates[0][0], updates[0][0], updates[0][1]
        for row, r in updates[1:]:
            if row == prev + 1 and r == runs:
                prev = row
                continue
            for first, last in runs:
                emit(index(start, first), index(prev, last))
            start, prev, runs = row, row, r
        for first, last in runs:
            emit(index(start, first), index(prev, last))

    def _sort_touched(self, updates: list[tuple[int, Any]], col: Column) -> bool:
        for _, runs in updates:
            for first, last in runs:
                if first <= col <= last:
                    return True
        return False

    def _insert(self, new: list[TorrentStatus]) -> None:
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        for s in new:
            self._row_of[s.info_hash] = len(self._rows)
            self._rows.append(s)
            self._keys.append(_KEY_FIELDS(s))
            self._texts.append(status_text(s))
            cat = categories(s)
            self._cats.append(cat)
            for c in self._counts:
                if cat & c:
                    self._counts[c] += 1
        self.endInsertRows()
        if self._sort_column is not None:
            self._resort()

    def remove(self, info_hash: str) -> None:
        """Drop a torrent (the engine announced ``TorrentRemoved``)."""
        row = self._row_of.get(info_hash)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        cat = self._cats[row]
        for c in self._counts:
            if cat & c:
                self._counts[c] -= 1
        del self._rows[row], self._keys[row], self._cats[row], self._texts[row]
        self._row_of = {s.info_hash: i for i, s in enumerate(self._rows)}
        self.endRemoveRows()
        self.countsChanged.emit()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows, self._keys, self._cats, self._texts, self._row_of = [], [], [], [], {}
        self._counts = dict.fromkeys(self._counts, 0)
        self.endResetModel()
        self.countsChanged.emit()

    def _resort(self) -> None:
        col = self._sort_column
        if col is None or len(self._rows) < 2:
            return
        key = _sort_key(col)
        order = sorted(
            range(len(self._rows)),
            key=lambda i: key(self._rows[i]),
            reverse=self._sort_order == Qt.SortOrder.DescendingOrder,
        )
        if order == list(range(len(order))):
            return
        self.layoutAboutToBeChanged.emit()
        old_hashes = [s.info_hash for s in self._rows]
        self._rows = [self._rows[i] for i in order]
        self._keys = [self._keys[i] for i in order]
        self._cats = [self._cats[i] for i in order]
        self._texts = [self._texts[i] for i in order]
        self._row_of = {s.info_hash: i for i, s in enumerate(self._rows)}
        persistent = self.persistentIndexList()
        if persistent:
            moved = [self.index(self._row_of[old_hashes[p.row()]], p.column()) for p in persistent]
            self.changePersistentIndexList(persistent, moved)
        self.layoutChanged.emit()


class TorrentFilterProxy(QSortFilterProxyModel):
    """Filters by sidebar category and search text; sorting is delegated to the source model."""

    def __init__(self, source: TorrentTableModel, parent: Any = None) -> None:
        super().__init__(parent)
        self._source = source
        self._category: Category | None = None
        self._search = ""
        self.setDynamicSortFilter(False)
        self.setSourceModel(source)
        source.filterInputsChanged.connect(self._source_inputs_changed)

    @property
    def category(self) -> Category | None:
        return self._category

    def set_category(self, category: Category | None) -> None:
        if category != self._category:
            self._refilter(lambda: setattr(self, "_category", category))

    def set_search(self, text: str) -> None:
        text = text.strip().casefold()
        if text != self._search:
            self._refilter(lambda: setattr(self, "_search", text))

    def _source_inputs_changed(self) -> None:
        if self._category is not None or self._search:
            self._refilter(lambda: None)

    def _refilter(self, change: Callable[[], None]) -> None:
        """Change the filter inputs and re-filter rows (Qt >= 6.10 API, older fallback)."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - Qt < 6.10
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self._category is None and not self._search:
            return True
        src = self._source
        if self._category is not None and not src.row_categories(source_row) & self._category:
            return False
        return not self._search or self._search in src.status(source_row).name.casefold()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the source (fast, in Python); the proxy keeps the source's order."""
        self._source.sort(column, order)
