"""Fast-resume data: what a torrent had durably on disk at its last checkpoint.

Format: one bencoded dictionary (``ccbt-resume-version`` = :data:`RESUME_VERSION`), written by
:mod:`ccbt_engine.state` atomically (temp file + fsync + rename). Bencode because the engine
already has a strict, bounded decoder for hostile input, and binary bitfields need no escaping.

The file is *untrusted* on load: someone may have edited it, a disk may have mangled it, or it
may belong to an older version. :func:`decode_resume` and :func:`validate_resume` raise only
:class:`ResumeError`; the engine's answer to that is "recheck", never a crash.

Trust on load (:func:`check_with_resume`) works per file, from the (size, mtime) each file had
when the checkpoint was taken:

* size changed, file vanished, or mtime went backwards → doubtful: every piece touching that
  file is hashed again (only those pieces, not the whole torrent);
* mtime moved forward → expected after a crash (the engine kept writing newly verified pieces
  after its last checkpoint, and it never rewrites a verified piece), so the claimed pieces
  are trusted; but when the checkpoint was *clean* (written after the torrent stopped, so no
  write could follow it), a newer mtime means someone else wrote the file → doubtful;
* otherwise the claimed pieces of that file are trusted without reading them.

Statistics (uploaded/downloaded totals, active and seeding seconds) are carried across restarts
like qBittorrent's, so the share-ratio and seeding-time limits do not start over; a field
missing from an older file reads as 0.

Partial pieces: the checkpoint flushes the write cache first, so the blocks it lists are on
disk; they are restored into the picker and the piece is hashed as usual once its remaining
blocks arrive, so a wrong block costs one piece's re-download, never bad data.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccbt_engine.bencode import BencodeError, decode, encode
from ccbt_engine.metainfo import TorrentInfo
from ccbt_engine.storage.files import TorrentStorage
from ccbt_engine.storage.layout import PieceLayout

__all__ = [
    "BLOCK_SIZE",
    "MAX_RESUME_SIZE",
    "RESUME_VERSION",
    "FileStamp",
    "ResumeData",
    "ResumeError",
    "ResumeOutcome",
    "check_with_resume",
    "decode_resume",
    "encode_resume",
    "fsync_files",
    "stamp_files",
    "validate_resume",
]

RESUME_VERSION = 1
BLOCK_SIZE = 16 * 1024
#: a resume file is a few bitfields and lists; 64 MiB covers 100k files and 4M pieces
MAX_RESUME_SIZE = 64 * 1024 * 1024
#: known peers kept in a resume file (more is tracker/DHT work, not resume work)
MAX_PEERS = 500
_MAX_INT = 2**63 - 1


class ResumeError(ValueError):
    """Resume data that cannot be used (corrupt, truncated, foreign or from another version)."""


@dataclass(frozen=True, slots=True)
class FileStamp:
    """A file's size and modification time (ns) when the checkpoint was taken."""

    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ResumeData:
    """One torrent's checkpoint. ``pieces`` is a bitfield in BitTorrent bit order."""

    info_hash: bytes
    save_path: str
    num_pieces: int
    pieces: bytes
    #: piece -> bitmap (one bit per 16 KiB block, BitTorrent order) of blocks written to disk
    partial: Mapping[int, bytes] = field(default_factory=dict)
    #: one per file of the torrent: None for pad files and files that did not exist
    files: tuple[FileStamp | None, ...] = ()
    #: the skipped files' part file, or None when there was none
    part_file: FileStamp | None = None
    file_priorities: tuple[int, ...] = ()
    #: payload totals of every session so far (the share ratio limit compares them)
    uploaded: int = 0
    downloaded: int = 0
    #: seconds running (downloading or seeding), every session so far
    active_seconds: int = 0
    #: seconds in the seeding state, every session so far (``limits.seed_time_limit_min``);
    #: files written before this field existed read as 0
    seeding_seconds: int = 0
    added_time: int = 0
    completed_time: int = 0
    paused: bool = False
    sequential: bool = False
    download_limit: int = 0
    upload_limit: int = 0
    peers: tuple[tuple[str, int], ...] = ()
    #: written after the torrent stopped: no write can have followed it
    clean: bool = False
    checkpoint_time: int = 0

    def has_piece(self, index: int) -> bool:
        return bool(self.pieces[index >> 3] & (0x80 >> (index & 7)))

    def claimed(self) -> int:
        """How many pieces the checkpoint says are verified."""
        return sum(bin(b).count("1") for b in self.pieces)


# -------------------------------------------------------------------------- encoding


def _bits_to_bytes(bits: Sequence[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def blocks_bitmap(blocks: Sequence[int], num_blocks: int) -> bytes:
    """Bitmap of ``blocks`` (block indexes) for a piece of ``num_blocks`` blocks."""
    bits = [False] * num_blocks
    for b in blocks:
        bits[b] = True
    return _bits_to_bytes(bits)


def bitmap_blocks(bitmap: bytes) -> list[int]:
    """Block indexes set in a bitmap."""
    return [i for i in range(len(bitmap) * 8) if bitmap[i >> 3] & (0x80 >> (i & 7))]


def _stamp_out(s: FileStamp | None) -> list[int]:
    return [] if s is None else [s.size, s.mtime_ns]


def encode_resume(data: ResumeData) -> bytes:
    """The resume file's bytes (canonical bencode)."""
    return encode(
        {
            b"ccbt-resume-version": RESUME_VERSION,
            b"info-hash": data.info_hash,
            b"save-path": data.save_path.encode("utf-8", "surrogateescape"),
            b"num-pieces": data.num_pieces,
            b"pieces": data.pieces,
            b"partial": [[p, bm] for p, bm in sorted(data.partial.items())],
            b"files": [_stamp_out(s) for s in data.files],
            b"part-file": _stamp_out(data.part_file),
            b"file-priorities": list(data.file_priorities),
            b"uploaded": data.uploaded,
            b"downloaded": data.downloaded,
            b"active-seconds": data.active_seconds,
            b"seeding-seconds": data.seeding_seconds,
            b"added-time": data.added_time,
            b"completed-time": data.completed_time,
            b"paused": int(data.paused),
            b"sequential": int(data.sequential),
            b"limits": [data.download_limit, data.upload_limit],
            b"peers": [[h.encode("ascii"), p] for h, p in data.peers[:MAX_PEERS]],
            b"clean": int(data.clean),
            b"checkpoint-time": data.checkpoint_time,
        }
    )


# -------------------------------------------------------------------------- decoding


def _get(d: dict[bytes, Any], key: str, kind: type, default: Any = None) -> Any:
    value = d.get(key.encode(), default)
    if value is None or not isinstance(value, kind) or isinstance(value, bool):
        raise ResumeError(f"resume data: {key!r} missing or not {kind.__name__}")
    return value


def _count(d: dict[bytes, Any], key: str, default: int = 0) -> int:
    value = _get(d, key, int, default)
    if not 0 <= value <= _MAX_INT:
        raise ResumeError(f"resume data: {key!r} out of range")
    return int(value)


def _stamp_in(raw: Any, what: str) -> FileStamp | None:
    if not isinstance(raw, list):
        raise ResumeError(f"resume data: {what} is not a list")
    if not raw:
        return None
    if len(raw) != 2 or not all(isinstance(v, int) and 0 <= v <= _MAX_INT for v in raw):
        raise ResumeError(f"resume data: {what} is not [size, mtime_ns]")
    return FileStamp(raw[0], raw[1])


def _peer_in(raw: Any) -> tuple[str, int]:
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not isinstance(raw[0], bytes)
        or not isinstance(raw[1], int)
        or not 0 < raw[1] < 65536
        or not 0 < len(raw[0]) <= 64
    ):
        raise ResumeError("resume data: a peer is not [host, port]")
    try:
        host = raw[0].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ResumeError("resume data: a peer's host is not ASCII") from exc
    return host, raw[1]


def decode_resume(raw: bytes) -> ResumeData:
    """Parse a resume file. Raises only :class:`ResumeError` (never trust the bytes)."""
    if len(raw) > MAX_RESUME_SIZE:
        raise ResumeError("resume data too large")
    try:
        top = decode(raw)
    except BencodeError as exc:
        raise ResumeError(f"resume data is not valid bencode: {exc}") from exc
    if not isinstance(top, dict):
        raise ResumeError("resume data is not a dictionary")
    version = top.get(b"ccbt-resume-version")
    if version != RESUME_VERSION:
        raise ResumeError(f"resume data version {version!r} is not {RESUME_VERSION}")
    info_hash = _get(top, "info-hash", bytes)
    if len(info_hash) not in (20, 32):
        raise ResumeError("resume data: info-hash is not 20 or 32 bytes")
    try:
        save_path = _get(top, "save-path", bytes).decode("utf-8", "surrogateescape")
    except UnicodeDecodeError as exc:  # pragma: no cover - surrogateescape decodes anything
        raise ResumeError("resume data: save-path is not text") from exc
    if not save_path or "\0" in save_path:
        raise ResumeError("resume data: save-path is empty or has a NUL")
    num_pieces = _count(top, "num-pieces")
    pieces = _get(top, "pieces", bytes)
    if len(pieces) != (num_pieces + 7) // 8:
        raise ResumeError("resume data: bitfield length does not match num-pieces")
    if num_pieces % 8 and pieces and pieces[-1] & (0xFF >> (num_pieces % 8)):
        raise ResumeError("resume data: bitfield has spare bits set")
    partial: dict[int, bytes] = {}
    for entry in _get(top, "partial", list, []):
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], int)
            or not isinstance(entry[1], bytes)
            or not 0 <= entry[0] < num_pieces
            or entry[0] in partial
        ):
            raise ResumeError("resume data: a partial piece is not [index, bitmap]")
        partial[entry[0]] = entry[1]
    files = tuple(_stamp_in(s, "a file stamp") for s in _get(top, "files", list, []))
    prios = _get(top, "file-priorities", list, [])
    if not all(isinstance(p, int) and 0 <= p <= 7 for p in prios):
        raise ResumeError("resume data: file priorities must be 0..7")
    limits = _get(top, "limits", list, [0, 0])
    if len(limits) != 2 or not all(isinstance(v, int) and 0 <= v <= _MAX_INT for v in limits):
        raise ResumeError("resume data: limits is not [down, up]")
    peers_raw = _get(top, "peers", list, [])
    if len(peers_raw) > MAX_PEERS:
        raise ResumeError("resume data: too many peers")
    return ResumeData(
        info_hash=info_hash,
        save_path=save_path,
        num_pieces=num_pieces,
        pieces=pieces,
        partial=partial,
        files=files,
        part_file=_stamp_in(_get(top, "part-file", list, []), "part-file"),
        file_priorities=tuple(prios),
        uploaded=_count(top, "uploaded"),
        downloaded=_count(top, "downloaded"),
        active_seconds=_count(top, "active-seconds"),
        seeding_seconds=_count(top, "seeding-seconds"),
        added_time=_count(top, "added-time"),
        completed_time=_count(top, "completed-time"),
        paused=bool(_count(top, "paused")),
        sequential=bool(_count(top, "sequential")),
        download_limit=limits[0],
        upload_limit=limits[1],
        peers=tuple(_peer_in(p) for p in peers_raw),
        clean=bool(_count(top, "clean")),
        checkpoint_time=_count(top, "checkpoint-time"),
    )


def validate_resume(data: ResumeData, info: TorrentInfo) -> None:
    """Check that ``data`` describes *this* torrent's geometry; raises :class:`ResumeError`."""
    if data.info_hash != info.info_hash:
        raise ResumeError("resume data belongs to another torrent")
    if data.num_pieces != info.num_pieces:
        raise ResumeError("resume data: wrong number of pieces")
    if len(data.files) != len(info.files):
        raise ResumeError("resume data: wrong number of files")
    if data.file_priorities and len(data.file_priorities) != len(info.files):
        raise ResumeError("resume data: wrong number of file priorities")
    for piece, bitmap in data.partial.items():
        nblocks = -(-info.piece_size(piece) // BLOCK_SIZE)
        if len(bitmap) != (nblocks + 7) // 8 or any(b >= nblocks for b in bitmap_blocks(bitmap)):
            raise ResumeError(f"resume data: block bitmap of piece {piece} does not fit")


# -------------------------------------------------------------------------- disk side


def stamp_files(
    info: TorrentInfo, save_path: Path
) -> tuple[list[FileStamp | None], FileStamp | None]:
    """(size, mtime_ns) of each file and of the part file; blocking (run it in a thread)."""
    out: list[FileStamp | None] = []
    for entry in info.files:
        out.append(None if entry.is_pad else _stat(save_path.joinpath(*entry.path)))
    return out, _stat(_part_path(info, save_path))


def _stat(path: Path) -> FileStamp | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return FileStamp(st.st_size, st.st_mtime_ns)


def _part_path(info: TorrentInfo, save_path: Path) -> Path:
    return save_path / f".{info.info_hash.hex()}.parts"


def fsync_files(info: TorrentInfo, save_path: Path) -> None:
    """fsync every existing file of the torrent (and its part file); blocking.

    Opened without O_CREAT, so nothing is created or truncated. Read-only on POSIX, where fsync
    flushes the file's dirty pages whatever the descriptor's mode; Windows' FlushFileBuffers
    needs write access.
    """
    mode = (os.O_RDWR | getattr(os, "O_BINARY", 0)) if os.name == "nt" else os.O_RDONLY
    paths = [save_path.joinpath(*e.path) for e in info.files if not e.is_pad and e.length]
    paths.append(_part_path(info, save_path))
    for path in paths:
        try:
            fd = os.open(path, mode | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError):
            continue
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # file system cannot fsync
                raise
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    """What loading resume data concluded."""

    verified: list[bool]
    #: piece -> block indexes known to be on disk (not verified pieces only)
    partial: dict[int, list[int]]
    #: claimed pieces accepted without reading them
    trusted: int
    #: pieces hashed because a file they touch looked changed
    rechecked: int
    #: indexes of the files whose pieces were rechecked
    doubtful_files: tuple[int, ...]


def _doubtful(recorded: FileStamp | None, now: FileStamp | None, clean: bool) -> bool:
    if recorded is None:
        # did not exist at the checkpoint: nothing claimed lives in it; appearing later is
        # normal after a crash (first write after the checkpoint) but not after a clean stop
        return now is not None and clean and now.size > 0
    if now is None or now.size != recorded.size or now.mtime_ns < recorded.mtime_ns:
        return True
    return now.mtime_ns > recorded.mtime_ns and clean


async def check_with_resume(
    storage: TorrentStorage,
    data: ResumeData,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> ResumeOutcome:
    """Decide which pieces are verified, trusting ``data`` where the files agree with it.

    ``data`` must have passed :func:`validate_resume` for ``storage.info``. Reads only the
    pieces touching doubtful files (see the module docstring).
    """
    info = storage.info
    loop = asyncio.get_running_loop()
    stamps, part_now = await loop.run_in_executor(None, stamp_files, info, storage.save_path)
    layout = PieceLayout(info)
    recheck: set[int] = set()
    doubtful: list[int] = []
    for i, entry in enumerate(info.files):
        if entry.is_pad or entry.length == 0:
            continue
        if _doubtful(data.files[i], stamps[i], data.clean):
            doubtful.append(i)
            first, last = layout.file_piece_range(i)
            recheck.update(range(first, last + 1))
    if _doubtful(data.part_file, part_now, data.clean):
        # the part file holds the skipped files' share of boundary pieces
        prios = data.file_priorities or (1,) * len(info.files)
        for i, prio in enumerate(prios):
            if prio == 0 and not info.files[i].is_pad:
                first, last = layout.file_piece_range(i)
                recheck.update(range(first, last + 1))
    verified = [data.has_piece(p) and p not in recheck for p in range(info.num_pieces)]
    trusted = sum(verified)
    order = sorted(recheck)
    total = len(order)
    done = 0
    todo = iter(order)

    async def worker() -> None:
        nonlocal done
        for piece in todo:
            verified[piece] = await storage.check_piece(piece)
            done += 1
            if progress is not None:
                progress(done, total)

    if order:
        await asyncio.gather(*(worker() for _ in range(min(workers, total))))
    partial = {
        p: bitmap_blocks(bm)
        for p, bm in data.partial.items()
        if p not in recheck and not verified[p] and bm.count(0) != len(bm)
    }
    return ResumeOutcome(verified, partial, trusted, total, tuple(doubtful))
