"""Choker: tit-for-tat slots, optimistic rotation on a fake clock, seeding mode, snubbing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ccbt_engine.strategy.choker import (
    NEW_PEER_WINDOW,
    SNUB_TIMEOUT,
    Choker,
    PeerChokeInfo,
    is_snubbed,
)


def info(
    peer: str,
    down: float = 0.0,
    up: float = 0.0,
    *,
    interested: bool = True,
    snubbed: bool = False,
    seed: bool = False,
) -> PeerChokeInfo:
    return PeerChokeInfo(peer, interested, down, up, snubbed, seed)


def swarm() -> list[PeerChokeInfo]:
    return [
        info(name, down=rate)
        for name, rate in zip("abcdefg", [70, 60, 50, 40, 30, 20, 10], strict=True)
    ]


def test_leeching_unchokes_best_downloaders_plus_one_optimistic() -> None:
    choker = Choker(slots=4, rng=random.Random(1))
    unchoked = choker.rechoke(swarm(), now=0.0, seeding=False)
    assert {"a", "b", "c", "d"} <= unchoked
    assert len(unchoked) == 5
    assert choker.optimistic in {"e", "f", "g"} and choker.optimistic in unchoked


def test_uninterested_and_seed_peers_stay_choked() -> None:
    peers = [
        info("fast-but-bored", down=1000, interested=False),
        info("seed", down=900, seed=True),
        info("x", down=1),
    ]
    assert Choker(slots=4, rng=random.Random(0)).rechoke(peers, 0.0, seeding=False) == {"x"}


def test_snubbed_peers_lose_their_regular_slot_but_may_be_optimistic() -> None:
    peers = [info("snub", down=1000, snubbed=True), info("a", down=5), info("b", down=4)]
    results = set()
    for seed in range(20):
        choker = Choker(slots=1, rng=random.Random(seed))
        unchoked = choker.rechoke(peers, 0.0, seeding=False)
        assert "a" in unchoked and len(unchoked) == 2
        results.add(choker.optimistic)
    assert results == {"snub", "b"}


@pytest.mark.parametrize("seed", range(15))
def test_optimistic_rotates_on_interval_with_fake_clock(seed: int) -> None:
    choker = Choker(slots=1, optimistic_interval=30.0, rng=random.Random(seed))
    peers = [info("top", down=100)] + [info(f"p{i}") for i in range(5)]
    choker.rechoke(peers, 0.0, seeding=False)
    first = choker.optimistic
    for now in (10.0, 20.0, 29.9):
        assert choker.rechoke(peers, now, seeding=False) == {"top", first}
    choker.rechoke(peers, 30.0, seeding=False)
    second = choker.optimistic
    assert second not in (None, first), "rotation moves the slot to another peer"
    choker.rechoke(peers, 40.0, seeding=False)
    assert choker.optimistic == second


def test_optimistic_replaced_when_it_leaves_or_earns_a_regular_slot() -> None:
    choker = Choker(slots=1, rng=random.Random(4))
    peers = [info("top", down=100), info("x"), info("y")]
    choker.rechoke(peers, 0.0, seeding=False)
    opt = choker.optimistic
    other = "y" if opt == "x" else "x"
    # the optimistic peer disconnects: replaced at once, not after the interval
    assert choker.rechoke([peers[0], info(other)], 5.0, seeding=False) == {"top", other}
    # the optimistic peer becomes the best uploader: it takes the regular slot, and the
    # optimistic slot goes to someone else in the same round
    promoted = [info("top", down=1), info(other, down=500), info("z")]
    assert choker.rechoke(promoted, 6.0, seeding=False) == {other, "z"}


def test_only_choice_keeps_optimistic_after_interval() -> None:
    choker = Choker(slots=0, rng=random.Random(0))
    assert choker.rechoke([info("solo")], 0.0, seeding=False) == {"solo"}
    assert choker.rechoke([info("solo")], 100.0, seeding=False) == {"solo"}
    assert choker.rechoke([], 200.0, seeding=False) == set()
    assert choker.optimistic is None


def test_new_peers_three_times_as_likely_for_optimistic() -> None:
    wins: Counter[str] = Counter()
    trials = 600
    for seed in range(trials):
        choker = Choker(slots=0, rng=random.Random(seed))
        old = [info("old1"), info("old2"), info("old3")]
        choker.rechoke(old, 0.0, seeding=False)
        now = NEW_PEER_WINDOW + 100.0  # old peers are no longer new; interval has passed
        choker._optimistic = None  # fresh draw with every peer eligible
        choker.rechoke([*old, info("new")], now, seeding=False)
        assert choker.optimistic is not None
        wins[str(choker.optimistic)] += 1
    share = wins["new"] / trials
    assert 0.40 < share < 0.60, share  # weight 3 of total 6


def test_seeding_serves_fastest_uploads() -> None:
    peers = [
        info(name, down=0, up=rate)
        for name, rate in zip("abcdef", [5, 50, 40, 30, 20, 10], strict=True)
    ]
    peers.append(info("done", up=1000, seed=True))
    choker = Choker(slots=3, rng=random.Random(0))
    unchoked = choker.rechoke(peers, 0.0, seeding=True)
    assert {"b", "c", "d"} <= unchoked and "done" not in unchoked
    assert len(unchoked) == 4 and choker.optimistic in {"a", "e", "f"}


def test_seeding_ignores_snubbing_and_download_rate() -> None:
    peers = [info("a", down=1000, up=1, snubbed=True), info("b", up=100)]
    unchoked = Choker(slots=1, rng=random.Random(0)).rechoke(peers, 0.0, seeding=True)
    assert unchoked == {"a", "b"}


def test_equal_rates_take_turns() -> None:
    peers = [info(name, down=10) for name in "abcdef"]
    chosen = {
        frozenset(Choker(slots=2, rng=random.Random(seed)).rechoke(peers, 0.0, seeding=False))
        for seed in range(30)
    }
    assert len(chosen) > 5


def test_due_follows_rechoke_interval() -> None:
    choker = Choker(rechoke_interval=10.0, rng=random.Random(0))
    assert choker.due(0.0)
    choker.rechoke([], 0.0, seeding=False)
    assert not choker.due(9.99)
    assert choker.due(10.0)


def test_is_snubbed() -> None:
    assert SNUB_TIMEOUT == 60.0
    assert not is_snubbed(100.0, 159.9, True)
    assert is_snubbed(100.0, 160.0, True)
    assert not is_snubbed(100.0, 1000.0, False), "no outstanding requests: nothing to snub"
    assert is_snubbed(0.0, 5.0, True, timeout=5.0)


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        Choker(slots=-1)
    with pytest.raises(ValueError):
        Choker(optimistic_interval=0)
