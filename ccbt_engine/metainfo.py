"""Torrent metainfo (BEP 3 v1, BEP 52 v2, hybrid): the parsed, validated, sanitised model.

The data model below is the contract the rest of the engine builds on (storage maps pieces to
``FileEntry`` offsets, the session keys torrents by infohash, the GUI shows names and files).
Parsing lives in :func:`parse_torrent` (a whole .torrent file), :func:`load_torrent` (the same,
from a path) and :func:`parse_info_dict` (an info dict alone, as fetched with ``ut_metadata``).

Conventions:

* ``FileEntry.path`` is relative to the save folder and already sanitised; for multi-file
  torrents its first part is the torrent's (sanitised) name, as in libtorrent.
* Every file, pad files included, has an ``offset`` in one linear *piece space*. For v2-only
  torrents, whose files each start on a piece boundary, implicit pad entries are synthesised so
  the same linear mapping serves v1, v2 and hybrid torrents alike. As in libtorrent, a pad
  follows *every* file whose end is not piece-aligned, the last one included, so the piece space
  of a v2-only torrent is a whole number of pieces (libtorrent's ``total_size()`` agrees).
* ``FileEntry.symlink_path`` (BEP 47) is relative to the save folder like ``path``; targets
  that would leave the torrent are dropped (the entry becomes a plain file), never rewritten.
* Pad paths are ``.pad/<length>`` (under the name folder for multi-file torrents); pads are
  never written to disk, may share a path, and are left out of duplicate-path renaming.
* Only :class:`MetainfoError` escapes the parsers, whatever the input (property-tested).
* The parsers hash (SHA-1/SHA-256 of the info dict, merkle roots of piece layers): engine code
  calls them through a thread pool, never on the event loop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccbt_engine.bencode import BencodeError, decode, decode_with_spans
from ccbt_engine.merkle import BLOCK_SIZE, HASH_SIZE, file_root
from ccbt_engine.pathsafe import make_unique, sanitize_component, sanitize_path

__all__ = [
    "MAX_FILES",
    "MAX_TORRENT_SIZE",
    "FileEntry",
    "Metainfo",
    "MetainfoError",
    "TorrentInfo",
    "load_torrent",
    "parse_info_dict",
    "parse_torrent",
]

#: Largest .torrent file read (the info dict of a 1M-file torrent fits comfortably).
MAX_TORRENT_SIZE = 64 * 1024 * 1024
#: Most files (pad files included) in one torrent.
MAX_FILES = 1_000_000
#: Most components in one file path.
MAX_PATH_DEPTH = 64
#: Largest piece space accepted (1 PiB); keeps offsets and piece counts sane.
MAX_TOTAL_LENGTH = 1 << 50
#: Largest piece accepted (256 MiB): a piece is read whole to be hashed.
MAX_PIECE_LENGTH = 1 << 28
#: Most pieces: bounds every per-piece structure (bitfields, picker state) built from a torrent.
MAX_PIECES = 1 << 24
#: Most trackers and web seeds kept, and longest URL kept; the rest are dropped.
MAX_URLS = 1000
MAX_URL_LENGTH = 4096
MAX_NODES = 1000
_V1_HASH_SIZE = 20
_ATTR_CHARS = "pxhl"


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
    #: the path as the torrent spells it (decoded, neither sanitised nor made unique), name
    #: folder included like ``path``: what a web seed serves (BEP 19); None for pad files.
    #: Not part of equality: two entries are the same file when they land in the same place.
    url_path: tuple[str, ...] | None = field(default=None, compare=False)

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


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


def load_torrent(path: str | os.PathLike[str]) -> Metainfo:
    """Read and parse a .torrent file (blocking: call it from a worker thread in the engine).

    A file that cannot be read, or is larger than :data:`MAX_TORRENT_SIZE`, is a
    :class:`MetainfoError` too, so callers handle one error type.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TORRENT_SIZE + 1)
    except (OSError, ValueError, TypeError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise MetainfoError(f"cannot read {str(path)[:200]!r}: {reason}") from exc
    return parse_torrent(data)


def parse_torrent(data: bytes) -> Metainfo:
    """Parse and validate a whole .torrent file.

    Keys outside the info dict (trackers, web seeds, comment …) are advisory: malformed ones are
    dropped. Everything inside the info dict decides what is written to disk, so anything
    malformed, inconsistent or out of bounds there is a :class:`MetainfoError`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MetainfoError(f"torrent data must be bytes, not {type(data).__name__}")
    buf = bytes(data)
    if len(buf) > MAX_TORRENT_SIZE:
        raise MetainfoError(f"torrent file larger than {MAX_TORRENT_SIZE} bytes")
    try:
        top, spans = decode_with_spans(buf, strict=False)
    except BencodeError as exc:
        raise MetainfoError(f"not a valid torrent file: {exc}") from exc
    info = top.get(b"info")
    if not isinstance(info, dict):
        raise MetainfoError("torrent file has no info dictionary")
    start, end = spans[b"info"]
    layers = top.get(b"piece layers")
    if layers is not None and not isinstance(layers, dict):
        raise MetainfoError("'piece layers' is not a dictionary")
    torrent = _build_info(info, buf[start:end], layers if layers is not None else {}, True)
    return Metainfo(
        info=torrent,
        trackers=_trackers(top),
        web_seeds=_web_seeds(top.get(b"url-list")),
        comment=_opt_text(top, b"comment"),
        created_by=_opt_text(top, b"created by"),
        creation_date=_opt_int(top.get(b"creation date")),
        nodes=_nodes(top.get(b"nodes")),
    )


def parse_info_dict(
    raw_info: bytes, piece_layers: Mapping[bytes, Any] | None = None
) -> TorrentInfo:
    """Parse an info dict on its own (a magnet link's metadata, fetched from peers).

    ``piece_layers`` is checked when given; without it (the usual case for metadata from
    peers, BEP 52 hashes then arrive piece by piece) v2 layers are simply absent.
    """
    if not isinstance(raw_info, bytes | bytearray | memoryview):
        raise MetainfoError(f"info dict must be bytes, not {type(raw_info).__name__}")
    buf = bytes(raw_info)
    if len(buf) > MAX_TORRENT_SIZE:
        raise MetainfoError(f"info dict larger than {MAX_TORRENT_SIZE} bytes")
    try:
        info = decode(buf, strict=False)
    except BencodeError as exc:
        raise MetainfoError(f"not a valid info dictionary: {exc}") from exc
    if not isinstance(info, dict):
        raise MetainfoError("info is not a dictionary")
    layers = dict(piece_layers) if piece_layers is not None else {}
    return _build_info(info, buf, layers, piece_layers is not None)


@dataclass(slots=True)
class _RawFile:
    """A file as the torrent describes it, sanitised but not yet made unique or placed.

    ``rel`` is the path inside the torrent (without the name folder); hybrid torrents are
    checked by comparing it between the v1 list and the v2 tree.
    """

    rel: tuple[str, ...]
    length: int
    attr: str = ""
    #: symlink target inside the torrent (without the name folder), already checked
    symlink_rel: tuple[str, ...] | None = None
    mtime: int | None = None
    pieces_root: bytes | None = None
    #: ``rel`` as the torrent spells it, before sanitising (for web seed URLs)
    raw_rel: tuple[str, ...] | None = None

    @property
    def is_pad(self) -> bool:
        return "p" in self.attr


def _build_info(
    info: dict[bytes, Any], raw_info: bytes, layers: dict[bytes, Any], check_layers: bool
) -> TorrentInfo:
    meta_version = info.get(b"meta version", 1)
    if not isinstance(meta_version, int) or meta_version not in (1, 2):
        raise MetainfoError(f"unsupported 'meta version' {meta_version!r}")
    has_v2 = meta_version == 2
    has_v1 = not has_v2 or b"pieces" in info
    hash_v1 = hashlib.sha1(raw_info).digest() if has_v1 else None
    hash_v2 = hashlib.sha256(raw_info).digest() if has_v2 else None

    piece_length = info.get(b"piece length")
    if not isinstance(piece_length, int) or not 0 < piece_length <= MAX_PIECE_LENGTH:
        raise MetainfoError(f"invalid piece length {piece_length!r}")
    if has_v2 and (piece_length < BLOCK_SIZE or piece_length & (piece_length - 1)):
        raise MetainfoError(
            f"v2 piece length {piece_length} is not a power of two of at least {BLOCK_SIZE}"
        )

    raw_name = _pick_utf8(info, b"name")
    if raw_name is None:
        raise MetainfoError("info dict has no name")
    # a name that sanitises to nothing ("..", "") still needs a folder: use the infohash
    fallback = (hash_v1 or hash_v2 or b"").hex()[:40]
    url_name = _decode(raw_name)
    name = sanitize_component(url_name) or fallback

    v1: tuple[list[_RawFile], bool] | None = _v1_files(info, name, url_name) if has_v1 else None
    v2: tuple[list[_RawFile], bool] | None = None
    if has_v2:
        tree = info.get(b"file tree")
        if not isinstance(tree, dict):
            raise MetainfoError("meta version 2 torrent has no 'file tree' dictionary")
        v2 = _v2_files(tree, fallback)

    if v1 is not None:
        files, single = v1
        if v2 is not None:
            _merge_hybrid(files, v2[0], piece_length)
    else:
        assert v2 is not None
        files, single = v2
        if single:
            # as libtorrent: a v2 tree of one top-level file names the torrent after it
            name = files[0].rel[0]
        files = _with_v2_pads(files, piece_length)

    if single:
        # a lone file has nothing inside its torrent to link to; a link would point at
        # whatever else happens to sit in the save folder
        for f in files:
            f.attr, f.symlink_rel = f.attr.replace("l", ""), None
    entries, total = _place(files, () if single else (name,), () if single else (url_name,))
    num_pieces = -(-total // piece_length)
    if num_pieces > MAX_PIECES:
        raise MetainfoError(f"torrent has {num_pieces} pieces, more than {MAX_PIECES}")

    piece_hashes = _v1_piece_hashes(info, num_pieces, piece_length) if has_v1 else ()
    kept_layers = _check_layers(entries, layers, piece_length) if has_v2 and check_layers else {}

    source = _pick_utf8(info, b"source")
    return TorrentInfo(
        name=name,
        piece_length=piece_length,
        files=tuple(entries),
        total_length=total,
        private=info.get(b"private") == 1,
        info_hash_v1=hash_v1,
        info_hash_v2=hash_v2,
        raw_info=raw_info,
        piece_hashes=piece_hashes,
        piece_layers=kept_layers,
        meta_version=meta_version,
        source=_decode(source) if source is not None else None,
    )


def _v1_piece_hashes(
    info: dict[bytes, Any], num_pieces: int, piece_length: int
) -> tuple[bytes, ...]:
    """The 20-byte SHA-1 of each piece; their count must match the files' total size."""
    pieces = info.get(b"pieces")
    if not isinstance(pieces, bytes):
        raise MetainfoError("info dict has no 'pieces' string")
    if len(pieces) != _V1_HASH_SIZE * num_pieces:
        raise MetainfoError(
            f"'pieces' holds {len(pieces)} bytes, expected {_V1_HASH_SIZE * num_pieces} "
            f"for {num_pieces} pieces of {piece_length} bytes"
        )
    return tuple(pieces[i : i + _V1_HASH_SIZE] for i in range(0, len(pieces), _V1_HASH_SIZE))


def _v1_files(info: dict[bytes, Any], name: str, url_name: str) -> tuple[list[_RawFile], bool]:
    """The v1 file list and whether it is a single-file torrent."""
    length = info.get(b"length")
    files = info.get(b"files")
    if length is not None and files is not None:
        raise MetainfoError("info dict has both 'length' and 'files'")
    if files is None:
        if not isinstance(length, int) or length < 0:
            raise MetainfoError(f"invalid single-file length {length!r}")
        return [_file_record(info, (name,), length, (url_name,))], True
    if not isinstance(files, list) or not files:
        raise MetainfoError("'files' is not a non-empty list")
    if len(files) > MAX_FILES:
        raise MetainfoError(f"torrent lists {len(files)} files, more than {MAX_FILES}")
    out = []
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise MetainfoError(f"file #{i} is not a dictionary")
        flen = entry.get(b"length")
        if not isinstance(flen, int) or flen < 0:
            raise MetainfoError(f"file #{i} has invalid length {flen!r}")
        raw_path = entry.get(b"path.utf-8")
        if not _is_path_list(raw_path):
            raw_path = entry.get(b"path")
        if not _is_path_list(raw_path) or not raw_path:
            raise MetainfoError(f"file #{i} has no valid 'path' list")
        if len(raw_path) > MAX_PATH_DEPTH:
            raise MetainfoError(f"file #{i} path is deeper than {MAX_PATH_DEPTH} components")
        raw_rel = tuple(_decode(p) for p in raw_path)
        out.append(_file_record(entry, sanitize_path(raw_rel) or ("_",), flen, raw_rel))
    return out, False


def _v2_files(tree: dict[bytes, Any], fallback: str) -> tuple[list[_RawFile], bool]:
    """Walk a BEP 52 file tree in file order; also say whether it is a single-file torrent.

    As in libtorrent, a tree holding exactly one file at its top level is a single-file
    torrent (whose name is that file's name).
    """
    if not tree:
        raise MetainfoError("'file tree' is empty")
    out: list[_RawFile] = []
    _walk_tree(tree, (), out)
    # judged on the raw tree: a folder whose name sanitises away (``..``) is still a folder
    first = next(iter(tree.values()))
    single = len(tree) == 1 and isinstance(first, dict) and b"" in first
    if single:
        out[0].rel = (sanitize_component(_decode(next(iter(tree)))) or fallback,)
    return out, single


def _walk_tree(node: dict[bytes, Any], raw_parts: tuple[str, ...], out: list[_RawFile]) -> None:
    """Depth-first, in the order the keys appear (recursion depth is bounded by bencode's)."""
    if len(raw_parts) >= MAX_PATH_DEPTH:
        raise MetainfoError(f"file tree deeper than {MAX_PATH_DEPTH} levels")
    for key, child in node.items():
        label = "/".join((*raw_parts, _decode(key)))[:200]
        if not isinstance(child, dict):
            raise MetainfoError(f"file tree entry {label!r} is not a dictionary")
        if key == b"":
            raise MetainfoError(f"file tree has an empty name under {label!r}")
        parts = (*raw_parts, _decode(key))
        if b"" not in child:
            _walk_tree(child, parts, out)
            continue
        if len(out) >= MAX_FILES:
            raise MetainfoError(f"file tree holds more than {MAX_FILES} files")
        if len(child) != 1:
            raise MetainfoError(f"file tree entry {label!r} is both a file and a folder")
        leaf = child[b""]
        if not isinstance(leaf, dict):
            raise MetainfoError(f"file tree entry {label!r} is not a dictionary")
        length = leaf.get(b"length")
        if not isinstance(length, int) or length < 0:
            raise MetainfoError(f"file {label!r} has invalid length {length!r}")
        rec = _file_record(leaf, sanitize_path(parts) or ("_",), length, parts)
        rec.attr = rec.attr.replace("p", "")  # v2 trees have no pad files: never hide a real one
        if length > 0:
            root = leaf.get(b"pieces root")
            if not isinstance(root, bytes) or len(root) != HASH_SIZE:
                raise MetainfoError(f"file {label!r} has no valid 32-byte 'pieces root'")
            rec.pieces_root = root
        out.append(rec)


def _file_record(
    d: dict[bytes, Any], rel: tuple[str, ...], length: int, raw_rel: tuple[str, ...]
) -> _RawFile:
    """A file's BEP 47 attributes, mtime and (checked) symlink target; ``rel`` is ``raw_rel``
    (its path as the torrent spells it) sanitised."""
    raw_attr = d.get(b"attr")
    attr = ""
    if isinstance(raw_attr, bytes):
        attr = "".join(c for c in _ATTR_CHARS if c.encode() in raw_attr)
    mtime = d.get(b"mtime")
    rec = _RawFile(
        rel=rel,
        length=length,
        attr=attr,
        mtime=mtime if isinstance(mtime, int) else None,
        raw_rel=raw_rel,
    )
    if "l" in attr:
        target = _symlink_target(d.get(b"symlink path"))
        if target is None or "p" in attr:
            # a target that points outside the torrent (or nowhere) is not followed: the entry
            # becomes an ordinary (empty) file rather than a way out of the save folder
            rec.attr = attr.replace("l", "")
        else:
            rec.symlink_rel = target
    return rec


def _symlink_target(raw: Any) -> tuple[str, ...] | None:
    """A BEP 47 symlink target, relative to the torrent root, or None when it is unsafe.

    Only targets that sanitisation leaves untouched are kept: ``..``, absolute paths, drive
    letters or device names mean the link would leave the torrent (or mean something else on
    another OS), so the link is dropped instead of being rewritten into a different target.
    """
    if not _is_path_list(raw) or not raw or len(raw) > MAX_PATH_DEPTH:
        return None
    parts = tuple(_decode(p) for p in raw)
    clean = sanitize_path(parts)
    return clean if clean == parts else None


def _merge_hybrid(v1: list[_RawFile], v2: list[_RawFile], piece_length: int) -> None:
    """Check a hybrid torrent's two file lists describe the same files, aligned to pieces.

    If they disagree, v1 and v2 peers would download different content under one name: refuse
    the torrent. On success the v1 entries (which carry the pads) receive the pieces roots.
    """
    real = [f for f in v1 if not f.is_pad]
    if len(real) != len(v2):
        raise MetainfoError(
            f"hybrid torrent: v1 lists {len(real)} files but the v2 file tree {len(v2)}"
        )
    for a, b in zip(real, v2, strict=True):
        if a.rel != b.rel or a.length != b.length:
            raise MetainfoError(
                f"hybrid torrent: v1 file {'/'.join(a.rel)!r} ({a.length} bytes) does not match "
                f"v2 file {'/'.join(b.rel)!r} ({b.length} bytes)"
            )
        a.pieces_root = b.pieces_root
    offset = 0
    for f in v1:
        if not f.is_pad and f.length and offset % piece_length:
            raise MetainfoError(
                f"hybrid torrent: file {'/'.join(f.rel)!r} does not start on a piece boundary"
            )
        offset += f.length


def _with_v2_pads(files: list[_RawFile], piece_length: int) -> list[_RawFile]:
    """Insert the implicit pads of a v2-only torrent (after every unaligned file end)."""
    out: list[_RawFile] = []
    for f in files:
        out.append(f)
        tail = f.length % piece_length
        if tail:
            pad = piece_length - tail
            out.append(_RawFile(rel=(".pad", str(pad)), length=pad, attr="p"))
    return out


def _place(
    files: list[_RawFile], prefix: tuple[str, ...], url_prefix: tuple[str, ...]
) -> tuple[list[FileEntry], int]:
    """Give every file its final (unique) path and its offset; check the bounds.

    ``url_prefix`` is ``prefix`` as the torrent spells it (the unsanitised name folder).
    """
    if len(files) > MAX_FILES:
        raise MetainfoError(f"torrent has {len(files)} files (pads included), over {MAX_FILES}")
    real_paths = make_unique([(*prefix, *f.rel) for f in files if not f.is_pad])
    it = iter(real_paths)
    out: list[FileEntry] = []
    offset = 0
    for f in files:
        path = (*prefix, *f.rel) if f.is_pad else next(it)
        out.append(
            FileEntry(
                path=path,
                length=f.length,
                offset=offset,
                attr=f.attr,
                pieces_root=f.pieces_root,
                symlink_path=(*prefix, *f.symlink_rel) if f.symlink_rel is not None else None,
                mtime=f.mtime,
                url_path=((*url_prefix, *(f.raw_rel or f.rel)) if not f.is_pad else None),
            )
        )
        offset += f.length
        if offset > MAX_TOTAL_LENGTH:
            raise MetainfoError(f"torrent is larger than {MAX_TOTAL_LENGTH} bytes")
    return out, offset


def _check_layers(
    entries: list[FileEntry], layers: dict[bytes, Any], piece_length: int
) -> dict[bytes, bytes]:
    """Validate BEP 52 piece layers against every file larger than one piece.

    A layer must have one 32-byte hash per piece of its file and hash up to the file's pieces
    root; otherwise v2 piece verification would trust hashes the infohash does not cover.
    """
    kept: dict[bytes, bytes] = {}
    for f in entries:
        if f.pieces_root is None or f.length <= piece_length or f.pieces_root in kept:
            continue
        label = "/".join(f.path)
        layer = layers.get(f.pieces_root)
        if not isinstance(layer, bytes):
            raise MetainfoError(f"piece layers lack the layer of {label!r}")
        count = -(-f.length // piece_length)
        if len(layer) != count * HASH_SIZE:
            raise MetainfoError(
                f"piece layer of {label!r} holds {len(layer)} bytes, expected {count * HASH_SIZE}"
            )
        hashes = [layer[i : i + HASH_SIZE] for i in range(0, len(layer), HASH_SIZE)]
        if file_root(hashes, piece_length) != f.pieces_root:
            raise MetainfoError(f"piece layer of {label!r} does not match its pieces root")
        kept[f.pieces_root] = layer
    return kept


# --------------------------------------------------------------------------------------------
# small helpers for untrusted values
# --------------------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    """Text from a torrent: UTF-8, with invalid bytes replaced rather than refused."""
    return raw.decode("utf-8", errors="replace")


def _pick_utf8(d: dict[bytes, Any], key: bytes) -> bytes | None:
    """``key.utf-8`` when present (old clients wrote it beside a local-codepage ``key``)."""
    for k in (key + b".utf-8", key):
        v = d.get(k)
        if isinstance(v, bytes):
            return v
    return None


def _is_path_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(p, bytes) for p in v)


def _opt_text(d: dict[bytes, Any], key: bytes) -> str | None:
    raw = _pick_utf8(d, key)
    return _decode(raw) if raw is not None else None


def _opt_int(v: Any) -> int | None:
    return v if isinstance(v, int) else None


def _url(v: Any) -> str | None:
    """A tracker or web-seed URL, or None if it is not one we would ever send a request to.

    Control characters (a newline would let a torrent inject HTTP headers) and absurd lengths
    are refused here, once, rather than in every tracker client.
    """
    if not isinstance(v, bytes) or len(v) > MAX_URL_LENGTH:
        return None
    url = _decode(v).strip()
    if not url or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    return url


def _trackers(top: dict[bytes, Any]) -> tuple[tuple[str, ...], ...]:
    """BEP 12 tiers (order kept, duplicates dropped); ``announce`` only when there are none."""
    seen: set[str] = set()
    tiers: list[tuple[str, ...]] = []
    announce_list = top.get(b"announce-list")
    if isinstance(announce_list, list):
        for tier in announce_list:
            urls = []
            for item in tier if isinstance(tier, list) else [tier]:
                url = _url(item)
                if url is not None and url not in seen and len(seen) < MAX_URLS:
                    seen.add(url)
                    urls.append(url)
            if urls:
                tiers.append(tuple(urls))
    if not tiers:
        url = _url(top.get(b"announce"))
        if url is not None:
            tiers.append((url,))
    return tuple(tiers)


def _web_seeds(v: Any) -> tuple[str, ...]:
    """BEP 19 ``url-list``: one string or a list of them."""
    items = v if isinstance(v, list) else [v]
    out: list[str] = []
    for item in items:
        url = _url(item)
        if url is not None and url not in out and len(out) < MAX_URLS:
            out.append(url)
    return tuple(out)


def _nodes(v: Any) -> tuple[tuple[str, int], ...]:
    """BEP 5 ``nodes``: ``[[host, port], ...]``; malformed entries are skipped."""
    if not isinstance(v, list):
        return ()
    out: list[tuple[str, int]] = []
    for item in v[:MAX_NODES]:
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], bytes)
            and 0 < len(item[0]) <= 255
            and isinstance(item[1], int)
            and 0 < item[1] < 65536
        ):
            out.append((_decode(item[0]), item[1]))
    return tuple(out)
