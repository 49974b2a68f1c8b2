"""The queue policy without I/O: feed entries and rates, assert who runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.queueing import (
    MAX_RATIO,
    QueueEntry,
    QueueOrder,
    SlowTracker,
    seeding_limit_reached,
    select_active,
    share_ratio,
)


def _dl(key: str, running: bool = False, slow: bool = False) -> QueueEntry[str]:
    return QueueEntry(key, "download", running, slow)


def _seed(key: str, running: bool = False, slow: bool = False) -> QueueEntry[str]:
    return QueueEntry(key, "seed", running, slow)


def test_downloads_fill_their_slots_in_queue_order() -> None:
    entries = [_dl("a"), _dl("b"), _dl("c")]
    assert select_active(entries, max_downloads=1, max_seeds=5) == {"a"}
    assert select_active(entries, max_downloads=2, max_seeds=5) == {"a", "b"}


def test_zero_means_unlimited() -> None:
    entries = [_dl(str(i)) for i in range(50)] + [_seed(f"s{i}") for i in range(50)]
    assert len(select_active(entries, max_downloads=0, max_seeds=0)) == 100


def test_downloads_and_seeds_have_separate_slots() -> None:
    entries = [_seed("s1", running=True), _dl("d1"), _seed("s2"), _dl("d2")]
    assert select_active(entries, max_downloads=1, max_seeds=1) == {"s1", "d1"}


def test_a_running_torrent_lower_in_the_queue_gives_way() -> None:
    # "c" runs, "a" was just moved to the top: "a" takes the only slot
    entries = [_dl("a"), _dl("b"), _dl("c", running=True)]
    assert select_active(entries, max_downloads=1, max_seeds=1) == {"a"}


def test_slow_running_torrents_free_their_slot() -> None:
    entries = [_dl("a", running=True, slow=True), _dl("b"), _dl("c")]
    assert select_active(entries, max_downloads=1, max_seeds=1) == {"a", "b"}
    # without "do not count slow torrents" the dead one blocks the queue
    assert select_active(entries, max_downloads=1, max_seeds=1, skip_slow=False) == {"a"}


def test_a_queued_torrent_is_never_slow() -> None:
    entries = [_dl("a", running=False, slow=True), _dl("b")]
    assert select_active(entries, max_downloads=1, max_seeds=1) == {"a"}


def test_a_slow_torrent_that_wakes_up_counts_again() -> None:
    running = [_dl("a", running=True), _dl("b", running=True)]
    assert select_active(running, max_downloads=1, max_seeds=1) == {"a"}


@given(
    st.lists(
        st.tuples(st.sampled_from(["download", "seed"]), st.booleans(), st.booleans()),
        max_size=30,
    ),
    st.integers(0, 6),
    st.integers(0, 6),
)
def test_counted_torrents_never_exceed_the_limits(
    specs: list[tuple[str, bool, bool]], max_dl: int, max_seed: int
) -> None:
    entries = [
        QueueEntry(i, "seed" if kind == "seed" else "download", running, slow)
        for i, (kind, running, slow) in enumerate(specs)
    ]
    active = select_active(entries, max_downloads=max_dl, max_seeds=max_seed)
    for kind, limit in (("download", max_dl), ("seed", max_seed)):
        counted = [e for e in entries if e.kind == kind and not (e.running and e.slow)]
        chosen = [e for e in counted if e.key in active]
        if limit:
            assert len(chosen) == min(limit, len(counted))
            assert chosen == counted[: len(chosen)]  # the top of the queue, in order
        else:
            assert len(chosen) == len(counted)
    assert all(e.key in active for e in entries if e.running and e.slow)


def test_queue_order_moves() -> None:
    order = QueueOrder(["a", "b", "c", "d"])
    assert [order.position(k) for k in "abcd"] == [0, 1, 2, 3]
    assert order.move("c", "up")
    assert list(order) == ["a", "c", "b", "d"]
    assert order.move("a", "down")
    assert list(order) == ["c", "a", "b", "d"]
    assert order.move("d", "top")
    assert list(order) == ["d", "c", "a", "b"]
    assert order.move("d", "bottom")
    assert list(order) == ["c", "a", "b", "d"]
    assert not order.move("c", "up")
    assert not order.move("d", "down")
    order.remove("a")
    assert list(order) == ["c", "b", "d"]
    assert order.position("a") == -1
    assert order.add("e") == 3
    assert order.add("c") == 0  # already there: unchanged
    assert order.set_position("e", -5)
    assert list(order) == ["e", "c", "b", "d"]


def test_queue_order_rejects_bad_moves() -> None:
    order = QueueOrder(["a"])
    with pytest.raises(KeyError):
        order.move("zz", "up")
    with pytest.raises(ValueError, match="direction"):
        order.move("a", "sideways")  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["up", "down", "top", "bottom"]), max_size=40), st.integers(0, 9))
def test_moves_keep_every_key_once(moves: list[str], pick: int) -> None:
    keys = list(range(10))
    order = QueueOrder(keys)
    for m in moves:
        order.move(pick, m)  # type: ignore[arg-type]
    assert sorted(order) == keys


def test_slow_tracker_needs_a_full_quiet_minute() -> None:
    slow: SlowTracker[str] = SlowTracker(rate=2048, seconds=60)
    slow.started("a", now=0)
    slow.observe("a", 0, now=30)
    assert not slow.is_slow("a", now=59)
    slow.observe("a", 0, now=60)
    assert slow.is_slow("a", now=60)
    slow.observe("a", 10_000, now=61)  # payload again: not slow, a new minute to wait
    assert not slow.is_slow("a", now=61)
    assert not slow.is_slow("a", now=120)
    assert slow.is_slow("a", now=121)
    slow.stopped("a")
    assert not slow.is_slow("a", now=1000)  # queued: never slow
    assert not slow.is_slow("unknown", now=1000)


def test_share_ratio_like_qbittorrent() -> None:
    assert share_ratio(uploaded=50, downloaded=100, done=100) == 0.5
    # added with its data already there: measured against what it has
    assert share_ratio(uploaded=150, downloaded=0, done=100) == 1.5
    assert share_ratio(uploaded=0, downloaded=0, done=0) == 0.0
    assert share_ratio(uploaded=10, downloaded=0, done=0) == MAX_RATIO
    assert share_ratio(uploaded=10**15, downloaded=1, done=1) == MAX_RATIO


def test_seeding_limits() -> None:
    def reached(ratio: float, seconds: float, r: float, m: int) -> str | None:
        return seeding_limit_reached(ratio, seconds, ratio_limit=r, seed_time_limit_min=m)

    assert reached(5.0, 10**6, 0, 0) is None  # 0 = no limit
    assert reached(0.99, 0, 1.0, 0) is None
    assert reached(1.0, 0, 1.0, 0) == "ratio"
    assert reached(0.1, 59, 1.0, 1) is None
    assert reached(0.1, 60, 1.0, 1) == "seed_time"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "remove", "up", "down", "top", "bottom"]), st.integers(0, 7)
        ),
        max_size=60,
    )
)
def test_positions_match_a_plain_list(ops: list[tuple[str, int]]) -> None:
    order: QueueOrder[int] = QueueOrder()
    model: list[int] = []
    for op, key in ops:
        if op == "add":
            order.add(key)
            if key not in model:
                model.append(key)
        elif op == "remove":
            order.remove(key)
            if key in model:
                model.remove(key)
        elif key in model:
            order.move(key, op)  # type: ignore[arg-type]
            old = model.index(key)
            new = {"up": old - 1, "down": old + 1, "top": 0, "bottom": len(model) - 1}[op]
            model.pop(old)
            model.insert(max(0, min(len(model), new)), key)
        assert list(order) == model
        assert [order.position(k) for k in range(8)] == [
            model.index(k) if k in model else -1 for k in range(8)
        ]
