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

Loop-side only (no locks): the storage fills it with the results of worker-thread reads.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["CHUNK", "DEFAULT_READ_CACHE_BYTES", "ChunkKey", "ReadCache", "chunk_span"]

#: the unit of upload reads and of the cache: at most this many bytes of one piece
CHUNK = 1024 * 1024
#: per torrent: a few chunks per uploading peer is all FIFO serving ever needs
DEFAULT_READ_CACHE_BYTES = 8 * 1024 * 1024

#: (piece, offset of the chunk within the piece)
ChunkKey = tuple[int, int]


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


class ReadCache:
    """Chunks keyed by (piece, chunk offset), least recently used evicted past ``max_bytes``.

    The newest chunk is always kept even if it alone is over budget, so a reader that has just
    filled it finds it. ``hits``/``misses`` count :meth:`get` answers (tests and diagnostics).
    """

    def __init__(self, max_bytes: int = DEFAULT_READ_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._chunks: OrderedDict[ChunkKey, bytes | bytearray] = OrderedDict()
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._chunks)

    def __contains__(self, key: ChunkKey) -> bool:
        return key in self._chunks

    def get(self, key: ChunkKey) -> bytes | bytearray | None:
        data = self._chunks.get(key)
        if data is None:
            self.misses += 1
            return None
        self.hits += 1
        self._chunks.move_to_end(key)
        return data

    def put(self, key: ChunkKey, data: bytes | bytearray) -> None:
        """Store ``data`` (never mutated afterwards: views of it go to the socket)."""
        if self.max_bytes == 0:
            return
        old = self._chunks.pop(key, None)
        if old is not None:
            self._nbytes -= len(old)
        self._chunks[key] = data
        self._nbytes += len(data)
        while self._nbytes > self.max_bytes and len(self._chunks) > 1:
            _, evicted = self._chunks.popitem(last=False)
            self._nbytes -= len(evicted)

    def discard_piece(self, piece: int) -> None:
        """Forget every chunk of ``piece`` (its bytes on disk are about to change)."""
        for key in [k for k in self._chunks if k[0] == piece]:
            self._nbytes -= len(self._chunks.pop(key))

    def clear(self) -> None:
        self._chunks.clear()
        self._nbytes = 0
