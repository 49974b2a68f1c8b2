"""A torrent's files on disk: block writes with a write-behind cache, reads, piece hashing.

Why it looks like this:

* All disk I/O and hashing runs on executor threads (results come back through handoff.py);
  the loop only moves bytes between dicts. Positional I/O (``os.pread``/``os.pwritev``)
  means threads sharing a file descriptor never race on a seek position.
* Open descriptors live in a bounded LRU pool (:class:`FilePool`) so a torrent with 100k files
  does not exhaust the process's descriptor limit; a descriptor in use by a thread is never closed
  under it.
* Blocks are cached per piece until the piece is hashed (:meth:`TorrentStorage.hash_piece` hashes
  the cached piece without re-reading it and writes it only if it verifies, so corrupt pieces
  never reach the disk), until :meth:`~TorrentStorage.flush`, or until the cache is over budget
  (oldest pieces are written first).
* Pad bytes are zeros by definition: never read, never written.
* Every ``OSError`` becomes a :class:`~ccbt_engine.storage.errors.StorageError` naming the path
  and the operation; nothing is lost on failure (unwritten blocks go back to the cache), so
  the same call can be retried once the user has freed space.

Skipped files (priority 0) never appear on disk: the picker never asks for a piece only skipped
files touch, and the skipped file's share of a boundary piece (one shared with a wanted file)
goes to a libtorrent-style part file ``<save_path>/.<infohash hex>.parts`` (:class:`PartFile`),
which reads also consult. Un-skipping a file moves its bytes from there into the file. A file
that already exists when it is skipped keeps being used (as libtorrent does). The part file's
one descriptor is outside the :class:`FilePool` budget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import heapq
import itertools
import os
import struct
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from ccbt_engine.metainfo import TorrentInfo
from ccbt_engine.storage.direct import (
    ALIGN,
    DIRECT_MIN,
    HAVE_O_DIRECT,
    all_aligned,
    direct_file_system,
    mount_table,
    open_direct,
    page_aligned,
    plan_direct,
)
from ccbt_engine.storage.errors import Operation, StorageError
from ccbt_engine.storage.handoff import Handoff, fallback_executor
from ccbt_engine.storage.hashing import verify_piece
from ccbt_engine.storage.layout import MAX_PRIORITY, PieceLayout
from ccbt_engine.storage.readcache import CHUNK, ChunkKey, ReadCache, chunk_span

Preallocate = Literal["none", "sparse", "full"]
WriteMode = Literal["direct", "cached"]
T = TypeVar("T")

MIB = 1024 * 1024
_IOV_MAX = 1024
_O_FLAGS = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
#: torrent files are opened without following a final symlink (see ``_open_sync``); on Linux
#: the opened descriptor's real path is checked too, which catches a swapped parent folder
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_PROC_FD = "/proc/self/fd/%d" if os.path.isdir("/proc/self/fd") else ""
_ZERO_CHUNK = bytes(MIB)
#: the block size (and grid) every client requests: see ``_PieceBuf.filled``
_GRID = 16 * 1024
#: finished piece buffers kept for the next pieces (at least one, else this many bytes' worth)
_SPARE_BYTES = 8 * MIB


# Positional I/O. Windows has neither pread nor pwrite: there a process-wide lock makes
# seek + read/write atomic (slower, but correct). Module-level flags so tests can force it.
_HAVE_PWRITEV = hasattr(os, "pwritev")
_HAVE_PREADV = hasattr(os, "preadv")
_HAVE_PREAD = hasattr(os, "pread")
_SEEK_LOCK = threading.Lock()


def _write_at(fd: int, views: list[memoryview], offset: int) -> int:
    """One positional write of (a prefix of) ``views``; returns bytes written."""
    if _HAVE_PWRITEV:
        return os.pwritev(fd, views[:_IOV_MAX], offset)
    if _HAVE_PREAD:
        return os.pwrite(fd, views[0], offset)
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, views[0])


def _read_at(fd: int, out: memoryview, offset: int) -> int:
    """One positional read into ``out``; returns bytes read (0 at end of file)."""
    if _HAVE_PREADV:
        return os.preadv(fd, [out], offset)
    if _HAVE_PREAD:
        data = os.pread(fd, len(out), offset)
    else:
        with _SEEK_LOCK:
            os.lseek(fd, offset, os.SEEK_SET)
            data = os.read(fd, len(out))
    out[: len(data)] = data
    return len(data)


def write_all_at(fd: int, views: list[memoryview], offset: int) -> None:
    """Write every byte of ``views`` at ``offset`` (loops over short writes)."""
    while views:
        n = _write_at(fd, views, offset)
        if n <= 0:
            raise OSError(errno.EIO, "Write made no progress")
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views = views[1:]
        if n:
            views = [views[0][n:], *views[1:]]


def read_all_at(fd: int, out: memoryview, offset: int) -> int:
    """Fill ``out`` from ``offset``; returns how many bytes there were (less at end of file)."""
    done = 0
    while done < len(out):
        n = _read_at(fd, out[done:], offset + done)
        if n == 0:
            break
        done += n
    return done


@dataclass(slots=True, eq=False)
class _Handle:
    index: int
    fd: int
    writable: bool
    users: int = 0
    retired: bool = False
    #: a second descriptor on the same file opened ``O_DIRECT`` (storage/direct.py): None until
    #: the first direct write asks for it, -1 when the file system refused
    direct: int | None = None


class FilePool:
    """At most ``max_open`` descriptors open at once, shared by worker threads, LRU evicted.

    A thread holds at most one handle at a time (acquire → one syscall loop → release), so when
    every descriptor is in use a thread waits for one to be released instead of going over the
    limit. ``peak`` records the most descriptors ever open at once (tests assert on it).
    """

    def __init__(self, max_open: int) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.max_open = max_open
        self.peak = 0
        self._cond = threading.Condition()
        self._handles: OrderedDict[int, _Handle] = OrderedDict()
        self._count = 0  # descriptors open or being opened, retired-but-in-use ones included

    @property
    def open_count(self) -> int:
        with self._cond:
            return self._count

    def acquire(self, index: int, writable: bool, opener: Callable[[bool], int]) -> _Handle:
        """A handle for file ``index``; ``opener(writable)`` opens it when not already open."""
        with self._cond:
            while True:
                h = self._handles.get(index)
                if h is not None:
                    if h.writable or not writable:
                        h.users += 1
                        self._handles.move_to_end(index)
                        return h
                    self._retire(h)  # read-only descriptor, but we need to write: reopen
                    continue
                if self._count < self.max_open:
                    break
                if not self._evict_one():
                    self._cond.wait()
            self._count += 1
            self.peak = max(self.peak, self._count)
        try:
            fd = opener(writable)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()
            raise
        handle = _Handle(index, fd, writable, users=1)
        with self._cond:
            old = self._handles.get(index)
            if old is not None:
                self._retire(old)
            self._handles[index] = handle
        return handle

    def release(self, handle: _Handle) -> None:
        with self._cond:
            handle.users -= 1
            if handle.users == 0 and handle.retired:
                self._close(handle)
            self._cond.notify_all()

    def close_all(self) -> None:
        """Close every idle descriptor now; ones in use close when released."""
        with self._cond:
            for h in list(self._handles.values()):
                self._retire(h)

    def _retire(self, h: _Handle) -> None:
        if self._handles.get(h.index) is h:
            del self._handles[h.index]
        if h.users == 0:
            self._close(h)
        else:
            h.retired = True

    def _evict_one(self) -> bool:
        for h in self._handles.values():
            if h.users == 0:
                self._retire(h)
                return True
        return False

    def _close(self, h: _Handle) -> None:
        with contextlib.suppress(OSError):
            os.close(h.fd)
        if h.direct is not None and h.direct >= 0:
            with contextlib.suppress(OSError):
                os.close(h.direct)
        self._count -= 1
        self._cond.notify_all()


class PartFile:
    """Bytes of skipped files that share a piece with a wanted file (libtorrent's ``.parts``).

    So that a skipped file never appears on disk, its part of a boundary piece lives here: one
    slot of ``piece_length`` bytes per such piece, at the same offsets as in the piece. Layout:
    a header (magic, piece count, piece length, then one little-endian int32 slot number per
    piece, -1 for none) padded to 4 KiB, then the slots. Not thread-safe: the owner serialises.
    """

    MAGIC = b"CCBTPRT1"

    def __init__(self, path: str, num_pieces: int, piece_length: int) -> None:
        self.path = path
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.header_size = -(-(16 + 4 * num_pieces) // 4096) * 4096
        self._fd: int | None = None
        self._loaded = False
        self._slots: dict[int, int] = {}
        self._free: list[int] = []
        self._next_slot = 0

    def has(self, piece: int) -> bool:
        self._load()
        return piece in self._slots

    def has_slots(self) -> bool:
        self._load()
        return bool(self._slots)

    def _error(self, exc: OSError, operation: Operation) -> StorageError:
        return StorageError.from_oserror(exc, self.path, operation)

    def _load(self) -> None:
        """Read the slot table of an existing part file (a foreign or broken one is ignored)."""
        if self._loaded:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | _O_FLAGS)
        except FileNotFoundError:
            self._loaded = True
            return
        except OSError as exc:
            raise self._error(exc, "open") from exc
        head_buf = bytearray(16 + 4 * self.num_pieces)
        try:
            head = bytes(head_buf[: read_all_at(fd, memoryview(head_buf), 0)])
        except OSError as exc:
            os.close(fd)
            raise self._error(exc, "read") from exc
        self._fd = fd
        self._loaded = True
        expect = self.MAGIC + struct.pack("<II", self.num_pieces, self.piece_length)
        if len(head) != 16 + 4 * self.num_pieces or not head.startswith(expect):
            self._write_header()  # not ours (or torn): start empty
            return
        for piece, (slot,) in enumerate(struct.iter_unpack("<i", head[16:])):
            if slot >= 0:
                self._slots[piece] = slot
        used = set(self._slots.values())
        self._next_slot = max(used, default=-1) + 1
        self._free = [s for s in range(self._next_slot) if s not in used]
        heapq.heapify(self._free)

    def _write_header(self) -> None:
        assert self._fd is not None
        head = self.MAGIC + struct.pack("<II", self.num_pieces, self.piece_length)
        try:
            os.ftruncate(self._fd, 0)
            write_all_at(self._fd, [memoryview(head + b"\xff" * (4 * self.num_pieces))], 0)
        except OSError as exc:
            raise self._error(exc, "write") from exc

    def _slot_for_write(self, piece: int) -> int:
        self._load()
        if self._fd is None:
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _O_FLAGS, 0o666)
            except OSError as exc:
                raise self._error(exc, "open") from exc
            self._write_header()
        slot = self._slots.get(piece)
        if slot is None:
            slot = heapq.heappop(self._free) if self._free else self._next_slot
            self._next_slot = max(self._next_slot, slot + 1)
            self._set_entry(piece, slot)
            self._slots[piece] = slot
        return slot

    def _set_entry(self, piece: int, slot: int) -> None:
        assert self._fd is not None
        try:
            write_all_at(self._fd, [memoryview(struct.pack("<i", slot))], 16 + 4 * piece)
        except OSError as exc:
            raise self._error(exc, "write") from exc

    def write(self, piece: int, offset: int, views: list[memoryview]) -> None:
        """Store ``views`` at ``offset`` within ``piece``'s slot."""
        pos = self.header_size + self._slot_for_write(piece) * self.piece_length + offset
        assert self._fd is not None
        try:
            write_all_at(self._fd, views, pos)
        except OSError as exc:
            raise self._error(exc, "write") from exc

    def read_into(self, piece: int, offset: int, out: memoryview) -> None:
        """Fill ``out`` from ``piece``'s slot; a piece without a slot is missing data."""
        self._load()
        slot = self._slots.get(piece)
        if slot is None or self._fd is None:
            raise StorageError(errno.ENOENT, "Data of a skipped file is missing", self.path, "read")
        pos = self.header_size + slot * self.piece_length + offset
        try:
            n = read_all_at(self._fd, out, pos)
        except OSError as exc:
            raise self._error(exc, "read") from exc
        out[n:] = bytes(len(out) - n)  # never-written tail of a sparse slot

    def free(self, piece: int) -> None:
        slot = self._slots.pop(piece, None)
        if slot is not None:
            self._set_entry(piece, -1)
            heapq.heappush(self._free, slot)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._loaded = False
        self._slots.clear()
        self._free.clear()
        self._next_slot = 0

    def remove(self) -> None:
        """Close and delete the file (when it holds nothing, or with the torrent's data)."""
        self.close()
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "delete") from exc


#: jobs waiting for a disk-pool thread from which the loop hashes the next piece itself as it
#: arrives (see :meth:`TorrentStorage.hash_ahead`); 0: always
HASH_AHEAD_QUEUE = 1
#: most bytes one :meth:`TorrentStorage.hash_ahead` call hashes on the loop (~0.5 ms), what one
#: read brings: a late block that makes a whole large piece contiguous does not stall the loop
HASH_AHEAD_MAX = 1024 * 1024


@dataclass(slots=True, eq=False)
class _PieceBuf:
    """One piece being received: each block is copied into place in a piece-sized buffer.

    One allocation per piece instead of a ``bytes`` per block; the hash runs over the buffer as
    it is (no assembling copy) and the write is one ``pwritev`` per file slice. ``data`` is the
    allocation and ``view`` the piece's bytes in it (page-aligned for direct writes, so ``data``
    may be longer). ``blocks`` maps each block's offset to a view of its bytes (readers and
    smart ban take those views). A buffer is reused only once no view of it is left, so a view
    handed out stays valid after the piece leaves the cache; once a piece is being hashed or
    written its buffer is not written to again (blocks arriving meanwhile start a new buffer).
    """

    data: bytearray
    view: memoryview
    blocks: dict[int, memoryview] = field(default_factory=dict)
    #: bytes of the blocks, and whether one broke the 16 KiB grid every client requests on: on
    #: the grid blocks cannot overlap, so ``filled == len(data)`` proves the piece complete
    #: without sorting and merging its intervals
    filled: int = 0
    irregular: bool = False
    #: SHA-1 of ``view[:hashed]``, fed by :meth:`TorrentStorage.hash_ahead` on the loop;
    #: ``hashed`` -1: not hashed ahead (left to the pool, or hashed bytes were overwritten)
    sha: hashlib._Hash | None = None
    hashed: int = 0

    @property
    def nbytes(self) -> int:
        """Memory the piece holds, as the cache budget counts it (its size; the alignment
        slack of a direct-write buffer, 4 KiB, is not counted)."""
        return len(self.view)

    def runs(self) -> list[tuple[int, memoryview]]:
        """The received bytes as (offset, view) runs: adjacent blocks merged into one view."""
        spans = _merge([(b, b + len(v)) for b, v in self.blocks.items()])
        return [(s, self.view[s:e]) for s, e in spans]


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _is_covered(needed: list[tuple[int, int]], have: list[tuple[int, int]]) -> bool:
    """Whether every interval of ``needed`` lies inside one merged interval of ``have``."""
    j = 0
    for s, e in needed:
        while j < len(have) and have[j][1] < e:
            j += 1
        if j == len(have) or have[j][0] > s:
            return False
    return True


def _cut(views: list[memoryview], starts: list[int], off: int, length: int) -> list[memoryview]:
    """Sub-views covering ``[off, off + length)`` of the concatenation of ``views``."""
    out: list[memoryview] = []
    end = off + length
    for v, s in zip(views, starts, strict=True):
        e = s + len(v)
        if e <= off:
            continue
        if s >= end:
            break
        out.append(v[max(off, s) - s : min(end, e) - s])
    return out


class _PieceGuard:
    """``async with storage._guard(piece)``: the piece is in ``busy`` until the block exits.

    A class rather than an ``asynccontextmanager`` generator: every downloaded piece passes
    through one (its hash and write), and the generator machinery cost ~25 us of loop time each.
    """

    __slots__ = ("_busy", "_event", "_piece")

    def __init__(self, busy: dict[int, asyncio.Event], piece: int) -> None:
        self._busy = busy
        self._piece = piece

    async def __aenter__(self) -> None:
        busy, piece = self._busy, self._piece
        while (ev := busy.get(piece)) is not None:
            await ev.wait()
        self._event = busy[piece] = asyncio.Event()

    async def __aexit__(self, *exc_info: object) -> None:
        del self._busy[self._piece]
        self._event.set()


class TorrentStorage:
    """Reads and writes one torrent's pieces under ``save_path``."""

    def __init__(
        self,
        info: TorrentInfo,
        save_path: Path,
        *,
        preallocate: Preallocate = "sparse",
        max_open_files: int = 64,
        executor: concurrent.futures.Executor | None = None,
        write_cache_bytes: int = 16 * MIB,
        read_cache: ReadCache | None = None,
        write_mode: WriteMode = "direct",
    ) -> None:
        if preallocate not in ("none", "sparse", "full"):
            raise ValueError(f"preallocate must be none, sparse or full, not {preallocate!r}")
        if write_mode not in ("direct", "cached"):
            raise ValueError(f"write_mode must be direct or cached, not {write_mode!r}")
        self.info = info
        self.layout = PieceLayout(info)
        self.save_path = Path(os.path.abspath(save_path))
        self.preallocate: Preallocate = preallocate
        self.write_cache_bytes = write_cache_bytes
        #: "direct": large aligned writes skip the page cache where safe (storage/direct.py);
        #: read on every write, so a changed setting applies to the next piece
        self.write_mode: WriteMode = write_mode
        #: file index -> whether direct writes may be tried (its file system allows them and
        #: none was refused yet); decided on the file's first large write
        self._direct_ok: dict[int, bool] = {}
        #: /proc/self/mountinfo, read on the first large write (not once per file)
        self._mounts: list[tuple[str, str]] | None = None
        self.file_pool = FilePool(max_open_files)
        #: file index -> lock held around its writes (see _pwritev)
        self._write_locks: dict[int, threading.Lock] = {}
        #: the session's disk pool; a storage made without one (tests, tools) shares a fallback
        self._executor = executor if executor is not None else fallback_executor()
        #: results of ``_executor`` jobs back to the loop, wake-ups shared (see handoff.py)
        self._handoff: Handoff | None = None
        self._root = str(self.save_path)
        self._root_resolved: str | None = None  # see _real_root
        self._prios: tuple[int, ...] = tuple(1 for _ in info.files)
        self.part_file = PartFile(
            os.path.join(self._root, f".{info.info_hash.hex()}.parts"),
            info.num_pieces,
            info.piece_length,
        )
        # _part_lock serialises part-file I/O and routing decisions (worker threads only);
        # _state_lock guards the two fields below and is never held during I/O, so the loop
        # may take it in set_file_priorities without blocking on the disk.
        self._part_lock = threading.Lock()
        self._state_lock = threading.Lock()
        #: skipped file -> its bytes go to the part file (decided on first use: only if the file
        #: does not exist yet, so data already in a real file stays there, like libtorrent)
        self._use_part: dict[int, bool] = {}
        #: un-skipped files whose part-file bytes still have to move into the real file
        self._pending_export: set[int] = set()
        self._cache: OrderedDict[int, _PieceBuf] = OrderedDict()
        self._cached_bytes = 0
        #: buffers of pieces that left the cache, reused for new pieces once nothing views them
        #: any more: a fresh one is zero-filled and faulted in, a megabyte per piece
        self._spare: deque[bytearray] = deque()
        self._spare_max = max(1, _SPARE_BYTES // max(1, info.piece_length))
        self._busy: dict[int, asyncio.Event] = {}
        #: upload reads (see :meth:`read_blocks`): cached chunks, reads in flight, and a
        #: generation bumped by :meth:`invalidate_read_cache` so a read that started before an
        #: invalidation never lands in the cache. The session passes one drawing on its
        #: ``disk.read_cache_mb`` pool; alone, the storage gets a private default-sized one.
        self.read_cache = read_cache if read_cache is not None else ReadCache()
        self._reading: dict[ChunkKey, asyncio.Future[bytearray]] = {}
        self._read_gen = 0
        self._prefetching: set[asyncio.Task[list[memoryview]]] = set()
        #: v1 hashes and no pad bytes to zero first: pieces can be hashed as their blocks come
        self._can_hash_ahead = bool(info.piece_hashes) and not any(f.is_pad for f in info.files)
        #: see HASH_AHEAD_QUEUE
        self.hash_ahead_queue = HASH_AHEAD_QUEUE
        #: pieces whose SHA-1 the loop finished (tests and benchmarks look at it)
        self.pieces_hashed_ahead = 0

    # ------------------------------------------------------------------ public API

    @property
    def cached_bytes(self) -> int:
        """Bytes of blocks held in the write cache (not yet on disk)."""
        return self._cached_bytes

    def set_file_priorities(self, prios: Sequence[int]) -> None:
        """Per-file priority 0..7. Call it before any I/O (and before a recheck).

        Skipped (0) files are never created: their bytes in boundary pieces go to the part file.
        Un-skipping a file moves its bytes from the part file into the file, lazily on a worker
        thread (before the next I/O touching that file, or at :meth:`flush`).
        """
        if len(prios) != len(self.info.files):
            raise ValueError(f"need {len(self.info.files)} file priorities, got {len(prios)}")
        if any(not 0 <= p <= MAX_PRIORITY for p in prios):
            raise ValueError(f"file priorities must be within 0..{MAX_PRIORITY}")
        with self._state_lock:
            for i, (old, new) in enumerate(zip(self._prios, prios, strict=True)):
                if old == 0 and new != 0:
                    # its bytes may be in the part file (this session or an earlier one);
                    # the export decides, keeping _use_part[i] as the routing decision so far
                    self._pending_export.add(i)
                elif old != 0 and new == 0:
                    if i in self._pending_export:  # un-skipped and skipped again: nothing moved
                        self._pending_export.discard(i)
                    else:
                        self._use_part.pop(i, None)  # decide again on first use
            self._prios = tuple(prios)

    def file_path(self, file_index: int) -> Path:
        """Where file ``file_index`` lives (no containment check; see the I/O methods)."""
        return self.save_path.joinpath(*self.info.files[file_index].path)

    async def write_block(self, piece: int, begin: int, data: bytes | memoryview) -> None:
        """Queue a block; it reaches the disk on hash, flush or cache pressure.

        ``data`` is copied, so the caller may reuse its receive buffer. May raise
        :class:`StorageError` when making room in the cache fails (the block itself is kept).
        """
        if self.cache_block(piece, begin, data):
            await self.relieve_pressure()

    def cache_block(self, piece: int, begin: int, data: bytes | memoryview) -> bool:
        """Put a block in the write cache without leaving the event loop.

        The download hot path calls this for every 16 KiB block: a task and an executor hop per
        block cost more than the copy. Returns True when the cache is over its budget and the
        caller should schedule :meth:`relieve_pressure`.
        """
        n = len(data)
        buf = self._cache.get(piece)
        size = len(buf.view) if buf is not None else self.info.piece_size(piece)
        if begin < 0 or begin + n > size:
            raise ValueError(f"range {begin}+{n} outside piece {piece} of {size} bytes")
        if not n:
            return False
        if buf is None:
            buf = self._cache[piece] = _PieceBuf(*self._new_buffer(size))
            self._cached_bytes += size
        end = begin + n
        if begin < buf.hashed:
            buf.hashed = -1  # hashed bytes change (a resent block): the pool hashes it all
        buf.view[begin:end] = data  # the block's one copy
        old = buf.blocks.get(begin)
        buf.blocks[begin] = buf.view[begin:end]
        if old is None:
            buf.filled += n
        elif len(old) != n:
            buf.irregular = True
        if begin % _GRID or (n != _GRID and end != size):
            buf.irregular = True
        return self._cached_bytes > self.write_cache_bytes

    def hash_ahead(self, piece: int) -> None:
        """Feed the piece's SHA-1 with its blocks that now follow on from what it has hashed.

        Called on the loop once per read for each piece the read brought blocks of. The bytes
        were just copied there by this thread, so they are in this core's cache: SHA-1 runs at
        ~2,000 MiB/s here, against ~1,100-1,200 MiB/s on a disk thread that reads a finished
        piece from another core's cache or from memory (measured on the 2-core CI VMs; perf
        showed the pool's SHA-1 taking ~1.0 s per GiB, not the 0.6 s hashlib manages on hot
        data). It is extra work for the loop, so it is done only while the pool is behind: at
        least ``hash_ahead_queue`` jobs wait for a pool thread (any torrent's). On a machine with
        cores to spare the pool keeps up and hashes in parallel, as before; here (2 cores) the
        loop takes 35-45 % of the pieces of a 1 GiB download. That signal measured better than
        hashing every piece on the loop (the loop is the serial stage) and than counting this
        torrent's pieces in jobs (which the loop's own lag inflates). The decision is made per
        piece, at its first contiguous bytes; ``hashlib`` lets go of the GIL while it hashes.
        One call hashes at most :data:`HASH_AHEAD_MAX` bytes; whatever the loop has not hashed
        when the piece is complete, the pool hashes on from where it stopped.
        """
        buf = self._cache.get(piece)
        if buf is None or buf.hashed < 0 or not self._can_hash_ahead:
            return
        start = end = buf.hashed
        blocks = buf.blocks
        while (v := blocks.get(end)) is not None:
            end += len(v)
        end = min(end, start + HASH_AHEAD_MAX)  # the rest next time, or by the pool
        if end == start:
            return
        if buf.sha is None:
            if self._pool_waiting() < self.hash_ahead_queue:
                buf.hashed = -1  # the pool keeps up: it hashes this piece when complete
                return
            buf.sha = hashlib.sha1()
        buf.sha.update(buf.view[start:end])
        buf.hashed = end
        if end == len(buf.view):
            self.pieces_hashed_ahead += 1

    def _pool_waiting(self) -> int:
        """Jobs submitted to the disk pool that no thread has started yet (0 if unknown).

        ``ThreadPoolExecutor`` keeps them in ``_work_queue`` (there since Python 3.2, not
        public); another executor counts as never behind, so the pool hashes as before.
        """
        queue = getattr(self._executor, "_work_queue", None)
        return queue.qsize() if queue is not None else 0

    def cached_blocks(self, piece: int) -> dict[int, bytes | memoryview]:
        """Offset -> the piece's blocks still in the write cache (views, no copy).

        Taken before hashing, so smart ban can digest the blocks of a piece that fails. The
        values are read-only-by-convention ``memoryview`` slices of the piece buffer, which is
        not reused while a view of it exists.
        """
        buf = self._cache.get(piece)
        return dict(buf.blocks) if buf is not None else {}

    async def read_block(self, piece: int, begin: int, length: int) -> bytes:
        """``length`` bytes at ``begin`` in ``piece``; pad bytes read as zeros.

        Sees cached blocks. Raises :class:`StorageError` when a file is missing or too short.
        """
        self._check(piece, begin, length)
        async with self._guard(piece):
            buf = self._cache.get(piece)
            blocks = list(buf.blocks.items()) if buf else []
            from_disk = not (blocks and self._cache_covers(piece, begin, length, blocks))
            data = await self._run(self._read_sync, piece, begin, length, blocks, from_disk)
        return bytes(data)

    async def read_piece(self, piece: int) -> bytes:
        """The whole piece (pad bytes as zeros)."""
        return await self.read_block(piece, 0, self.info.piece_size(piece))

    # ------------------------------------------------------------------ upload reads

    def cached_reads(self, requests: Sequence[tuple[int, int, int]]) -> list[memoryview] | None:
        """Every (piece, begin, length) from the read cache, without leaving the loop; else None.

        Only for verified pieces (see :meth:`read_blocks`). Runs for every upload batch, so
        consecutive requests in the same chunk (the usual case) cost one slice each.
        """
        out: list[memoryview] = []
        last_piece = -1
        size = start = end = 0
        view: memoryview | None = None
        for piece, begin, length in requests:
            if piece != last_piece:
                size = self.info.piece_size(piece)  # IndexError for a bad piece
                if piece in self._cache or piece in self._busy:
                    return None
                last_piece, view = piece, None
            if begin < 0 or length < 0 or begin + length > size:
                raise ValueError(f"range {begin}+{length} outside piece {piece} of {size} bytes")
            if view is None or begin < start or begin + length > end:
                span = chunk_span(size, begin, length)
                if span is None:
                    return None
                data = self.read_cache.get((piece, span[0]))
                if data is None:
                    return None
                view, start, end = memoryview(data), span[0], span[0] + span[1]
            out.append(view[begin - start : begin - start + length])
        return out

    async def read_blocks(self, requests: Sequence[tuple[int, int, int]]) -> list[memoryview]:
        """The bytes of several (piece, begin, length) ranges of VERIFIED pieces, for uploading.

        Every chunk the ranges touch that is not cached is read in ONE worker call (a 16 KiB
        request no longer costs an executor round trip), then cached: the piece's next requests
        are served from memory. Concurrent callers needing the same chunk share one read. A piece
        with blocks still in the write cache, being written, or a range crossing a chunk
        boundary is read the ordinary way (:meth:`read_block`, uncached).

        Pieces not verified yet must not be read here: their bytes may still change and the
        cache would keep the old ones. Raises :class:`StorageError` like :meth:`read_block`.
        """
        loop = asyncio.get_running_loop()
        chunks: dict[ChunkKey, bytes | bytearray] = {}
        need: dict[ChunkKey, tuple[int, int, int]] = {}
        waits: dict[ChunkKey, asyncio.Future[bytearray]] = {}
        plan: list[ChunkKey | None] = []
        for piece, begin, length in requests:
            self._check(piece, begin, length)
            span = chunk_span(self.info.piece_size(piece), begin, length)
            if span is None or piece in self._cache or piece in self._busy:
                plan.append(None)
                continue
            key = (piece, span[0])
            plan.append(key)
            if key in chunks or key in need or key in waits:
                continue
            if (data := self.read_cache.get(key)) is not None:
                chunks[key] = data
            elif (fut := self._reading.get(key)) is not None:
                waits[key] = fut
            else:
                need[key] = (piece, span[0], span[1])
        if need:
            gen = self._read_gen
            mine = {key: loop.create_future() for key in need}
            for f in mine.values():  # a waiter may be gone: never warn about an unread error
                f.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._reading.update(mine)
            try:
                datas = await self._run(self._read_chunks_sync, list(need.values()))
            except BaseException as exc:
                for key, f in mine.items():
                    self._reading.pop(key, None)
                    if isinstance(exc, Exception):
                        f.set_exception(exc)
                    else:
                        f.cancel()
                raise
            for (key, f), data in zip(mine.items(), datas, strict=True):
                self._reading.pop(key, None)
                if gen == self._read_gen:
                    self.read_cache.put(key, data)
                chunks[key] = data
                f.set_result(data)
        for key, fut in waits.items():
            chunks[key] = await asyncio.shield(fut)  # our cancellation must not cancel theirs
        out: list[memoryview] = []
        for (piece, begin, length), where in zip(requests, plan, strict=True):
            if where is None:
                out.append(memoryview(await self.read_block(piece, begin, length)))
            else:
                off = begin - where[1]
                out.append(memoryview(chunks[where])[off : off + length])
        return out

    def prefetch(self, requests: Sequence[tuple[int, int, int]]) -> None:
        """Start reading the chunks of these ranges (verified pieces) in the background.

        Read-ahead for the upload path: while one batch is being sent, the disk reads of the
        next ones are already under way, so the loop rarely waits on a worker thread (whose
        wake-up can take a GIL switch interval while the loop is busy).
        """
        todo: dict[ChunkKey, tuple[int, int, int]] = {}
        last: ChunkKey | None = None
        for piece, begin, length in requests:
            if last is not None and piece == last[0] and last[1] <= begin < last[1] + CHUNK:
                continue  # same chunk as the previous request: the common case, keep it cheap
            self._check(piece, begin, length)
            span = chunk_span(self.info.piece_size(piece), begin, length)
            if span is None or piece in self._cache or piece in self._busy:
                last = None
                continue
            last = key = (piece, span[0])
            if key not in todo and key not in self.read_cache and key not in self._reading:
                todo[key] = (piece, begin, length)
        if todo:
            task = asyncio.ensure_future(self.read_blocks(list(todo.values())))
            self._prefetching.add(task)
            task.add_done_callback(self._prefetch_done)

    def _prefetch_done(self, task: asyncio.Task[list[memoryview]]) -> None:
        self._prefetching.discard(task)
        if not task.cancelled():
            task.exception()  # a failed read-ahead is retried (and reported) by the real read

    async def _stop_prefetch(self) -> None:
        tasks = list(self._prefetching)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def invalidate_read_cache(self, piece: int | None = None) -> None:
        """Forget cached upload reads of ``piece`` (or all): its bytes on disk may change."""
        self._read_gen += 1
        if piece is None:
            self.read_cache.clear()
        else:
            self.read_cache.discard_piece(piece)

    async def hash_piece(self, piece: int) -> bool:
        """Verify ``piece`` (v1 SHA-1, else v2 merkle); write it out if it came from the cache.

        A complete piece still in the cache is hashed from its buffer and, if it passes, written
        by the same worker call (one executor round trip per piece); if it fails its blocks are
        dropped without touching the disk. Otherwise pending blocks are written and the piece is
        read back. Raises :class:`StorageError` for I/O failures (missing files included; the
        piece's blocks are then back in the cache, so nothing is lost).
        """
        size = self.info.piece_size(piece)
        async with self._guard(piece):
            buf = self._cache.get(piece)
            if buf is not None and (
                (not buf.irregular and buf.filled == size)
                or self._cache_covers(piece, 0, size, list(buf.blocks.items()))
            ):
                del self._cache[piece]  # blocks arriving meanwhile start a new buffer
                ok = done = False
                try:
                    ok = await self._run(self._hash_write_sync, piece, buf)
                    done = True
                finally:
                    if done:
                        self._release(buf)
                    else:
                        self._restore(piece, buf)
                return ok
            await self._flush_locked(piece)
            return await self._run(self._hash_sync, piece)

    async def check_piece(self, piece: int) -> bool:
        """Like :meth:`hash_piece` for a recheck: unreadable data is just False, never an error.

        Cached blocks of the piece are not looked at (flush first, as :func:`recheck` does).
        """
        self.info.piece_size(piece)
        async with self._guard(piece):
            return await self._run(self.check_piece_sync, piece)

    async def flush(self) -> None:
        """Write every cached block (raises :class:`StorageError`; unwritten blocks are kept).

        Also finishes moving un-skipped files out of the part file, and lets go of the spare
        piece buffers (a finished torrent should not keep megabytes for pieces to come).
        """
        for piece in list(self._cache):
            async with self._guard(piece):
                await self._flush_locked(piece)
        self._spare.clear()
        if self._pending_export:
            await self._run(self._export_pending_sync)

    async def close(self) -> None:
        """Flush, then close every descriptor. The storage reopens files lazily if used again."""
        await self._stop_prefetch()
        self.invalidate_read_cache()
        try:
            await self.flush()
        finally:
            await self._run(self._close_sync)

    async def discard_cache(self) -> None:
        """Forget unwritten blocks (e.g. when a torrent is removed)."""
        for piece in list(self._cache):
            async with self._guard(piece):
                self._drop(piece)

    async def delete_files(self) -> None:
        """Remove the torrent's files and the folders that are left empty ("remove with data").

        The save folder itself is never removed. Files that are already gone are fine; the first
        other failure is raised after trying every file.
        """
        await self._stop_prefetch()
        self.invalidate_read_cache()
        await self.discard_cache()
        await self._run(self._close_sync)
        await self._run(self._delete_sync)

    async def create_empty_files(self) -> None:
        """Create the torrent's zero-length files (wanted ones); I/O never touches them."""
        await self._run(self._create_empty_sync)

    def file_progress(self, have: Sequence[bool]) -> list[int]:
        """Bytes of each file covered by verified pieces (``have`` is per piece).

        O(files) Python steps plus C-speed sums over ``have`` slices (a list or bytes works).
        """
        plen = self.info.piece_length
        out: list[int] = []
        for i, entry in enumerate(self.info.files):
            if entry.length == 0 or entry.is_pad:
                out.append(entry.length if entry.is_pad else 0)
                continue
            first, last = self.layout.file_piece_range(i)
            end = entry.offset + entry.length
            if first == last:
                out.append(entry.length if have[first] else 0)
                continue
            total = sum(have[first + 1 : last]) * plen
            if have[first]:
                total += (first + 1) * plen - entry.offset
            if have[last]:
                total += end - last * plen
            out.append(total)
        return out

    # ------------------------------------------------------------------ loop-side helpers

    def _check(self, piece: int, begin: int, length: int) -> None:
        size = self.info.piece_size(piece)
        if begin < 0 or length < 0 or begin + length > size:
            raise ValueError(f"range {begin}+{length} outside piece {piece} of {size} bytes")

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the executor; on cancellation, wait for the thread before unwinding.

        Waiting keeps the per-piece guards honest: a cancelled caller must not release a piece
        while a worker thread is still writing it.
        """
        loop = asyncio.get_running_loop()
        handoff = self._handoff
        if handoff is None or handoff.loop is not loop:
            handoff = self._handoff = Handoff(loop)
        return await handoff.run(self._executor, fn, *args)

    def _guard(self, piece: int) -> _PieceGuard:
        """One I/O operation per piece at a time (writes vs reads/hashes of the same piece)."""
        return _PieceGuard(self._busy, piece)

    def _needed(self, piece: int, begin: int, length: int) -> list[tuple[int, int]]:
        """Non-pad intervals of ``[begin, begin + length)`` in piece coordinates."""
        return [
            (begin + s.buffer_offset, begin + s.buffer_offset + s.length)
            for s in self.layout.slices(piece, begin, length)
        ]

    def _cache_covers(
        self, piece: int, begin: int, length: int, blocks: Sequence[tuple[int, bytes | memoryview]]
    ) -> bool:
        needed = self._needed(piece, begin, length)
        if sum(e - s for s, e in needed) > sum(len(d) for _, d in blocks):
            return False
        return _is_covered(needed, _merge([(b, b + len(d)) for b, d in blocks]))

    def _drop(self, piece: int) -> None:
        buf = self._cache.pop(piece, None)
        if buf is not None:
            self._release(buf)

    def _release(self, buf: _PieceBuf) -> None:
        """``buf`` is on disk or forgotten: out of the budget, its memory kept for reuse."""
        self._cached_bytes -= buf.nbytes
        if len(buf.view) == self.info.piece_length and len(self._spare) < self._spare_max:
            self._spare.append(buf.data)

    def _new_buffer(self, size: int) -> tuple[bytearray, memoryview]:
        """A buffer for a new piece, and the view of its ``size`` bytes: a spare one nobody
        views any more, else a fresh one.

        With direct writes on, the buffer has room to start the view on a page boundary (see
        :func:`~ccbt_engine.storage.direct.page_aligned`), so a piece goes to the device from
        where it was received. Plain ``bytearray`` memory rather than an ``mmap`` of its own:
        the allocator keeps freed megabytes for the next piece, while a fresh mapping per piece
        faults every page in again (on these VMs, from the host).

        A spare buffer still holds an old piece's bytes; that is fine, because only offsets
        covered by the new piece's blocks are ever hashed, written or read (pads are zeroed
        before hashing). Views handed out (smart-ban evidence, readers) hold a reference to the
        buffer, so a reference count of two (``data`` and the call's argument) means none is
        left and nothing can see it change.
        """
        spare = self._spare
        if size == self.info.piece_length:
            for _ in range(len(spare)):
                data = spare.popleft()
                if sys.getrefcount(data) == 2:
                    return data, page_aligned(data, size)
                spare.append(data)  # still viewed: try it again later
        if self.write_mode == "direct" and HAVE_O_DIRECT and size >= DIRECT_MIN:
            data = bytearray(size + ALIGN)
            return data, page_aligned(data, size)
        data = bytearray(size)
        return data, memoryview(data)

    def _restore(self, piece: int, buf: _PieceBuf) -> None:
        """Put blocks that failed to write back, under blocks that arrived meanwhile.

        ``buf`` left the cache but not the budget (:attr:`cached_bytes` counts a piece until
        it is on disk or dropped), so it is either re-adopted as is or merged and released.
        """
        cur = self._cache.get(piece)
        if cur is None:
            self._cache[piece] = buf
            self._cache.move_to_end(piece, last=False)
            return
        for begin, data in buf.blocks.items():
            if begin not in cur.blocks:
                end = begin + len(data)
                cur.view[begin:end] = data
                cur.blocks[begin] = cur.view[begin:end]
        cur.irregular = True  # merged: let _cache_covers judge completeness
        self._release(buf)

    @property
    def over_budget(self) -> bool:
        """The write cache (pieces being hashed or written included) exceeds its budget."""
        return self._cached_bytes > self.write_cache_bytes

    async def relieve_pressure(self) -> None:
        """Bring :attr:`cached_bytes` within the budget; returns when it is (or cannot be).

        Pieces already on their way to the disk are waited for; the oldest cached (usually
        partial) pieces are written only when those alone would not bring the cache within
        budget, because a partial piece written now has to be read back to be hashed. The
        torrent stops reading from its peers while this runs: that is the back-pressure that
        keeps a slow disk from turning into unbounded memory.
        """
        while self._cached_bytes > self.write_cache_bytes:
            resident = sum(b.nbytes for b in self._cache.values())
            if self._cached_bytes - resident > 0 and resident <= self.write_cache_bytes:
                busy = [ev for p, ev in self._busy.items() if p not in self._cache]
                if busy:
                    await busy[0].wait()
                    continue
            victim = next((p for p in self._cache if p not in self._busy), None)
            if victim is None:
                if not self._busy:
                    return  # nothing left that this could wait for
                await next(iter(self._busy.values())).wait()
                continue
            async with self._guard(victim):
                await self._flush_locked(victim)

    async def _flush_locked(self, piece: int) -> None:
        buf = self._cache.pop(piece, None)
        if buf is None:
            return
        written = False
        try:
            await self._run(self._write_sync, piece, buf.runs())
            written = True
        finally:
            if written:
                self._release(buf)  # counted until it is on disk
            else:
                self._restore(piece, buf)

    # ------------------------------------------------------------------ worker-thread side

    def _display_path(self, index: int) -> str:
        return os.path.join(self._root, *self.info.files[index].path)

    def _real_root(self) -> str:
        """The save folder with its links resolved, once per storage.

        Opening a file runs on a worker thread, and every ``lstat`` of ``os.path.realpath``
        hands the GIL back and forth with the event loop: with one resolve of the root per
        open (three before, with the ``/proc`` check), a 200-file torrent spent ~0.15 s of
        its download in them. Resolved once, a save folder later swapped for a link elsewhere
        is refused rather than followed.
        """
        if self._root_resolved is None:
            self._root_resolved = os.path.realpath(self._root)
        return self._root_resolved

    def _checked_path(self, index: int, operation: Literal["open", "delete"]) -> str:
        """The file's path, refused unless it stays inside the save folder (symlinks resolved)."""
        parts = self.info.files[index].path
        seps = {os.sep, os.altsep} - {None}
        bad = not parts or any(
            p in ("", ".", "..") or "\0" in p or any(sep in p for sep in seps if sep) for p in parts
        )
        path = os.path.join(self._root, *parts)
        if not bad:
            root = self._real_root()
            real = os.path.realpath(path)
            bad = real == root or os.path.commonpath([root, real]) != root
        if bad:
            raise StorageError(
                errno.EPERM, "Refusing a path outside the download folder", path, operation
            )
        return path

    def _open_sync(self, index: int, writable: bool) -> int:
        path = self._checked_path(index, "open")
        entry = self.info.files[index]
        mode = 0o777 if "x" in entry.attr else 0o666
        flags = (os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY) | _O_FLAGS | _O_NOFOLLOW
        root = self._real_root()
        try:
            if writable:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                # open() never follows a final symlink: one swapped in after the check above
                # (a local attacker's race) would otherwise redirect the write outside
                fd = os.open(path, flags, mode)
            except OSError as exc:
                if not _O_NOFOLLOW or exc.errno not in (errno.ELOOP, errno.EMLINK):
                    raise
                # a link that was there at the check (the user's own, pointing inside): open
                # its resolved target, re-checked, again without following
                path = os.path.realpath(path)
                if os.path.commonpath([root, path]) != root:
                    refused = "Refusing a path outside the download folder"
                    raise OSError(errno.EPERM, refused) from exc
                fd = os.open(path, flags, mode)
            # the kernel's own name for what was opened: absolute, every link already resolved
            if _PROC_FD and os.path.commonpath([root, os.readlink(_PROC_FD % fd)]) != root:
                os.close(fd)  # a folder on the way was swapped for a link after the check
                raise OSError(errno.EPERM, "Refusing a path outside the download folder")
        except OSError as exc:
            raise StorageError.from_oserror(exc, path, "open") from exc
        if writable:
            try:
                self._preallocate_fd(fd, entry.length, index)
            except OSError as exc:
                os.close(fd)
                raise StorageError.from_oserror(exc, path, "allocate") from exc
        return fd

    def _preallocate_fd(self, fd: int, length: int, index: int) -> None:
        if self._prios[index] == 0 or self.preallocate == "none":
            return
        size = os.fstat(fd).st_size
        if size >= length:
            return
        if self.preallocate == "sparse":
            os.ftruncate(fd, length)
            return
        fallocate = getattr(os, "posix_fallocate", None)
        if fallocate is not None:
            try:
                fallocate(fd, 0, length)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
        while size < length:  # file system without fallocate: write real zeros
            chunk = min(MIB, length - size)
            write_all_at(fd, [memoryview(_ZERO_CHUNK)[:chunk]], size)
            size += chunk

    def _write_sync(self, piece: int, blocks: Sequence[tuple[int, bytes | memoryview]]) -> None:
        """Write sorted blocks: contiguous runs, one ``pwritev`` per file slice of a run."""
        i = 0
        while i < len(blocks):
            run_begin = blocks[i][0]
            views: list[memoryview] = []
            starts: list[int] = []
            pos = run_begin
            while i < len(blocks) and blocks[i][0] == pos:
                starts.append(pos - run_begin)
                views.append(memoryview(blocks[i][1]))
                pos += len(blocks[i][1])
                i += 1
            if not views:  # overlapping block: write it as a run of its own
                starts, views = [0], [memoryview(blocks[i][1])]
                pos = run_begin + len(blocks[i][1])
                i += 1
            for sl in self.layout.slices(piece, run_begin, pos - run_begin):
                part = _cut(views, starts, sl.buffer_offset, sl.length)
                if not self._part_write(sl.file_index, piece, run_begin + sl.buffer_offset, part):
                    self._pwritev(sl.file_index, part, sl.file_offset)

    def _pwritev(self, index: int, views: list[memoryview], offset: int) -> None:
        """Write one file slice; one writer per file at a time.

        Buffered writes to one file serialise in the kernel anyway (ext4 takes the inode lock
        exclusively), and a waiter there *spins* while the holder copies its megabyte: with
        the disk threads writing pieces of one big file, ~8% of the leecher's CPU samples were
        that spinning (docs/performance.md, "Download"). A Python lock makes the waiter sleep
        instead (the GIL is released while it waits): ~0.2 s less CPU per GiB in two paired sets.
        """
        lock = self._write_locks.get(index)
        if lock is None:
            lock = self._write_locks.setdefault(index, threading.Lock())  # atomic under the GIL
        handle = self.file_pool.acquire(index, True, lambda w: self._open_sync(index, w))
        try:
            if not self._write_direct(index, handle, lock, views, offset):
                with lock:
                    write_all_at(handle.fd, views, offset)
        except OSError as exc:
            raise StorageError.from_oserror(exc, self._display_path(index), "write") from exc
        finally:
            self.file_pool.release(handle)

    def _write_direct(
        self,
        index: int,
        handle: _Handle,
        lock: threading.Lock,
        views: list[memoryview],
        offset: int,
    ) -> bool:
        """Write a file slice with its aligned middle past the page cache; False when direct
        writes do not apply to it (or were refused): the caller then writes it all through the
        cache.

        No Python lock around the direct part: that lock is there because buffered writers of
        one file spin on its inode lock while the holder copies (see :meth:`_pwritev`); a
        direct writer waits for the device asleep.
        """
        if self.write_mode != "direct" or not HAVE_O_DIRECT:
            return False
        total = sum(len(v) for v in views)
        plan = plan_direct(offset, total)
        if plan is None:
            return False
        ok = self._direct_ok.get(index)
        if ok is None:
            if self._mounts is None:
                self._mounts = mount_table()
            # a file off the 4 KiB grid has its bytes off the page grid of the piece buffer
            ok = not self.info.files[index].offset % ALIGN and direct_file_system(
                str(self.file_path(index)), self._mounts
            )
            self._direct_ok[index] = ok
        if not ok:
            return False
        if handle.direct is None:
            with lock:
                if handle.direct is None:
                    try:
                        handle.direct = open_direct(handle.fd)
                    except OSError:
                        handle.direct = -1
        if handle.direct < 0:
            self._direct_ok[index] = False
            return False
        head, middle = plan
        tail = total - head - middle
        starts = list(itertools.accumulate((len(v) for v in views[:-1]), initial=0))
        mid = _cut(views, starts, head, middle)
        if not all_aligned(mid):
            return False  # an export's buffer, or a spare from before direct writes were on
        try:
            write_all_at(handle.direct, mid, offset + head)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # an alignment this device does not take: the caller writes the whole slice
            # through the cache (rewriting what went direct is harmless)
            self._direct_ok[index] = False
            return False
        with lock:
            if head:
                write_all_at(handle.fd, _cut(views, starts, 0, head), offset)
            if tail:
                write_all_at(
                    handle.fd, _cut(views, starts, head + middle, tail), offset + head + middle
                )
        return True

    def _pread_into(self, index: int, offset: int, out: memoryview) -> None:
        handle = self.file_pool.acquire(index, False, lambda w: self._open_sync(index, w))
        path = self._display_path(index)
        try:
            if read_all_at(handle.fd, out, offset) < len(out):
                raise StorageError(errno.EIO, "File is shorter than the torrent says", path, "read")
        except OSError as exc:
            raise StorageError.from_oserror(exc, path, "read") from exc
        finally:
            self.file_pool.release(handle)

    def _read_sync(
        self,
        piece: int,
        begin: int,
        length: int,
        blocks: list[tuple[int, bytes]],
        from_disk: bool,
    ) -> bytearray:
        """Bytes of the range: disk (if asked), then cached blocks on top, pad bytes zeroed."""
        data = bytearray(length)
        view = memoryview(data)
        slices = self.layout.slices(piece, begin, length)
        if from_disk:
            for sl in slices:
                seg = view[sl.buffer_offset : sl.buffer_offset + sl.length]
                if not self._part_read(sl.file_index, piece, begin + sl.buffer_offset, seg):
                    self._pread_into(sl.file_index, sl.file_offset, seg)
        end = begin + length
        for b, block in blocks:
            s, e = max(b, begin), min(b + len(block), end)
            if s < e:
                view[s - begin : e - begin] = block[s - b : e - b]
        if blocks:  # peers may send anything as pad bytes; pads are zeros
            pos = 0
            bounds = [(sl.buffer_offset, sl.buffer_offset + sl.length) for sl in slices]
            for start, stop in [*bounds, (length, length)]:
                if start > pos:
                    view[pos:start] = bytes(start - pos)
                pos = stop
        return data

    # part file routing: every slice of a skipped file goes through here

    def _routes_to_part(self, index: int) -> bool:
        """Whether file ``index``'s bytes live in the part file now (caller holds _part_lock)."""
        with self._state_lock:
            export = index in self._pending_export
        if export:
            self._export_locked(index)
        with self._state_lock:
            if self._prios[index] != 0:
                return False
            decided = self._use_part.get(index)
        if decided is None:
            decided = not os.path.lexists(self._display_path(index))
            with self._state_lock:
                decided = self._use_part.setdefault(index, decided)
        return decided

    def _part_write(self, index: int, piece: int, offset: int, views: list[memoryview]) -> bool:
        if self._prios[index] != 0 and index not in self._pending_export:
            return False  # fast path: wanted file, nothing to move
        with self._part_lock:
            if not self._routes_to_part(index):
                return False
            self.part_file.write(piece, offset, views)
            return True

    def _part_read(self, index: int, piece: int, offset: int, out: memoryview) -> bool:
        if self._prios[index] != 0 and index not in self._pending_export:
            return False
        with self._part_lock:
            if not self._routes_to_part(index):
                return False
            self.part_file.read_into(piece, offset, out)
            return True

    def _export_locked(self, index: int) -> None:
        """Move file ``index``'s bytes from the part file into the file (holds _part_lock).

        Idempotent, so a failure (disk full) simply leaves the export pending for a retry.
        """
        part = self.part_file
        with self._state_lock:
            in_part = self._use_part.get(index)
        if in_part is None:  # never routed this session: the part holds it iff no file exists
            in_part = not os.path.lexists(self._display_path(index))
            with self._state_lock:  # remember, so a retry after a partial export still exports
                self._use_part[index] = in_part
        first, last = self.layout.file_piece_range(index)
        for piece in range(first, last + 1) if in_part else ():
            if not part.has(piece):
                continue
            slices = self.layout.slices(piece, 0, self.info.piece_size(piece))
            for sl in slices:
                if sl.file_index == index:
                    buf = memoryview(bytearray(sl.length))
                    part.read_into(piece, sl.buffer_offset, buf)
                    self._pwritev(index, [buf], sl.file_offset)
            with self._state_lock:
                still = any(
                    self._may_use_part(s.file_index) for s in slices if s.file_index != index
                )
            if not still:
                part.free(piece)
        with self._state_lock:
            self._pending_export.discard(index)
            self._use_part.pop(index, None)
        if not part.has_slots():
            part.remove()

    def _may_use_part(self, index: int) -> bool:
        """Whether file ``index`` may have bytes in the part file (caller holds _state_lock)."""
        if index in self._pending_export:
            return True
        return self._prios[index] == 0 and self._use_part.get(index) is not False

    def _export_pending_sync(self) -> None:
        with self._part_lock:
            with self._state_lock:
                todo = sorted(self._pending_export)
            for index in todo:
                self._export_locked(index)

    def _close_sync(self) -> None:
        self.file_pool.close_all()
        with self._part_lock:
            self.part_file.close()

    def _read_chunks_sync(self, spans: list[tuple[int, int, int]]) -> list[bytearray]:
        """(piece, begin, length) ranges from disk, one fresh buffer each (upload reads)."""
        return [self._read_sync(piece, begin, length, [], True) for piece, begin, length in spans]

    def _hash_write_sync(self, piece: int, buf: _PieceBuf) -> bool:
        """Verify a complete piece from its buffer; write it only if it passes (worker thread).

        Pad bytes are zeros by definition, whatever a peer sent for them: zeroed in place first.
        """
        size = len(buf.view)
        if buf.sha is not None and buf.hashed >= 0:  # the loop hashed view[:hashed] already
            if buf.hashed < size:
                buf.sha.update(buf.view[buf.hashed :])  # the loop is done with this buffer
                buf.hashed = size  # a retry after a failed write must not hash it again
            if buf.sha.digest() != self.info.piece_hashes[piece]:
                return False
            self._write_sync(piece, buf.runs())
            return True
        pos = 0
        for sl in [*self.layout.slices(piece, 0, size), None]:
            start = size if sl is None else sl.buffer_offset
            if start > pos:
                buf.view[pos:start] = bytes(start - pos)
            if sl is not None:
                pos = start + sl.length
        if not verify_piece(self.layout, piece, buf.view):
            return False
        self._write_sync(piece, buf.runs())
        return True

    def _hash_sync(self, piece: int) -> bool:
        data = self._read_sync(piece, 0, self.info.piece_size(piece), [], True)
        return verify_piece(self.layout, piece, data)

    def read_span_into(self, first: int, count: int, out: memoryview) -> int:
        """Worker thread: pieces ``first`` .. ``first + count - 1`` back to back into ``out``.

        The recheck's read: consecutive slices of one file become ONE positional read (small
        pieces do not cost a syscall each) straight into the caller's reused buffer (no
        allocation per piece); pad bytes are zeroed. Returns the bytes filled. Raises
        :class:`StorageError`; the caller then checks piece by piece to know which failed.
        """
        info = self.info
        plen = info.piece_length
        # [file index, file offset, offset in out, length, piece (-1: no part-file routing),
        #  offset in that piece]
        runs: list[list[int]] = []
        pos = 0
        for piece in range(first, first + count):
            base = (piece - first) * plen
            for sl in self.layout.slices(piece, 0, info.piece_size(piece)):
                at = base + sl.buffer_offset
                if at > pos:
                    out[pos:at] = bytes(at - pos)  # pad bytes
                index = sl.file_index
                direct = self._prios[index] != 0 and index not in self._pending_export
                last = runs[-1] if runs else None
                if (
                    direct
                    and last is not None
                    and last[4] < 0
                    and last[0] == index
                    and last[1] + last[3] == sl.file_offset
                    and last[2] + last[3] == at
                ):
                    last[3] += sl.length
                else:
                    routed = -1 if direct else piece
                    runs.append([index, sl.file_offset, at, sl.length, routed, sl.buffer_offset])
                pos = at + sl.length
        last_piece = first + count - 1
        total = (last_piece - first) * plen + info.piece_size(last_piece)
        if total > pos:
            out[pos:total] = bytes(total - pos)
        for index, file_offset, at, length, piece, in_piece in runs:
            seg = out[at : at + length]
            if piece < 0 or not self._part_read(index, piece, in_piece, seg):
                self._pread_into(index, file_offset, seg)
        return total

    def check_piece_sync(self, piece: int) -> bool:
        """Recheck helper (runs on a worker thread): True only when the piece reads and verifies.

        Unreadable data (missing or short file, I/O error) is simply "not verified".
        """
        try:
            return self._hash_sync(piece)
        except StorageError:
            return False

    def _create_empty_sync(self) -> None:
        for i, entry in enumerate(self.info.files):
            if entry.length or entry.is_pad or "l" in entry.attr or self._prios[i] == 0:
                continue
            path = self._checked_path(i, "open")
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | _O_FLAGS, 0o666))
            except OSError as exc:
                raise StorageError.from_oserror(exc, path, "open") from exc

    def _delete_sync(self) -> None:
        first_error: StorageError | None = None
        dirs: set[str] = set()
        root = os.path.normpath(self._root)
        for i, entry in enumerate(self.info.files):
            if entry.is_pad:
                continue
            try:
                path = self._checked_path(i, "delete")
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                first_error = first_error or StorageError.from_oserror(
                    exc, self._display_path(i), "delete"
                )
                continue
            parent = os.path.dirname(os.path.normpath(self._display_path(i)))
            while parent != root and parent.startswith(root + os.sep):
                dirs.add(parent)
                parent = os.path.dirname(parent)
        with self._part_lock:
            try:
                self.part_file.remove()
            except StorageError as exc:
                first_error = first_error or exc
            with self._state_lock:
                self._use_part.clear()
                self._pending_export.clear()
        for d in sorted(dirs, key=len, reverse=True):  # deepest first
            with contextlib.suppress(OSError):  # not empty (user files) or already gone
                os.rmdir(d)
        if first_error is not None:
            raise first_error
