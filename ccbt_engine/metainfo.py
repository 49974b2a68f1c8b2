"""Torrent metainfo (BEP 3 v1, BEP 52 v2, hybrid): the parsed, validated, sanitised model.

The data model below is the contract the rest of the engine builds on (storage maps pieces to
``FileEntry`` offsets, the session keys torrents by infohash, the GUI shows names and files).
Parsing lives in :func:`parse_torrent`.

Conventions:

* ``FileEntry.path`` is relative to the save folder and already sanitised; for multi-file
  torrents its first part is the torrent's (sanitised) name, as in libtorrent.
* Every file, pad files included, has an ``offset`` in one linear *piece space*. For v2-only
  torrents, whose files each start on a piece boundary, implicit pad entries are synthesised so
  the same linear mapping serves v1, v2 and hybrid torrents alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class MetainfoError(ValueError):
    """A .torrent file (or info dict) that is malformed, inconsistent or unsafe."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a torrent, positioned in the torrent's piece space."""

    path: tuple[str, ...]
    length: int
    offset: int
    #: BEP 47 attributes: ``p`` pad, ``x`` executable, ``h`` hidden, ``l`` symlink
    attr: str = ""
    #: BEP 52 merkle root of the file (v2 and hybrid torrents; None for empty and pad files)
    pieces_root: bytes | None = None
    #: BEP 47 ``symlink path`` (sanitised), when ``"l" in attr``
    symlink_path: tuple[str, ...] | None = None
    mtime: int | None = None

    @property
    def is_pad(self) -> bool:
        return "p" in self.attr


@dataclass(frozen=True, slots=True)
class TorrentInfo:
    """The info dictionary: what the infohash covers."""

    name: str
    piece_length: int
    files: tuple[FileEntry, ...]
    #: size of the piece space (sum of all files, pad files included)
    total_length: int
    private: bool
    #: SHA-1 of the raw info dict (v1 and hybrid), else None
    info_hash_v1: bytes | None
    #: SHA-256 of the raw info dict (v2 and hybrid), else None
    info_hash_v2: bytes | None
    #: the info dict's exact bytes as found in the file
    raw_info: bytes = field(repr=False)
    #: v1 piece hashes (20 bytes each), or empty for v2-only torrents
    piece_hashes: tuple[bytes, ...] = field(default=(), repr=False)
    #: v2 piece layers: pieces root -> concatenated 32-byte piece-layer hashes
    piece_layers: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    #: BEP 47 / BEP 52 "meta version" (1 for v1-only)
    meta_version: int = 1
    source: str | None = None

    @property
    def num_pieces(self) -> int:
        return -(-self.total_length // self.piece_length) if self.total_length else 0

    @property
    def has_v1(self) -> bool:
        return self.info_hash_v1 is not None

    @property
    def has_v2(self) -> bool:
        return self.info_hash_v2 is not None

    @property
    def is_hybrid(self) -> bool:
        return self.has_v1 and self.has_v2

    @property
    def info_hash(self) -> bytes:
        """The 20-byte hash used on the wire: v1 hash, or the v2 hash truncated (BEP 52)."""
        if self.info_hash_v1 is not None:
            return self.info_hash_v1
        assert self.info_hash_v2 is not None
        return self.info_hash_v2[:20]

    def piece_size(self, index: int) -> int:
        """Length of piece ``index`` (the last one may be short)."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(index)
        if index == self.num_pieces - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length


@dataclass(frozen=True, slots=True)
class Metainfo:
    """A whole .torrent file: the info dict plus what lies outside it."""

    info: TorrentInfo
    #: BEP 12 tiers (``announce`` alone becomes one tier of one)
    trackers: tuple[tuple[str, ...], ...] = ()
    #: BEP 19 ``url-list``
    web_seeds: tuple[str, ...] = ()
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    #: BEP 5 ``nodes`` (host, port)
    nodes: tuple[tuple[str, int], ...] = ()
