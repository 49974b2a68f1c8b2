"""Pieces ↔ files: where the bytes of a piece live on disk.

Every file (pad files included) has an offset in one linear piece space (see ``metainfo``), so a
byte range of a piece maps to consecutive file ranges. Lookups bisect the sorted file end offsets:
O(log n) per call however many files a torrent has (some have 100k+). Pad files and empty files
never appear in the result: pad bytes are zeros by definition and are never read or written.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from ccbt_engine.metainfo import TorrentInfo

MAX_PRIORITY = 7


@dataclass(frozen=True, slots=True)
class FileSlice:
    """A run of ``length`` bytes at ``file_offset`` in file ``file_index``.

    ``buffer_offset`` is where the run sits inside the requested byte range (pad bytes between
    slices leave gaps); it does not take part in equality so ``FileSlice(i, off, n)`` compares
    on the file position alone.
    """

    file_index: int
    file_offset: int
    length: int
    buffer_offset: int = field(default=0, compare=False)


class PieceLayout:
    """Maps piece byte ranges to file slices and file priorities to piece priorities."""

    def __init__(self, info: TorrentInfo) -> None:
        self.info = info
        self.files = info.files
        self.piece_length = info.piece_length
        self.num_pieces = info.num_pieces
        self._ends: list[int] = []
        pos = 0
        for entry in self.files:
            if entry.offset != pos or entry.length < 0:
                raise ValueError("files must be contiguous and sorted by offset")
            pos = entry.offset + entry.length
            self._ends.append(pos)
        if pos != info.total_length:
            raise ValueError("files do not add up to total_length")

    def _check_range(self, piece: int, begin: int, length: int) -> int:
        size = self.info.piece_size(piece)  # raises IndexError for a bad index
        if begin < 0 or length < 0 or begin + length > size:
            raise ValueError(f"range {begin}+{length} outside piece {piece} of {size} bytes")
        return piece * self.piece_length + begin

    def slices(self, piece: int, begin: int, length: int) -> list[FileSlice]:
        """File runs holding ``length`` bytes at ``begin`` in ``piece``, in order.

        Pad and empty files are left out; bytes not covered by any slice are pad bytes (zeros).
        Raises ``IndexError`` for a bad piece and ``ValueError`` for a range outside the piece.
        """
        start = self._check_range(piece, begin, length)
        return self._slices_abs(start, start + length)

    def _slices_abs(self, start: int, stop: int) -> list[FileSlice]:
        out: list[FileSlice] = []
        if stop <= start:
            return out
        i = bisect_right(self._ends, start)
        files = self.files
        while i < len(files) and files[i].offset < stop:
            entry = files[i]
            if entry.length and not entry.is_pad:
                s = max(start, entry.offset)
                e = min(stop, entry.offset + entry.length)
                out.append(FileSlice(i, s - entry.offset, e - s, s - start))
            i += 1
        return out

    def file_at(self, offset: int) -> int:
        """Index of the file (pad files included, empty files never) holding byte ``offset``."""
        if not 0 <= offset < self.info.total_length:
            raise IndexError(offset)
        return bisect_right(self._ends, offset)

    def piece_file_range(self, piece: int) -> tuple[int, int]:
        """First and last non-pad file index touching ``piece``.

        A piece made only of pad bytes (possible only in odd torrents) gives an empty range
        ``(len(files), len(files) - 1)``.
        """
        found = self.slices(piece, 0, self.info.piece_size(piece))
        if not found:
            return (len(self.files), len(self.files) - 1)
        return (found[0].file_index, found[-1].file_index)

    def file_piece_range(self, file_index: int) -> tuple[int, int]:
        """First and last piece touching file ``file_index`` (inclusive).

        An empty file touches no piece: the result is the empty range ``(p, p - 1)`` where ``p`` is
        the piece its offset falls in, so ``range(first, last + 1)`` is simply empty.
        """
        entry = self.files[file_index]
        first = entry.offset // self.piece_length
        if entry.length == 0:
            return (first, first - 1)
        return (first, (entry.offset + entry.length - 1) // self.piece_length)

    def piece_priorities(self, file_priorities: Sequence[int]) -> list[int]:
        """Per-piece priority: the highest priority of the non-pad files it touches (libtorrent).

        0 means nobody wants the piece. Pads never raise a piece's priority, so a piece shared by a
        wanted and a skipped file is wanted, and a piece of only skipped files (and pads) is not.
        Cost is O(files + pieces).
        """
        if len(file_priorities) != len(self.files):
            raise ValueError(f"need {len(self.files)} file priorities, got {len(file_priorities)}")
        out = [0] * self.num_pieces
        for i, prio in enumerate(file_priorities):
            if not 0 <= prio <= MAX_PRIORITY:
                raise ValueError(f"file priority {prio} outside 0..{MAX_PRIORITY}")
            entry = self.files[i]
            if prio == 0 or entry.is_pad or entry.length == 0:
                continue
            first, last = self.file_piece_range(i)
            for p in range(first, last + 1):
                if out[p] < prio:
                    out[p] = prio
        return out

    def exclusive_pieces(self, wanted_files: Sequence[bool]) -> list[bool]:
        """Per piece: True when it touches no wanted file (only skipped files and pads).

        These are the pieces a skipped file owns exclusively: they need never be downloaded,
        written or checked.
        """
        prios = self.piece_priorities([1 if w else 0 for w in wanted_files])
        return [p == 0 for p in prios]
