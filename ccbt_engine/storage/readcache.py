"""A small, bounded cache of recently read chunks of verified pieces, for uploading.

Why it exists: a leecher asks for a piece as 16 KiB requests. Reading each block on a worker
thread costs an executor round trip (a future, a thread hand-off, a loop wake-up) per block,
which on loopback costs far more than the read itself. The upload path instead reads a whole
chunk (the piece, or a :data:`CHUNK`-sized aligned part of a bigger piece) in one worker call and
serves the chunk's other blocks from memory, usually in the same loop iteration.

Why chunks and not pieces: pieces may be 16 MiB or more; a request for one block must not pull
a whole huge piece into memory. Why bounded by bytes, least recently used first: several peers
may pull different pieces at once, and the seeding process must stay small (the goal is a
peak anonymous RSS under 200 MiB for the whole session).

How big: ``disk.read_cache_mb`` for the whole session, not per torrent. Every torrent's
:class:`ReadCache` draws on one :class:`ReadCachePool`, one LRU across all of them, so many
seeding torrents cannot multiply the memory, and an idle torrent's chunks are the first to go
when a busy one needs room. The session resizes the pool live when the setting changes.

Loop-side only (no locks): the storage fills it with the results of worker-thread reads.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = [
    "CHUNK",
    "DEFAULT_READ_CACHE_BYTES",
    "ChunkKey",
    "ReadCache",
    "ReadCachePool",
    "chunk_span",
]

#: the unit of upload reads and of the cache: at most this many bytes of one piece
CHUNK = 1024 * 1024
#: a storage made without a session (tests, tools): a few chunks per uploading peer is all
#: FIFO serving ever needs
DEFAULT_READ_CACHE_BYTES = 8 * 1024 * 1024

#: (piece, offset of the chunk within the piece)
ChunkKey = tuple[int, int]
#: (owning cache's id, piece, chunk offset): a key in the shared pool
_PoolKey = tuple[int, int, int]


def chunk_span(piece_size: int, begin: int, length: int) -> tuple[int, int] | None:
    """(start, length) of the chunk holding ``[begin, begin + length)`` of a piece.

    None when the range crosses a chunk boundary (a peer may ask for any range; such odd
    requests are simply read without the cache). The caller has checked the range is inside
    the piece.
    """
    start = begin - begin % CHUNK
    if begin + length > start + CHUNK:
        return None
    return start, min(CHUNK, piece_size - start)


class ReadCachePool:
    """The byte budget and the LRU order shared by several :class:`ReadCache` (one a torrent).

    The newest chunk is always kept even if it alone is over budget, so a reader that has just
    filled it finds it. ``hits``/``misses`` count the answers of every cache of the pool.
    """

    def __init__(self, max_bytes: int = DEFAULT_READ_CACHE_BYTES) -> None:
        _check_budget(max_bytes)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._chunks: OrderedDict[_PoolKey, bytes | bytearray] = OrderedDict()
        self._nbytes = 0
        self._owners = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now, all caches together."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._chunks)

    def cache(self) -> ReadCache:
        """A new cache (for one torrent's storage) drawing on this pool."""
        return ReadCache(pool=self)

    def resize(self, max_bytes: int) -> None:
        """A new budget, applied at once (0 turns caching off and drops everything)."""
        _check_budget(max_bytes)
        self.max_bytes = max_bytes
        if max_bytes == 0:
            self._chunks.clear()
            self._nbytes = 0
        self._evict()

    def _new_owner(self) -> int:
        self._owners += 1
        return self._owners

    def _get(self, key: _PoolKey) -> bytes | bytearray | None:
        data = self._chunks.get(key)
        if data is None:
            self.misses += 1
            return None
        self.hits += 1
        self._chunks.move_to_end(key)
        return data

    def _put(self, key: _PoolKey, data: bytes | bytearray) -> None:
        if self.max_bytes == 0:
            return
        old = self._chunks.pop(key, None)
        if old is not None:
            self._nbytes -= len(old)
        self._chunks[key] = data
        self._nbytes += len(data)
        self._evict()

    def _evict(self) -> None:
        while self._nbytes > self.max_bytes and len(self._chunks) > 1:
            _, evicted = self._chunks.popitem(last=False)
            self._nbytes -= len(evicted)

    def _discard(self, owner: int, piece: int | None) -> None:
        """Forget ``owner``'s chunks of ``piece`` (None: all of them). Rare: walks the pool,
        which holds at most ``max_bytes`` worth of chunks."""
        doomed = [k for k in self._chunks if k[0] == owner and (piece is None or k[1] == piece)]
        for key in doomed:
            self._nbytes -= len(self._chunks.pop(key))

    def _owned(self, owner: int) -> tuple[int, int]:
        """(chunks, bytes) ``owner`` holds."""
        count = nbytes = 0
        for key, data in self._chunks.items():
            if key[0] == owner:
                count += 1
                nbytes += len(data)
        return count, nbytes


def _check_budget(max_bytes: int) -> None:
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")


class ReadCache:
    """One torrent's chunks, keyed by (piece, chunk offset), in a (possibly shared) pool.

    ``ReadCache(max_bytes)`` makes a private pool of that size; ``pool.cache()`` (or
    ``ReadCache(pool=pool)``) one that shares ``pool``'s budget with the pool's other caches.
    Least recently used chunks, of whichever cache, are evicted past the pool's budget.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_READ_CACHE_BYTES, *, pool: ReadCachePool | None = None
    ) -> None:
        self.pool = pool if pool is not None else ReadCachePool(max_bytes)
        self._owner = self.pool._new_owner()

    @property
    def max_bytes(self) -> int:
        """The pool's budget (shared with the pool's other caches)."""
        return self.pool.max_bytes

    @property
    def hits(self) -> int:
        return self.pool.hits

    @property
    def misses(self) -> int:
        return self.pool.misses

    @property
    def nbytes(self) -> int:
        """Bytes this cache holds now (diagnostics: walks the pool)."""
        return self.pool._owned(self._owner)[1]

    def __len__(self) -> int:
        return self.pool._owned(self._owner)[0]

    def __contains__(self, key: ChunkKey) -> bool:
        return (self._owner, key[0], key[1]) in self.pool._chunks

    def get(self, key: ChunkKey) -> bytes | bytearray | None:
        return self.pool._get((self._owner, key[0], key[1]))

    def put(self, key: ChunkKey, data: bytes | bytearray) -> None:
        """Store ``data`` (never mutated afterwards: views of it go to the socket)."""
        self.pool._put((self._owner, key[0], key[1]), data)

    def discard_piece(self, piece: int) -> None:
        """Forget every chunk of ``piece`` (its bytes on disk are about to change)."""
        self.pool._discard(self._owner, piece)

    def clear(self) -> None:
        """Forget this cache's chunks (the pool's other caches keep theirs)."""
        self.pool._discard(self._owner, None)
