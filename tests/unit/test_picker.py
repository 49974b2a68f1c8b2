"""Piece picker: ordering rules, request bookkeeping, endgame, hash fails, scale."""

from __future__ import annotations

import random
import time
from collections.abc import Hashable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ccbt_engine.bitfield import Bitfield
from ccbt_engine.strategy.picker import (
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NORMAL,
    PRIORITY_SKIP,
    RANDOM_FIRST_PIECES,
    BlockRequest,
    PickerError,
    PiecePicker,
)

BS = 16  # tiny blocks keep the arithmetic readable


def make(
    num_pieces: int, blocks: int = 4, *, total: int | None = None, seed: int = 0
) -> PiecePicker:
    piece_length = blocks * BS
    if total is None:
        total = num_pieces * piece_length
    return PiecePicker(num_pieces, piece_length, total, BS, rng=random.Random(seed))


def bf(num: int, pieces: Iterable[int]) -> Bitfield:
    out = Bitfield(num)
    for i in pieces:
        out.set(i)
    return out


def pieces_of(reqs: list[BlockRequest]) -> list[int]:
    """Distinct pieces in first-seen order."""
    return list(dict.fromkeys(r.piece for r in reqs))


def own_first(p: PiecePicker, pieces: Iterable[int]) -> None:
    """Own some pieces so rarest-first (not random-first) ordering applies."""
    for i in pieces:
        p.set_have(i)
    assert p.have.count() >= RANDOM_FIRST_PIECES


# ---------------------------------------------------------------- construction and geometry


def test_rejects_inconsistent_geometry() -> None:
    with pytest.raises(PickerError):
        PiecePicker(3, 64, 64 * 3 + 1)
    with pytest.raises(PickerError):
        PiecePicker(3, 64, 64 * 2)
    with pytest.raises(PickerError):
        PiecePicker(0, 64, 10)
    with pytest.raises(PickerError):
        PiecePicker(1, 0, 0)
    empty = PiecePicker(0, 64, 0)
    assert empty.is_finished() and empty.is_seed()


def test_last_piece_short_blocks() -> None:
    p = PiecePicker(3, 32768, 32768 * 2 + 20000, 16384, rng=random.Random(1))
    p.peer_have_all("a")
    p.sequential = True
    reqs = p.pick("a", 100)
    assert reqs == [
        BlockRequest(0, 0, 16384),
        BlockRequest(0, 16384, 16384),
        BlockRequest(1, 0, 16384),
        BlockRequest(1, 16384, 16384),
        BlockRequest(2, 0, 16384),
        BlockRequest(2, 16384, 3616),
    ]
    assert p.piece_size(2) == 20000 and p.num_blocks(2) == 2
    assert p.block_length(2, 16384) == 3616
    with pytest.raises(PickerError):
        p.block_length(2, 32768)
    assert p.wanted_remaining() == 32768 * 2 + 20000


def test_last_piece_single_short_block() -> None:
    p = make(2, blocks=4, total=4 * BS + 5)
    p.peer_have_all("a")
    reqs = p.pick("a", 100)
    assert sorted(reqs, key=lambda r: (r.piece, r.begin))[-1] == BlockRequest(1, 0, 5)
    assert len(reqs) == 5


# ---------------------------------------------------------------- availability


def test_availability_counts_bitfields_haves_and_seeds() -> None:
    p = make(8)
    p.peer_bitfield("a", bf(8, [0, 1]))
    p.peer_have("b", 1)
    p.peer_have("b", 1)  # repeated HAVE counts once
    p.peer_have_all("c")
    assert [p.availability(i) for i in range(3)] == [2, 3, 1]
    p.peer_bitfield("a", bf(8, [2]))  # replaces the earlier bitfield
    assert [p.availability(i) for i in range(3)] == [1, 2, 2]
    p.peer_have_none("c")
    assert [p.availability(i) for i in range(3)] == [0, 1, 1]
    p.peer_bitfield("d", Bitfield.full(8))  # full bitfield behaves like HAVE_ALL
    assert p.availability(7) == 1
    p.peer_lost("d")
    p.peer_lost("b")
    assert [p.availability(i) for i in range(3)] == [0, 0, 1]


def test_untrusted_indices_raise_picker_error() -> None:
    p = make(8)
    with pytest.raises(PickerError):
        p.peer_have("a", 8)
    with pytest.raises(PickerError):
        p.peer_have("a", -1)
    with pytest.raises(PickerError):
        p.peer_bitfield("a", Bitfield(9))
    assert issubclass(PickerError, ValueError)


def test_interesting() -> None:
    p = make(8)
    p.set_have(3)
    p.peer_bitfield("a", bf(8, [3]))
    p.peer_have_all("s")
    assert not p.interesting("a") and p.interesting("s") and not p.interesting("unknown")
    p.peer_have("a", 4)
    assert p.interesting("a")
    p.set_piece_priority(4, PRIORITY_SKIP)
    assert not p.interesting("a")


# ---------------------------------------------------------------- ordering


def test_rarest_first() -> None:
    p = make(10)
    own_first(p, range(4))
    p.peer_have_all("seed")
    p.peer_bitfield("x", bf(10, [4, 5, 7, 8, 9]))
    p.peer_bitfield("y", bf(10, [4, 8, 9]))
    p.peer_bitfield("z", bf(10, [9]))
    # non-seed availability: 4:2 5:1 6:0 7:1 8:2 9:3
    order = [pieces_of(p.pick("seed", 4))[0] for _ in range(6)]
    assert order[0] == 6
    assert set(order[1:3]) == {5, 7}
    assert set(order[3:5]) == {4, 8}
    assert order[5] == 9


def test_rarest_ties_are_broken_randomly() -> None:
    firsts = set()
    for seed in range(30):
        p = make(40, seed=seed)
        own_first(p, range(4))
        p.peer_have_all("seed")
        firsts.add(pieces_of(p.pick("seed", 1))[0])
    assert len(firsts) > 5


def test_non_seed_peer_only_gets_pieces_it_has() -> None:
    p = make(20)
    own_first(p, range(4))
    p.peer_bitfield("a", bf(20, [10, 11]))
    p.peer_have_all("s")
    got = p.pick("a", 100)
    assert set(pieces_of(got)) == {10, 11} and len(got) == 8


def test_sparse_peer_in_large_torrent_gets_its_rarest_piece() -> None:
    n = 20_000
    p = make(n, blocks=2)
    own_first(p, range(4))
    p.peer_have_all("seed")
    p.peer_bitfield("s", bf(n, [5000, 7000, 9000]))
    p.peer_have("t", 7000)
    assert pieces_of(p.pick("s", 4)) in ([5000, 9000], [9000, 5000])
    assert pieces_of(p.pick("s", 4)) == [7000]
    assert p.pick("s", 4) == []


def test_sparse_peer_sequential() -> None:
    n = 20_000
    p = make(n, blocks=2)
    p.sequential = True
    p.peer_bitfield("s", bf(n, [9000, 5000, 7000]))
    assert pieces_of(p.pick("s", 6)) == [5000, 7000, 9000]


def test_random_first_pieces_then_rarest() -> None:
    def setup(seed: int) -> PiecePicker:
        p = make(100, seed=seed)
        p.peer_bitfield("a", bf(100, range(99)))
        p.peer_bitfield("b", bf(100, [i for i in range(99) if i != 42]))
        return p

    firsts = {pieces_of(setup(seed).pick("a", 4))[0] for seed in range(20)}
    assert len(firsts) > 5, "with no pieces the first piece is random, not the rarest"
    for seed in range(5):
        p = setup(seed)
        own_first(p, range(60, 64))
        assert pieces_of(p.pick("a", 4)) == [42]


def test_priorities_beat_rarity_and_skip_is_never_picked() -> None:
    p = make(10)
    own_first(p, range(4))
    p.peer_have_all("seed")
    p.peer_bitfield("x", bf(10, [5, 6, 7, 8]))  # 4 and 9 are rarest
    p.set_piece_priority(8, PRIORITY_HIGH)
    p.set_piece_priority(4, PRIORITY_LOW)
    p.set_piece_priority(9, PRIORITY_SKIP)
    assert p.piece_priority(8) == PRIORITY_HIGH
    order = pieces_of(p.pick("seed", 100))
    assert order[0] == 8
    assert order[-1] == 4
    assert 9 not in order and set(order) == {4, 5, 6, 7, 8}
    assert p.pick("seed", 100) == []
    p.peer_have_all("late")
    assert p.in_endgame
    assert 9 not in pieces_of(p.pick("late", 100)), "endgame never duplicates into skipped pieces"


def test_skip_then_unskip() -> None:
    p = make(4)
    p.set_piece_priorities([PRIORITY_SKIP] * 4)
    p.peer_have_all("a")
    assert p.pick("a", 10) == [] and p.is_finished() and p.wanted_remaining() == 0
    p.set_piece_priority(2, PRIORITY_NORMAL)
    assert pieces_of(p.pick("a", 10)) == [2]
    assert p.wanted_remaining() == 4 * BS
    with pytest.raises(PickerError):
        p.set_piece_priority(0, 8)
    with pytest.raises(PickerError):
        p.set_piece_priorities([1, 2])


def test_sequential_ignores_rarity_but_not_priority() -> None:
    p = make(10)
    own_first(p, [0, 1, 2, 3])
    p.peer_have_all("seed")
    p.peer_bitfield("x", bf(10, [4, 5, 6]))  # 7..9 rarer
    p.sequential = True
    p.set_piece_priority(9, PRIORITY_HIGH)
    assert pieces_of(p.pick("seed", 4 * 6)) == [9, 4, 5, 6, 7, 8]


def test_sequential_after_priority_change_and_failure() -> None:
    p = make(6)
    p.sequential = True
    p.peer_have_all("a")
    first = p.pick("a", 8)
    assert pieces_of(first) == [0, 1]
    for r in first:
        p.block_received("a", r.piece, r.begin)
    p.piece_passed(1)
    assert p.piece_failed(0) == {"a"}
    assert pieces_of(p.pick("a", 4)) == [0], "a failed piece goes back behind the cursor"


def test_partial_pieces_first_with_peer_affinity() -> None:
    p = make(10, blocks=8)
    own_first(p, range(4))
    all_wanted = range(4, 10)
    p.peer_bitfield("a", bf(10, all_wanted))
    p.peer_bitfield("b", bf(10, all_wanted))
    p.peer_bitfield("c", bf(10, [5]))  # piece 5 is more common than piece 6
    # a starts piece 5, b starts piece 6 (both via allowed-fast to steer them)
    assert pieces_of(p.pick("a", 2, allowed_fast_only={5})) == [5]
    assert pieces_of(p.pick("b", 2, allowed_fast_only={6})) == [6]
    # a continues its own piece 5 even though 6 is rarer; b continues 6
    assert [(r.piece, r.begin) for r in p.pick("a", 2)] == [(5, 2 * BS), (5, 3 * BS)]
    assert pieces_of(p.pick("b", 2)) == [6]
    # a newcomer prefers the rarer of the partial pieces, before any new piece
    p.peer_bitfield("d", bf(10, all_wanted))
    assert pieces_of(p.pick("d", 4)) == [6]
    got = p.pick("d", 12)
    assert pieces_of(got)[0] == 5 and len([r for r in got if r.piece == 5]) == 4


def test_allowed_fast_only() -> None:
    p = make(10)
    own_first(p, range(4))
    p.peer_have_all("a")
    p.peer_bitfield("x", bf(10, [4, 5, 6, 8, 9]))  # 7 is rarest
    got = p.pick("a", 100, allowed_fast_only={8, 2, 99})
    assert pieces_of(got) == [8] and len(got) == 4
    p.set_piece_priority(9, PRIORITY_SKIP)
    assert p.pick("a", 100, allowed_fast_only={9, 3}) == []
    p.peer_bitfield("n", bf(10, [5]))
    assert p.pick("n", 100, allowed_fast_only={6}) == []
    assert pieces_of(p.pick("n", 100, allowed_fast_only={6, 5})) == [5]


# ---------------------------------------------------------------- request bookkeeping


def test_no_block_handed_out_twice_before_endgame() -> None:
    p = make(6)
    for peer in "abc":
        p.peer_have_all(peer)
    seen: set[tuple[int, int]] = set()
    for peer in "abcabc":
        for r in p.pick(peer, 3):
            assert (r.piece, r.begin) not in seen
            seen.add((r.piece, r.begin))
    assert len(seen) == 18 and not p.in_endgame
    assert p.outstanding("a") == 6


def test_peer_lost_returns_outstanding_and_frees_them() -> None:
    p = make(4)
    p.peer_have_all("a")
    p.peer_have_all("b")
    taken = p.pick("a", 3)
    assert p.outstanding("a") == 3 and p.requests_of("a") == sorted(
        taken, key=lambda r: (r.piece, r.begin)
    )
    assert p.availability(0) == 2
    lost = p.peer_lost("a")
    assert sorted(lost, key=lambda r: (r.piece, r.begin)) == lost
    assert set(lost) == set(taken)
    assert p.outstanding("a") == 0 and p.availability(0) == 1
    assert set(taken) <= set(p.pick("b", 3 + 1))
    assert p.peer_lost("a") == []
    assert p.pick("a", 4) == [], "a forgotten peer gets nothing"


def test_abort_request_makes_block_pickable() -> None:
    p = make(4)
    p.peer_have_all("a")
    p.peer_have_all("b")
    first = p.pick("a", 1)[0]
    p.abort_request("a", first.piece, first.begin)
    p.abort_request("a", first.piece, first.begin)  # repeated abort is harmless
    p.abort_request("a", 99, 0)  # unknown piece is ignored
    assert p.outstanding("a") == 0
    assert p.pick("b", 1) == [first], "the aborted block goes first (its piece is partial)"


def test_block_received_tolerates_unrequested_and_duplicates() -> None:
    p = make(4)
    p.peer_have_all("a")
    assert p.block_received("a", 2, BS) == []  # unrequested but wanted: kept
    assert p.is_block_received(2, BS)
    assert p.block_received("a", 2, BS) == []  # duplicate
    assert p.block_received("a", 2, 3) == []  # misaligned
    assert p.block_received("a", 2, 4 * BS) == []  # past the end
    assert p.block_received("a", 17, 0) == []  # no such piece
    assert not p.is_block_received(2, 3)
    assert not p.is_block_received(17, 0) and not p.is_block_received(-1, 0)
    p.set_piece_priority(3, PRIORITY_SKIP)
    assert p.block_received("a", 3, 0) == [] and not p.is_block_received(3, 0)
    got = p.pick("a", 3)
    assert (2, BS) not in {(r.piece, r.begin) for r in got}


def test_full_download_cycle_and_progress() -> None:
    p = make(3, total=3 * 4 * BS - 7)
    p.set_piece_priority(1, PRIORITY_SKIP)
    p.peer_have_all("a")
    assert p.wanted_remaining() == 2 * 4 * BS - 7
    reqs = p.pick("a", 100)
    assert pieces_of(sorted(reqs, key=lambda r: r.piece)) == [0, 2]
    for r in reqs:
        assert not p.piece_complete(r.piece) or r.begin == 0
        assert p.block_received("a", r.piece, r.begin) == []
    assert p.piece_complete(0) and p.piece_complete(2) and not p.piece_complete(1)
    p.piece_passed(0)
    assert p.wanted_remaining() == 4 * BS - 7 and not p.is_finished()
    p.piece_passed(2)
    assert p.is_finished() and not p.is_seed() and p.wanted_remaining() == 0
    assert p.outstanding("a") == 0 and not p.piece_complete(0)
    assert p.is_block_received(0, 0)
    assert p.pick("a", 10) == [] and not p.in_endgame
    p.set_have(1)
    assert p.is_seed()


def test_piece_failed_resets_blocks_and_names_contributors() -> None:
    p = make(1, blocks=3)
    for peer in "abc":
        p.peer_have_all(peer)
    p.block_received("a", 0, 0)
    p.block_received("b", 0, BS)
    r = p.pick("c", 5)
    assert r == [BlockRequest(0, 2 * BS, BS)]
    p.block_received("c", 0, 2 * BS)
    assert p.piece_complete(0)
    assert p.piece_failed(0) == {"a", "b", "c"}
    assert not p.piece_complete(0) and not p.is_block_received(0, 0)
    assert len(p.pick("a", 5)) == 3, "every block is requested again"
    assert p.piece_failed(0) == set(), "nothing was received since the reset"
    assert p.outstanding("a") == 0, "resetting a piece drops its outstanding requests"


# ---------------------------------------------------------------- endgame


def test_endgame_duplicates_and_cancels() -> None:
    p = make(3, blocks=2)
    for peer in "abc":
        p.peer_have_all(peer)
    a = p.pick("a", 4)
    assert not p.in_endgame
    b = p.pick("b", 4)
    assert p.in_endgame
    assert len(b) == 4
    assert {(r.piece, r.begin) for r in b[:2]}.isdisjoint({(r.piece, r.begin) for r in a})
    assert set(b[2:]) <= set(a), "after the free blocks, b duplicates a's requests"
    assert p.pick("a", 10) == [r for r in b[:2]], "a duplicates only what it lacks"
    c = p.pick("c", 10)
    assert len(c) == 6, "c duplicates everything, least duplicated first"
    dup = b[2]
    cancels = p.block_received("b", dup.piece, dup.begin)
    assert sorted(cancels, key=repr) == sorted([("a", dup), ("c", dup)], key=repr)
    assert dup not in p.requests_of("a") and dup not in p.requests_of("c")
    assert p.block_received("a", dup.piece, dup.begin) == [], "late duplicate is ignored"


def test_endgame_respects_allowed_fast_and_peer_pieces() -> None:
    p = make(2, blocks=2)
    p.peer_have_all("a")
    p.peer_bitfield("b", bf(2, [1]))
    p.pick("a", 4)
    assert p.in_endgame
    assert pieces_of(p.pick("b", 10)) == [1]
    p.peer_have_all("c")
    assert p.pick("c", 10, allowed_fast_only={0}) == [
        BlockRequest(0, 0, BS),
        BlockRequest(0, BS, BS),
    ]


def test_endgame_never_duplicates_skipped_partial_piece() -> None:
    p = make(2, blocks=2)
    p.peer_have_all("a")
    p.peer_have_all("b")
    assert len(p.pick("a", 4)) == 4
    p.set_piece_priority(0, PRIORITY_SKIP)
    assert p.in_endgame
    assert pieces_of(p.pick("b", 10)) == [1]


def test_endgame_ends_when_blocks_come_free() -> None:
    p = make(1, blocks=2)
    p.peer_have_all("a")
    p.pick("a", 2)
    assert p.in_endgame
    p.peer_lost("a")
    assert not p.in_endgame


# ---------------------------------------------------------------- scale


def test_large_torrent_many_peers_is_fast() -> None:
    n = 100_000
    rng = random.Random(5)
    p = PiecePicker(n, 262144, n * 262144 - 100, 16384, rng=rng)
    peers = list(range(200))
    start = time.perf_counter()
    for peer in peers:
        if peer % 4 == 0:
            p.peer_have_all(peer)
        elif peer % 4 == 1:
            p.peer_bitfield(peer, Bitfield.from_bytes(rng.randbytes(n // 8), n))
        else:
            p.peer_bitfield(peer, bf(n, rng.sample(range(n), rng.randrange(1, 2000))))
    for i in range(0, n, 3):
        p.set_have(i)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    picks = 0
    for round_ in range(1000):
        peer = peers[round_ % len(peers)]
        reqs = p.pick(peer, 16)
        picks += len(reqs)
        for r in reqs[:12]:
            p.block_received(peer, r.piece, r.begin)
            if p.piece_complete(r.piece):
                p.piece_passed(r.piece)
    per_pick = (time.perf_counter() - start) / 1000
    assert picks > 10_000
    # Measured ~0.15 ms per pick and ~2 s setup on the 2-core dev box; generous ceilings keep
    # this meaningful (an O(pieces) scan per pick costs >10 ms) without flaking under load.
    assert per_pick < 0.005, per_pick
    assert setup < 20, setup


# ---------------------------------------------------------------- bulk edge cases


def test_skipped_partial_piece_is_not_continued() -> None:
    p = make(2, blocks=4)
    p.peer_have_all("a")
    p.pick("a", 2, allowed_fast_only={0})
    p.set_piece_priority(0, PRIORITY_SKIP)
    assert pieces_of(p.pick("a", 10)) == [1]
    p.set_piece_priority(0, PRIORITY_NORMAL)
    assert [(r.piece, r.begin) for r in p.pick("a", 10)] == [(0, 2 * BS), (0, 3 * BS)]


# ---------------------------------------------------------------- property tests

Peer = Hashable


class PickerMachine(RuleBasedStateMachine):
    """Random peers, picks, arrivals, aborts, disconnects and hash results against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.p = make(1)
        self.num = 1
        self.piece_length = BS
        self.total = BS
        self.peer_pieces: dict[Peer, set[int]] = {}
        self.out: dict[Peer, set[tuple[int, int]]] = {}
        self.senders: dict[int, dict[int, Peer]] = {}

    @initialize(
        num=st.integers(min_value=1, max_value=8),
        blocks=st.integers(min_value=1, max_value=4),
        short=st.integers(min_value=0, max_value=4 * BS - 1),
        seed=st.integers(min_value=0, max_value=2**16),
    )
    def setup(self, num: int, blocks: int, short: int, seed: int) -> None:
        self.num = num
        self.piece_length = blocks * BS
        self.total = num * self.piece_length - short % self.piece_length
        self.p = PiecePicker(num, self.piece_length, self.total, BS, rng=random.Random(seed))

    # -- model helpers

    def blocks(self, piece: int) -> list[int]:
        return list(range(0, self.p.piece_size(piece), BS))

    def wanted_missing(self) -> list[int]:
        return [
            i
            for i in range(self.num)
            if self.p.piece_priority(i) > PRIORITY_SKIP and not self.p.have[i]
        ]

    def outstanding_anywhere(self) -> set[tuple[int, int]]:
        return set().union(*self.out.values()) if self.out else set()

    # -- rules

    @rule(peer=st.integers(0, 3), kind=st.sampled_from(["all", "none", "some"]), data=st.data())
    def connect(self, peer: Peer, kind: str, data: st.DataObject) -> None:
        if kind == "all":
            self.p.peer_have_all(peer)
            self.peer_pieces[peer] = set(range(self.num))
        elif kind == "none":
            self.p.peer_have_none(peer)
            self.peer_pieces[peer] = set()
        else:
            pieces = data.draw(st.sets(st.integers(0, self.num - 1)))
            self.p.peer_bitfield(peer, bf(self.num, pieces))
            self.peer_pieces[peer] = set(pieces)
        self.out.setdefault(peer, set())

    @rule(peer=st.integers(0, 3), data=st.data())
    def have(self, peer: Peer, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.num - 1))
        self.p.peer_have(peer, index)
        self.peer_pieces.setdefault(peer, set()).add(index)
        self.out.setdefault(peer, set())

    @rule(
        peer=st.integers(0, 3),
        n=st.integers(1, 8),
        fast=st.none() | st.sets(st.integers(0, 9), max_size=3),
    )
    def pick(self, peer: Peer, n: int, fast: set[int] | None) -> None:
        elsewhere = self.outstanding_anywhere()
        got = self.p.pick(peer, n, allowed_fast_only=fast)
        assert len(got) <= n
        if peer not in self.peer_pieces:
            assert got == []
            return
        mine = self.out[peer]
        for r in got:
            key = (r.piece, r.begin)
            assert self.p.piece_priority(r.piece) > PRIORITY_SKIP, "skipped piece requested"
            assert not self.p.have[r.piece] and r.piece in self.peer_pieces[peer]
            assert fast is None or r.piece in fast
            assert r.length == self.p.block_length(r.piece, r.begin)
            assert key not in mine, "same block requested twice from one peer"
            assert not self.p.is_block_received(r.piece, r.begin)
            if key in elsewhere:
                assert self.p.in_endgame, "block duplicated outside endgame"
            mine.add(key)
        if len(got) < n and fast is None:
            # Nothing requestable was left behind for this peer.
            for piece in self.wanted_missing():
                if piece not in self.peer_pieces[peer]:
                    continue
                for begin in self.blocks(piece):
                    key = (piece, begin)
                    if self.p.is_block_received(piece, begin) or key in mine:
                        continue
                    assert key in self.outstanding_anywhere(), f"free block {key} not picked"
                    assert not self.p.in_endgame, f"endgame duplicate {key} not picked"

    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        pending = sorted((peer, k) for peer, keys in self.out.items() for k in keys)
        if not pending:
            return
        peer, (piece, begin) = data.draw(st.sampled_from(pending))
        cancels = self.p.block_received(peer, piece, begin)
        expected = {
            (other, (piece, begin))
            for other, keys in self.out.items()
            if other != peer and (piece, begin) in keys
        }
        assert {(o, (r.piece, r.begin)) for o, r in cancels} == expected
        for keys in self.out.values():
            keys.discard((piece, begin))
        self.senders.setdefault(piece, {})[begin] = peer

    @rule(peer=st.integers(0, 3), data=st.data())
    def receive_unsolicited(self, peer: Peer, data: st.DataObject) -> None:
        piece = data.draw(st.integers(0, self.num - 1))
        begin = data.draw(st.sampled_from(self.blocks(piece)))
        before = self.p.is_block_received(piece, begin)
        cancels = self.p.block_received(peer, piece, begin)
        if self.p.is_block_received(piece, begin) and not before:
            self.senders.setdefault(piece, {})[begin] = peer
            expected = {
                (other, (piece, begin))
                for other, keys in self.out.items()
                if other != peer and (piece, begin) in keys
            }
            assert {(o, (r.piece, r.begin)) for o, r in cancels} == expected
            for keys in self.out.values():
                keys.discard((piece, begin))
        else:
            assert cancels == []

    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        pending = sorted((peer, k) for peer, keys in self.out.items() for k in keys)
        if not pending:
            return
        peer, (piece, begin) = data.draw(st.sampled_from(pending))
        self.p.abort_request(peer, piece, begin)
        self.out[peer].discard((piece, begin))

    @rule(peer=st.integers(0, 3))
    def lose(self, peer: Peer) -> None:
        lost = self.p.peer_lost(peer)
        assert {(r.piece, r.begin) for r in lost} == self.out.pop(peer, set())
        self.peer_pieces.pop(peer, None)

    @rule(data=st.data(), prio=st.sampled_from([0, 1, 4, 7]))
    def set_priority(self, data: st.DataObject, prio: int) -> None:
        self.p.set_piece_priority(data.draw(st.integers(0, self.num - 1)), prio)

    @rule(on=st.booleans())
    def sequential(self, on: bool) -> None:
        self.p.sequential = on

    @rule(data=st.data(), passed=st.booleans())
    def verify(self, data: st.DataObject, passed: bool) -> None:
        complete = [i for i in range(self.num) if self.p.piece_complete(i)]
        if not complete:
            return
        piece = data.draw(st.sampled_from(complete))
        assert len(self.senders.get(piece, {})) == len(self.blocks(piece))
        if passed:
            self.p.piece_passed(piece)
        else:
            assert self.p.piece_failed(piece) == set(self.senders[piece].values())
        del self.senders[piece]

    # -- invariants

    @invariant()
    def bookkeeping_matches(self) -> None:
        for peer, keys in self.out.items():
            assert self.p.outstanding(peer) == len(keys)
        for i in range(self.num):
            assert self.p.availability(i) == sum(i in s for s in self.peer_pieces.values())
        wanted = self.wanted_missing()
        assert self.p.wanted_remaining() == sum(self.p.piece_size(i) for i in wanted)
        assert self.p.is_finished() == (not wanted)
        covered = self.outstanding_anywhere()
        endgame = bool(wanted) and all(
            self.p.is_block_received(i, b) or (i, b) in covered
            for i in wanted
            for b in self.blocks(i)
        )
        assert self.p.in_endgame == endgame


PickerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPickerMachine = PickerMachine.TestCase


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num=st.integers(1, 40),
    blocks=st.integers(1, 5),
    num_peers=st.integers(1, 6),
)
def test_swarm_simulation_finishes(seed: int, num: int, blocks: int, num_peers: int) -> None:
    """Random peers and arrival orders until done: every wanted piece ends up verified."""
    rng = random.Random(seed)
    p = PiecePicker(num, blocks * BS, num * blocks * BS - rng.randrange(blocks * BS), BS, rng=rng)
    priorities = [rng.choice([0, 1, 4, 4, 7]) for _ in range(num)]
    p.set_piece_priorities(priorities)
    p.sequential = rng.random() < 0.3
    p.peer_have_all("seed")
    for leecher in range(num_peers):
        p.peer_bitfield(leecher, bf(num, (i for i in range(num) if rng.random() < 0.5)))
    peers: list[Hashable] = ["seed", *range(num_peers)]
    out: dict[Hashable, set[tuple[int, int]]] = {peer: set() for peer in peers}
    in_flight: list[tuple[Hashable, BlockRequest]] = []
    for _step in range(20_000):
        if p.is_finished():
            break
        peer = rng.choice(peers)
        elsewhere = set().union(*(out[o] for o in peers if o != peer))
        for r in p.pick(peer, rng.randint(1, 6)):
            assert priorities[r.piece] > PRIORITY_SKIP
            if (r.piece, r.begin) in elsewhere:
                assert p.in_endgame
            out[peer].add((r.piece, r.begin))
            in_flight.append((peer, r))
        rng.shuffle(in_flight)
        for _ in range(rng.randint(0, len(in_flight))):
            sender, r = in_flight.pop()
            if (r.piece, r.begin) not in out[sender]:
                continue  # cancelled meanwhile
            out[sender].discard((r.piece, r.begin))
            if rng.random() < 0.05:
                p.abort_request(sender, r.piece, r.begin)  # timed out / rejected
                continue
            for other, c in p.block_received(sender, r.piece, r.begin):
                out[other].discard((c.piece, c.begin))
            if p.piece_complete(r.piece):
                if rng.random() < 0.1:
                    assert sender in p.piece_failed(r.piece)
                else:
                    p.piece_passed(r.piece)
        if rng.random() < 0.02:
            victim = rng.choice(peers[1:] or peers)
            if victim != "seed":
                assert {(r.piece, r.begin) for r in p.peer_lost(victim)} == out[victim]
                out[victim].clear()
                p.peer_bitfield(victim, bf(num, (i for i in range(num) if rng.random() < 0.5)))
    assert p.is_finished()
    assert all(p.have[i] == (priorities[i] > 0) for i in range(num))
