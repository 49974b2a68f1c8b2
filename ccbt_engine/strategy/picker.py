"""Piece picker: which blocks to request from which peer next.

Pure bookkeeping, no I/O and no clock. The torrent feeds it what peers announce (bitfields, HAVEs),
what happens to requests (received, rejected, timed out, peer gone) and what the hash check says;
it answers :meth:`PiecePicker.pick` with block requests.

Ordering of :meth:`PiecePicker.pick`, from strongest to weakest rule:

1. **Priority** (libtorrent's scale, 0 = skip … 7 = high). Skipped pieces are never requested.
2. **Partial pieces first**: blocks of pieces already started are handed out before a new piece is
   started, preferring pieces this peer already worked on (so one peer tends to finish a piece,
   which keeps hash-fail attribution sharp and the number of half-done pieces low).
3. **Random first pieces** while we own fewer than :data:`RANDOM_FIRST_PIECES` pieces: a new
   downloader wants *something* to trade quickly, and the rarest piece is by definition hard to get.
4. **Rarest first** (ties broken randomly), or lowest index first when :attr:`sequential` is set.
5. **Endgame**: once every remaining wanted block is requested from someone, blocks outstanding at
   *other* peers are handed out again; :meth:`block_received` then names the duplicates to cancel.

Data structure (after libtorrent's piece picker): pieces that are wanted, not owned and not started
("untouched") live in buckets keyed by ``(priority, availability)``; each bucket is a list with an
index map, so moving a piece when a HAVE arrives is O(1). Started pieces live in a small dict of
per-block state. A pick walks buckets from the best key and stops as soon as it has enough, so its
cost depends on how many blocks are asked for, not on the number of pieces. A peer that has few of
the untouched pieces is served from the bitwise AND of its bitfield with the untouched set (C-speed
big-integer ops) instead, so sparse peers don't make a pick walk the whole torrent either.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import NamedTuple

from ccbt_engine.bitfield import Bitfield

__all__ = [
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_NORMAL",
    "PRIORITY_SKIP",
    "RANDOM_FIRST_PIECES",
    "BlockRequest",
    "PickerError",
    "PiecePicker",
]

PRIORITY_SKIP = 0
PRIORITY_LOW = 1
PRIORITY_NORMAL = 4
PRIORITY_HIGH = 7
_MAX_PRIORITY = 7

#: Pick new pieces at random (instead of rarest first) until we own this many pieces.
RANDOM_FIRST_PIECES = 4

# Per-block state inside a started piece.
_FREE = 0
_REQUESTED = 1
_RECEIVED = 2

# Bucket key: higher priority sorts first, then lower availability. Availability counts connected
# non-seed peers, far below 2**24.
_AVAIL_BITS = 24
_AVAIL_MASK = (1 << _AVAIL_BITS) - 1

# A non-seed peer owning fewer than 1/_SPARSE_FACTOR of the untouched pieces is served by scanning
# its own candidate set rather than walking buckets. Walking costs about _SPARSE_FACTOR membership
# tests per piece found at worst; the candidate scan costs O(pieces / 8) byte operations.
_SPARSE_FACTOR = 64
# Bulk availability changes touching more than 1/_REBUILD_FACTOR of the untouched pieces rebuild
# the buckets in one pass instead of moving pieces one by one.
_REBUILD_FACTOR = 4
# Random-first picking samples this many times before falling back to rarest-first order.
_RANDOM_ATTEMPTS = 64


class PickerError(ValueError):
    """An index, offset, priority or bitfield size outside what this torrent allows."""


class BlockRequest(NamedTuple):
    """One REQUEST: ``length`` bytes at ``begin`` inside piece ``piece``.

    A named tuple, not a frozen dataclass: one is made per 16 KiB block requested, and a
    frozen dataclass's ``__init__`` (three ``object.__setattr__`` calls) costs twice as much.
    """

    piece: int
    begin: int
    length: int


class _PeerState:
    __slots__ = ("bf", "requests")

    def __init__(self, bf: Bitfield | None) -> None:
        # None means "has every piece" (HAVE_ALL or a full bitfield): seeds are counted once in
        # PiecePicker._seeds instead of bumping every piece's availability.
        self.bf = bf
        # (piece, block index) pairs requested from this peer and not yet received or aborted.
        self.requests: set[tuple[int, int]] = set()


class _Partial:
    """Block bookkeeping for a started piece."""

    __slots__ = ("free", "num_blocks", "received", "requesters", "senders", "state", "touched")

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.state = bytearray(num_blocks)  # _FREE / _REQUESTED / _RECEIVED per block
        self.free = num_blocks
        self.received = 0
        self.requesters: dict[int, list[Hashable]] = {}  # block -> peers it is requested from
        self.senders: dict[int, Hashable] = {}  # block -> peer whose data we kept
        self.touched: set[Hashable] = set()  # peers that were given or sent blocks of it


class PiecePicker:
    """Block selection and request bookkeeping for one torrent.

    ``have`` is the bitfield of verified pieces; read it freely but change it only through
    :meth:`set_have` / :meth:`piece_passed`, which keep the picker's indexes in step.
    """

    def __init__(
        self,
        num_pieces: int,
        piece_length: int,
        total_length: int,
        block_size: int = 16384,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if num_pieces < 0 or piece_length <= 0 or block_size <= 0:
            raise PickerError("num_pieces must be >= 0, piece_length and block_size > 0")
        if num_pieces == 0:
            if total_length != 0:
                raise PickerError("a torrent without pieces has no bytes")
        elif not (num_pieces - 1) * piece_length < total_length <= num_pieces * piece_length:
            raise PickerError(
                f"total_length {total_length} does not fit {num_pieces} pieces of {piece_length}"
            )
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.block_size = block_size
        self.sequential = False
        self.have = Bitfield(num_pieces)
        self._rng = rng if rng is not None else random.Random()
        self._blocks_per_piece = -(-piece_length // block_size)
        self._last_size = total_length - piece_length * (num_pieces - 1) if num_pieces else 0

        self._prio = bytearray([PRIORITY_NORMAL]) * num_pieces
        self._avail = [0] * num_pieces  # from non-seed peers; seeds are in self._seeds
        self._seeds = 0
        self._peers: dict[Hashable, _PeerState] = {}

        # Wanted (priority > 0) and not owned, for interest checks and endgame.
        self._wanted = Bitfield.full(num_pieces)
        self._wanted_bytes = total_length

        # Untouched pieces: wanted, not owned, not started. Bucketed by key; _pos[i] is the
        # index of piece i in its bucket list, -1 when the piece is not untouched.
        self._untouched = Bitfield.full(num_pieces)
        self._untouched_count = [0] * (_MAX_PRIORITY + 1)
        self._untouched_count[PRIORITY_NORMAL] = num_pieces
        initial_key = self._key(PRIORITY_NORMAL, 0)
        self._buckets: dict[int, list[int]] = {initial_key: list(range(num_pieces))}
        self._keys: list[int] = [initial_key]  # sorted, may include empty buckets
        self._pos = list(range(num_pieces))
        # Sequential mode: per priority, no untouched piece of that priority lies below this.
        self._seq_cursor = [0] * (_MAX_PRIORITY + 1)

        self._partial: dict[int, _Partial] = {}
        self._open: set[int] = set()  # started pieces with at least one free block

    # ------------------------------------------------------------------ geometry

    def piece_size(self, index: int) -> int:
        """Bytes in piece ``index`` (the last piece may be short)."""
        self._check_index(index)
        return self._last_size if index == self.num_pieces - 1 else self.piece_length

    def num_blocks(self, index: int) -> int:
        return -(-self.piece_size(index) // self.block_size)

    def block_length(self, piece: int, begin: int) -> int:
        """Length of the block at ``begin`` (the last block of the last piece may be short)."""
        size = self.piece_size(piece)
        if begin < 0 or begin % self.block_size or begin >= size:
            raise PickerError(f"bad block offset {begin} in piece {piece}")
        return min(self.block_size, size - begin)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_pieces:
            raise PickerError(f"piece index {index} out of range 0..{self.num_pieces - 1}")

    def _size(self, index: int) -> int:
        return self._last_size if index == self.num_pieces - 1 else self.piece_length

    def _nblocks(self, index: int) -> int:
        if index == self.num_pieces - 1:
            return -(-self._last_size // self.block_size)
        return self._blocks_per_piece

    def _request(self, piece: int, block: int) -> BlockRequest:
        begin = block * self.block_size
        return BlockRequest(piece, begin, min(self.block_size, self._size(piece) - begin))

    # ------------------------------------------------------------------ buckets

    @staticmethod
    def _key(prio: int, avail: int) -> int:
        return ((_MAX_PRIORITY - prio) << _AVAIL_BITS) | avail

    def _bucket_insert(self, index: int) -> None:
        key = self._key(self._prio[index], self._avail[index])
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            bisect.insort(self._keys, key)
        self._pos[index] = len(bucket)
        bucket.append(index)

    def _bucket_delete(self, index: int) -> None:
        bucket = self._buckets[self._key(self._prio[index], self._avail[index])]
        slot = self._pos[index]
        last = bucket.pop()
        if last != index:
            bucket[slot] = last
            self._pos[last] = slot
        self._pos[index] = -1

    def _add_untouched(self, index: int) -> None:
        """Make a wanted, unowned, unstarted piece pickable as a new piece. O(1) + key insert."""
        prio = self._prio[index]
        self._bucket_insert(index)
        self._untouched.set(index)
        self._untouched_count[prio] += 1
        if index < self._seq_cursor[prio]:
            self._seq_cursor[prio] = index

    def _remove_untouched(self, index: int) -> None:
        self._bucket_delete(index)
        self._untouched.clear(index)
        self._untouched_count[self._prio[index]] -= 1

    def _rebuild_buckets(self) -> None:
        """Regroup every untouched piece by key in one pass: O(untouched pieces)."""
        prio, avail, pos = self._prio, self._avail, self._pos
        buckets: defaultdict[int, list[int]] = defaultdict(list)
        for old in self._buckets.values():
            for i in old:
                buckets[((_MAX_PRIORITY - prio[i]) << _AVAIL_BITS) | avail[i]].append(i)
        for bucket in buckets.values():
            for slot, i in enumerate(bucket):
                pos[i] = slot
        self._buckets = dict(buckets)
        self._keys = sorted(buckets)

    def _change_availability(self, pieces: Iterable[int], count: int, delta: int) -> None:
        """Add ``delta`` to the availability of ``count`` pieces.

        O(count) moves between buckets; when ``count`` is a large share of the untouched pieces a
        single O(untouched) rebuild is cheaper than that many moves.
        """
        avail, pos = self._avail, self._pos
        if count * _REBUILD_FACTOR > sum(self._untouched_count):
            for i in pieces:
                avail[i] += delta
            self._rebuild_buckets()
            return
        for i in pieces:
            if pos[i] >= 0:
                self._bucket_delete(i)
                avail[i] += delta
                self._bucket_insert(i)
            else:
                avail[i] += delta

    # ------------------------------------------------------------------ peers

    def _peer(self, peer: Hashable) -> _PeerState:
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _PeerState(Bitfield(self.num_pieces))
        return state

    def _forget_availability(self, state: _PeerState) -> None:
        if state.bf is None:
            self._seeds -= 1
        else:
            self._change_availability(state.bf.iter_set(), state.bf.count(), -1)

    def peer_bitfield(self, peer: Hashable, bf: Bitfield) -> None:
        """Record a peer's BITFIELD (replacing anything it announced before). O(pieces it has).

        A complete bitfield is treated like HAVE_ALL (O(1)).
        """
        if len(bf) != self.num_pieces:
            raise PickerError(f"bitfield has {len(bf)} bits, torrent has {self.num_pieces} pieces")
        state = self._peer(peer)
        self._forget_availability(state)
        if bf.all() and self.num_pieces:
            state.bf = None
            self._seeds += 1
            return
        state.bf = bf.copy()
        self._change_availability(state.bf.iter_set(), state.bf.count(), +1)

    def peer_have(self, peer: Hashable, index: int) -> None:
        """Record a HAVE. O(1); repeated HAVEs for the same piece are ignored."""
        self._check_index(index)
        state = self._peer(peer)
        if state.bf is None or state.bf[index]:
            return
        state.bf.set(index)
        self._change_availability((index,), 1, +1)

    def peer_have_all(self, peer: Hashable) -> None:
        """Record HAVE_ALL (BEP 6) or a seed. O(1) unless the peer had announced pieces before."""
        state = self._peer(peer)
        if state.bf is None:
            return
        self._forget_availability(state)
        state.bf = None
        self._seeds += 1

    def peer_have_none(self, peer: Hashable) -> None:
        """Record HAVE_NONE (BEP 6); also registers a peer that sent no bitfield at all."""
        state = self._peer(peer)
        self._forget_availability(state)
        state.bf = Bitfield(self.num_pieces)

    def peer_lost(self, peer: Hashable) -> list[BlockRequest]:
        """Forget a disconnected peer; its outstanding requests become pickable again.

        Returns those requests (sorted), e.g. to drop them from per-connection queues.
        """
        state = self._peers.pop(peer, None)
        if state is None:
            return []
        self._forget_availability(state)
        lost = sorted(state.requests)
        for piece, block in lost:
            self._drop_requester(piece, block, peer)
        state.requests.clear()
        return [self._request(piece, block) for piece, block in lost]

    def availability(self, index: int) -> int:
        """How many connected peers have piece ``index``."""
        self._check_index(index)
        return self._avail[index] + self._seeds

    def _has(self, state: _PeerState, index: int) -> bool:
        bf = state.bf
        return bf is None or bool(bf._data[index >> 3] & (0x80 >> (index & 7)))

    def interesting(self, peer: Hashable) -> bool:
        """Whether the peer has any wanted piece we lack (send INTERESTED). O(pieces / 64)."""
        state = self._peers.get(peer)
        if state is None or not self._wanted.any():
            return False
        if state.bf is None:
            return True
        return bool(_as_int(state.bf) & _as_int(self._wanted))

    # ------------------------------------------------------------------ priorities

    def piece_priority(self, index: int) -> int:
        self._check_index(index)
        return self._prio[index]

    def set_piece_priority(self, index: int, prio: int) -> None:
        """Change one piece's priority (0 = skip … 7 = high). O(1).

        Requests already outstanding for a piece that becomes skipped are left alone (the data is
        still welcome); only new requests stop.
        """
        self._check_index(index)
        if not PRIORITY_SKIP <= prio <= _MAX_PRIORITY:
            raise PickerError(f"priority must be 0..{_MAX_PRIORITY}, got {prio}")
        old = self._prio[index]
        if old == prio:
            return
        untouched = self._pos[index] >= 0
        if untouched:
            self._remove_untouched(index)
        self._prio[index] = prio
        if self.have[index]:
            return
        if prio and not old:
            self._wanted.set(index)
            self._wanted_bytes += self._size(index)
            untouched = index not in self._partial
        elif old and not prio:
            self._wanted.clear(index)
            self._wanted_bytes -= self._size(index)
            untouched = False
        if untouched:
            self._add_untouched(index)

    def set_piece_priorities(self, priorities: Sequence[int]) -> None:
        """Set every piece's priority at once (e.g. from file priorities). O(pieces)."""
        if len(priorities) != self.num_pieces:
            raise PickerError(f"{len(priorities)} priorities for {self.num_pieces} pieces")
        for prio in priorities:
            if not PRIORITY_SKIP <= prio <= _MAX_PRIORITY:
                raise PickerError(f"priority must be 0..{_MAX_PRIORITY}, got {prio}")
        for index, prio in enumerate(priorities):
            self.set_piece_priority(index, prio)

    # ------------------------------------------------------------------ progress queries

    def wanted_remaining(self) -> int:
        """Bytes in wanted pieces not yet verified (received-but-unverified blocks still count)."""
        return self._wanted_bytes

    def is_finished(self) -> bool:
        """Every wanted piece is verified (the torrent may still be partial if some are skipped)."""
        return not self._wanted.any()

    def is_seed(self) -> bool:
        return self.have.all()

    def outstanding(self, peer: Hashable) -> int:
        """Number of requests outstanding at ``peer``. O(1)."""
        state = self._peers.get(peer)
        return 0 if state is None else len(state.requests)

    def requests_of(self, peer: Hashable) -> list[BlockRequest]:
        """The requests outstanding at ``peer``, sorted (for timeouts and CANCEL on choke)."""
        state = self._peers.get(peer)
        if state is None:
            return []
        return [self._request(piece, block) for piece, block in sorted(state.requests)]

    def is_block_received(self, piece: int, begin: int) -> bool:
        """Whether we already hold that block (False for offsets that name no block).

        Safe to call with a peer's unchecked PIECE header, like :meth:`block_received`.
        """
        if not 0 <= piece < self.num_pieces:
            return False
        if self.have[piece]:
            return True
        partial = self._partial.get(piece)
        if partial is None or begin < 0 or begin % self.block_size:
            return False
        block = begin // self.block_size
        return block < partial.num_blocks and partial.state[block] == _RECEIVED

    def piece_complete(self, piece: int) -> bool:
        """All blocks of an unverified piece are in: time to hash it. False for owned pieces."""
        self._check_index(piece)
        partial = self._partial.get(piece)
        return partial is not None and partial.received == partial.num_blocks

    @property
    def in_endgame(self) -> bool:
        """Every remaining wanted block is requested (or received). O(started pieces)."""
        if not self._wanted.any() or any(self._untouched_count):
            return False
        prio = self._prio
        return all(prio[i] == PRIORITY_SKIP for i in self._open)

    # ------------------------------------------------------------------ piece state

    def _start(self, index: int) -> _Partial:
        if self._pos[index] >= 0:
            self._remove_untouched(index)
        partial = _Partial(self._nblocks(index))
        self._partial[index] = partial
        self._open.add(index)
        return partial

    def _discard_partial(self, index: int) -> _Partial | None:
        partial = self._partial.pop(index, None)
        if partial is None:
            return None
        self._open.discard(index)
        for block, requesters in partial.requesters.items():
            for peer in requesters:
                state = self._peers.get(peer)
                if state is not None:
                    state.requests.discard((index, block))
        return partial

    def set_have(self, index: int) -> None:
        """Mark a piece as verified and owned (resume data, recheck, hash pass). O(1)."""
        self._check_index(index)
        if self.have[index]:
            return
        self._discard_partial(index)
        if self._pos[index] >= 0:
            self._remove_untouched(index)
        self.have.set(index)
        if self._wanted[index]:
            self._wanted.clear(index)
            self._wanted_bytes -= self._size(index)

    def piece_passed(self, index: int) -> None:
        """The hash check of a completed piece succeeded."""
        self.set_have(index)

    def piece_failed(self, index: int) -> set[Hashable]:
        """The hash check failed: forget every block so the piece is downloaded again.

        Returns the peers whose blocks were in the piece, for hash-fail attribution.
        """
        self._check_index(index)
        partial = self._discard_partial(index)
        if partial is None:
            return set()
        if self._prio[index]:
            self._add_untouched(index)
        return set(partial.senders.values())

    def block_senders(self, piece: int) -> dict[int, Hashable]:
        """Block index -> the peer whose data was kept, for a started piece (for smart ban)."""
        partial = self._partial.get(piece)
        return dict(partial.senders) if partial is not None else {}

    # ------------------------------------------------------------------ requests

    def _drop_requester(self, piece: int, block: int, peer: Hashable) -> None:
        partial = self._partial.get(piece)
        if partial is None:
            return
        requesters = partial.requesters.get(block)
        if requesters is None or peer not in requesters:
            return
        requesters.remove(peer)
        if requesters:
            return
        del partial.requesters[block]
        if partial.state[block] == _REQUESTED:
            partial.state[block] = _FREE
            partial.free += 1
            self._open.add(piece)

    def abort_request(self, peer: Hashable, piece: int, begin: int) -> None:
        """A request will not be answered (choke, REJECT, timeout): make it pickable again.

        Unknown requests are ignored. O(1).
        """
        if not 0 <= piece < self.num_pieces or begin < 0 or begin % self.block_size:
            return
        block = begin // self.block_size
        state = self._peers.get(peer)
        if state is not None:
            state.requests.discard((piece, block))
        self._drop_requester(piece, block, peer)

    def block_received(
        self, peer: Hashable, piece: int, begin: int
    ) -> list[tuple[Hashable, BlockRequest]]:
        """Record a PIECE message; returns ``(other_peer, request)`` pairs to CANCEL.

        Blocks of wanted pieces are accepted even if not (or no longer) requested — a late
        answer to a timed-out request is still good data. Duplicates, blocks of owned or skipped
        unstarted pieces and malformed offsets are ignored (``[]``); call
        :meth:`is_block_received` first to know whether the data is new. O(requesters).
        """
        if not 0 <= piece < self.num_pieces or self.have[piece]:
            return []
        if begin < 0 or begin % self.block_size or begin >= self._size(piece):
            return []
        partial = self._partial.get(piece)
        if partial is None:
            if self._pos[piece] < 0:
                return []
            partial = self._start(piece)
        block = begin // self.block_size
        block_state = partial.state[block]
        if block_state == _RECEIVED:
            return []
        if block_state == _FREE:
            partial.free -= 1
            if not partial.free:
                self._open.discard(piece)
        partial.state[block] = _RECEIVED
        partial.received += 1
        partial.senders[block] = peer
        partial.touched.add(peer)
        cancels: list[tuple[Hashable, BlockRequest]] = []
        for other in partial.requesters.pop(block, ()):
            state = self._peers.get(other)
            if state is not None:
                state.requests.discard((piece, block))
            if other != peer:
                cancels.append((other, self._request(piece, block)))
        return cancels

    def accept_block(
        self, peer: Hashable, piece: int, begin: int
    ) -> tuple[bool, Sequence[tuple[Hashable, BlockRequest]]] | None:
        """The download hot path's one call per PIECE: :meth:`is_block_received`,
        :meth:`block_received` and :meth:`piece_complete` in one.

        None when the data is not new (a duplicate, an owned or unstarted-and-unwanted piece, an
        offset that names no block): the caller wastes it. Otherwise ``(complete, cancels)``:
        whether the piece now has every block, and the ``(other_peer, request)`` pairs to
        CANCEL. Safe with a peer's unchecked PIECE header. Per block this saves four method
        calls and a bitfield lookup's bounds check, some 5 % of the loop thread's time.
        """
        if not 0 <= piece < self.num_pieces:
            return None
        # self.have[piece], without Bitfield.__getitem__'s second bounds check
        if self.have._data[piece >> 3] & (0x80 >> (piece & 7)):
            return None
        if begin < 0 or begin % self.block_size:
            return None
        block = begin // self.block_size
        partial = self._partial.get(piece)
        if partial is None:
            if self._pos[piece] < 0 or block >= self._nblocks(piece):
                return None
            partial = self._start(piece)
        elif block >= partial.num_blocks:
            return None
        block_state = partial.state[block]
        if block_state == _RECEIVED:
            return None
        if block_state == _FREE:
            partial.free -= 1
            if not partial.free:
                self._open.discard(piece)
        partial.state[block] = _RECEIVED
        partial.received += 1
        partial.senders[block] = peer
        partial.touched.add(peer)
        complete = partial.received == partial.num_blocks
        requesters = partial.requesters.pop(block, None)
        if requesters is None:
            return complete, ()
        cancels: list[tuple[Hashable, BlockRequest]] = []
        peers = self._peers
        for other in requesters:
            state = peers.get(other)
            if state is not None:
                state.requests.discard((piece, block))
            if other != peer:
                cancels.append((other, self._request(piece, block)))
        return complete, cancels

    # ------------------------------------------------------------------ picking

    def pick(
        self, peer: Hashable, n: int, *, allowed_fast_only: set[int] | None = None
    ) -> list[BlockRequest]:
        """Up to ``n`` new requests for ``peer``, best first.

        ``allowed_fast_only`` restricts the pick to those pieces (we are choked but the peer
        granted them via ALLOWED_FAST). Cost: O(started pieces + blocks returned) for peers that
        have most pieces; O(pieces / 8) byte operations for peers that have few of them; the
        endgame stage is O(outstanding blocks).
        """
        state = self._peers.get(peer)
        if state is None or n <= 0 or not self._wanted.any():
            return []
        out: list[BlockRequest] = []
        if allowed_fast_only is not None:
            self._pick_restricted(peer, state, n, allowed_fast_only, out)
        else:
            self._pick_normal(peer, state, n, out)
        if len(out) < n and self.in_endgame:
            self._pick_endgame(peer, state, n, allowed_fast_only, out)
        return out

    def _partials_by_priority(self, peer: Hashable, state: _PeerState) -> dict[int, list[int]]:
        """Open started pieces the peer has, grouped by priority, in preference order."""
        groups: dict[int, list[tuple[tuple[int, ...], int]]] = {}
        prio, avail = self._prio, self._avail
        for index in self._open:
            p = prio[index]
            if p == PRIORITY_SKIP or not self._has(state, index):
                continue
            partial = self._partial[index]
            if self.sequential:
                key: tuple[int, ...] = (index,)
            else:
                affinity = 0 if peer in partial.touched else 1
                key = (affinity, avail[index], -partial.received, index)
            groups.setdefault(p, []).append((key, index))
        return {p: [i for _, i in sorted(items)] for p, items in groups.items()}

    def _pick_normal(
        self, peer: Hashable, state: _PeerState, n: int, out: list[BlockRequest]
    ) -> None:
        partials = self._partials_by_priority(peer, state)
        sparse: dict[int, list[int]] | None = None
        untouched_total = sum(self._untouched_count)
        if untouched_total and state.bf is not None:
            candidates = _as_int(state.bf) & _as_int(self._untouched)
            found = candidates.bit_count()
            if found == 0:
                untouched_total = 0
            elif found * _SPARSE_FACTOR < untouched_total:
                sparse = {}
                data = candidates.to_bytes(len(state.bf._data), "big")
                prio = self._prio
                for index in _iter_bits(data):
                    sparse.setdefault(prio[index], []).append(index)
        for p in range(_MAX_PRIORITY, PRIORITY_SKIP, -1):
            if len(out) >= n:
                return
            started = partials.get(p, [])
            new: list[int] = []
            if untouched_total and self._untouched_count[p]:
                source = sparse.get(p, []) if sparse is not None else None
                new = self._select_untouched(state, p, n - len(out), source)
            if not started and not new:
                continue
            # Sequential: one index order across started and new pieces; else started first.
            order = heapq.merge(started, new) if self.sequential else iter([*started, *new])
            for index in order:
                if len(out) >= n:
                    break
                partial = self._partial.get(index)
                if partial is None:
                    partial = self._start(index)
                self._take_free(peer, state, index, partial, n - len(out), out)

    def _select_untouched(
        self, state: _PeerState, prio: int, blocks_needed: int, sparse: list[int] | None
    ) -> list[int]:
        """Untouched pieces of ``prio`` the peer has, in pick order, enough for the blocks."""
        if sparse is not None:
            stream: Iterable[int] = self._order_sparse(sparse, blocks_needed)
        elif self.sequential:
            stream = self._sequential_stream(state, prio)
        elif self.have.count() < RANDOM_FIRST_PIECES:
            stream = self._random_stream(state, prio)
        else:
            stream = self._rarest_stream(state, prio)
        chosen: list[int] = []
        blocks = 0
        for index in stream:
            chosen.append(index)
            blocks += self._nblocks(index)
            if blocks >= blocks_needed:
                break
        return chosen

    def _order_sparse(self, pieces: list[int], blocks_needed: int) -> list[int]:
        """The first pieces of ``pieces`` in pick order; enough of them for ``blocks_needed``."""
        # Every piece but the last has _blocks_per_piece blocks, so one spare piece suffices.
        count = -(-blocks_needed // self._blocks_per_piece) + 1
        if self.sequential:
            return pieces[:count]  # already ascending
        if self.have.count() < RANDOM_FIRST_PIECES:
            return self._rng.sample(pieces, min(count, len(pieces)))
        avail, rnd = self._avail, self._rng.random
        return heapq.nsmallest(count, pieces, key=lambda i: (avail[i], rnd()))

    def _prio_keys(self, prio: int) -> list[int]:
        lo = bisect.bisect_left(self._keys, (_MAX_PRIORITY - prio) << _AVAIL_BITS)
        hi = bisect.bisect_left(self._keys, (_MAX_PRIORITY - prio + 1) << _AVAIL_BITS)
        return self._keys[lo:hi]

    def _rarest_stream(self, state: _PeerState, prio: int) -> Iterator[int]:
        """Buckets from rarest up; each bucket walked from a random offset (random tie-break)."""
        seed_peer = state.bf is None
        for key in self._prio_keys(prio):
            if not seed_peer and key & _AVAIL_MASK == 0:
                continue  # only seeds have these; a non-seed peer adds 1 to all its pieces
            bucket = self._buckets[key]
            size = len(bucket)
            if not size:
                continue
            start = self._rng.randrange(size)
            for offset in range(size):
                index = bucket[(start + offset) % size]
                if self._has(state, index):
                    yield index

    def _random_stream(self, state: _PeerState, prio: int) -> Iterator[int]:
        """Uniform samples over the priority's untouched pieces, then rarest order as fallback."""
        buckets = [self._buckets[k] for k in self._prio_keys(prio) if self._buckets[k]]
        bounds: list[int] = []
        total = 0
        for bucket in buckets:
            total += len(bucket)
            bounds.append(total)
        seen: set[int] = set()
        for _ in range(_RANDOM_ATTEMPTS):
            if not total:
                break
            r = self._rng.randrange(total)
            slot = bisect.bisect_right(bounds, r)
            bucket = buckets[slot]
            index = bucket[r - (bounds[slot] - len(bucket))]
            if index not in seen and self._has(state, index):
                seen.add(index)
                yield index
        for index in self._rarest_stream(state, prio):
            if index not in seen:
                yield index

    def _sequential_stream(self, state: _PeerState, prio: int) -> Iterator[int]:
        """Lowest index first. The per-priority cursor makes the skip over done pieces amortised."""
        pos, prios, n = self._pos, self._prio, self.num_pieces
        index = self._seq_cursor[prio]
        while index < n and (pos[index] < 0 or prios[index] != prio):
            index += 1
        self._seq_cursor[prio] = index
        while index < n:
            if pos[index] >= 0 and prios[index] == prio and self._has(state, index):
                yield index
            index += 1

    def _take_free(
        self,
        peer: Hashable,
        state: _PeerState,
        index: int,
        partial: _Partial,
        limit: int,
        out: list[BlockRequest],
    ) -> None:
        blocks = partial.state
        block = 0
        taken = 0
        while taken < limit:
            block = blocks.find(_FREE, block)
            if block < 0:
                break
            blocks[block] = _REQUESTED
            partial.requesters[block] = [peer]
            state.requests.add((index, block))
            out.append(self._request(index, block))
            block += 1
            taken += 1
        if taken:
            partial.free -= taken
            partial.touched.add(peer)
            if not partial.free:
                self._open.discard(index)

    def _pick_restricted(
        self,
        peer: Hashable,
        state: _PeerState,
        n: int,
        allowed: set[int],
        out: list[BlockRequest],
    ) -> None:
        """Pick among an explicit (small) piece set, same preference order. O(len(allowed))."""
        ranked: list[tuple[tuple[int, ...], int]] = []
        prio, avail = self._prio, self._avail
        for index in allowed:
            if not 0 <= index < self.num_pieces or not prio[index] or self.have[index]:
                continue
            if not self._has(state, index):
                continue
            partial = self._partial.get(index)
            if partial is not None and not partial.free:
                continue
            if partial is None and self._pos[index] < 0:
                continue
            started = 0 if partial is not None else 1
            order = index if self.sequential else avail[index]
            ranked.append(((-prio[index], started, order, index), index))
        ranked.sort()
        for _, index in ranked:
            if len(out) >= n:
                return
            partial = self._partial.get(index)
            if partial is None:
                partial = self._start(index)
            self._take_free(peer, state, index, partial, n - len(out), out)

    def _pick_endgame(
        self,
        peer: Hashable,
        state: _PeerState,
        n: int,
        allowed: set[int] | None,
        out: list[BlockRequest],
    ) -> None:
        """Duplicate blocks outstanding at other peers, least-duplicated first."""
        ranked: list[tuple[int, int, int, int]] = []
        prio = self._prio
        for index, partial in self._partial.items():
            if not prio[index] or not self._has(state, index):
                continue
            if allowed is not None and index not in allowed:
                continue
            for block, requesters in partial.requesters.items():
                if peer not in requesters:
                    ranked.append((len(requesters), -prio[index], index, block))
        ranked.sort()
        for _, _, index, block in ranked[: n - len(out)]:
            self._partial[index].requesters[block].append(peer)
            self._partial[index].touched.add(peer)
            state.requests.add((index, block))
            out.append(self._request(index, block))


def _as_int(bf: Bitfield) -> int:
    """The bitfield as one big integer, for C-speed AND / popcount across all pieces."""
    return int.from_bytes(bf._data, "big")


def _iter_bits(data: bytes) -> Iterator[int]:
    """Set bit indices of a BitTorrent-ordered byte string."""
    return Bitfield.from_bytes(data, len(data) * 8).iter_set()
