"""Reputation: decaying scores, expiring bans, attribution of hash failures and smart ban."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.security.guard import ActiveBans
from ccbt_engine.security.reputation import (
    MAX_PENDING_PIECES,
    BlockEvidence,
    Reputation,
    ReputationPolicy,
)

T = b"t" * 20
GOOD = b"g" * 20
BAD = b"b" * 20


def blocks(*senders: tuple[str, bytes | None]) -> dict[int, BlockEvidence]:
    return {i: BlockEvidence(host, digest) for i, (host, digest) in enumerate(senders)}


def rep(**kw: object) -> Reputation:
    return Reputation(ReputationPolicy(**kw))  # type: ignore[arg-type]


def test_score_halves_every_half_life() -> None:
    r = rep(half_life=100.0, smart_ban=False)
    r.piece_failed(T, 0, blocks(("1.1.1.1", None)), now=0.0)
    assert r.score("1.1.1.1", 0.0) == pytest.approx(1.0)
    assert r.score("1.1.1.1", 100.0) == pytest.approx(0.5)
    assert r.score("1.1.1.1", 300.0) == pytest.approx(0.125)
    assert r.score("9.9.9.9", 300.0) == 0.0


def test_sole_contributor_banned_at_the_threshold_with_a_reason() -> None:
    r = rep(hash_fail_threshold=3, smart_ban=False)
    assert r.piece_failed(T, 0, blocks(("1.1.1.1", None)), now=0.0) == []
    assert r.piece_failed(T, 1, blocks(("1.1.1.1", None)), now=10.0) == []
    assert not r.is_banned("1.1.1.1", 10.0)
    bans = r.piece_failed(T, 2, blocks(("1.1.1.1", None), ("1.1.1.1", None)), now=20.0)
    assert [b.host for b in bans] == ["1.1.1.1"]
    assert "failing the hash check 3 times" in bans[0].reason
    assert r.is_banned("1.1.1.1", 21.0)
    assert r.hash_fails("1.1.1.1") == 3


def test_failures_spread_over_many_half_lives_never_ban() -> None:
    r = rep(hash_fail_threshold=3, half_life=60.0, smart_ban=False)
    for i in range(20):
        assert r.piece_failed(T, i, blocks(("1.1.1.1", None)), now=i * 600.0) == []


def test_ban_expires_after_ban_duration() -> None:
    r = rep(hash_fail_threshold=1, ban_duration=100.0)
    r.ban("1.1.1.1", "test", now=0.0)
    assert r.is_banned("1.1.1.1", 99.9)
    assert r.banned_peers(50.0)[0].expires_in == pytest.approx(50.0)
    assert not r.is_banned("1.1.1.1", 100.0)
    assert r.bans(100.0) == []


def test_ban_duration_zero_lasts_for_the_session() -> None:
    r = rep(ban_duration=0.0)
    r.ban("1.1.1.1", "test", now=0.0)
    assert r.is_banned("1.1.1.1", 1e9)
    assert r.banned_peers(5.0)[0].expires_in is None


def test_rebanning_extends_but_keeps_the_first_reason() -> None:
    r = rep(ban_duration=100.0)
    r.ban("1.1.1.1", "first", now=0.0)
    ban = r.ban("1.1.1.1", "second", now=50.0)
    assert ban.reason == "first"
    assert ban.until == 150.0


def test_threshold_zero_never_bans_for_bad_data() -> None:
    r = rep(hash_fail_threshold=0)
    for i in range(50):
        assert r.piece_failed(T, i, blocks(("1.1.1.1", BAD)), now=float(i)) == []
    verdict = r.piece_passed(T, 0, {0: GOOD}, now=60.0)
    assert verdict.culprits == {"1.1.1.1": 1}
    assert verdict.bans == ()
    assert not r.is_banned("1.1.1.1", 60.0)


def test_shared_failures_alone_never_ban() -> None:
    r = rep(hash_fail_threshold=3, smart_ban=False)
    for i in range(100):
        assert r.piece_failed(T, i, blocks(("a", None), ("b", None)), now=float(i)) == []
    assert r.score("a", 100.0) <= r.policy.partial_cap + 1e-9


def test_smart_ban_bans_the_liar_and_clears_the_honest_contributor() -> None:
    r = rep(hash_fail_threshold=3)
    failed = blocks(("honest", GOOD), ("liar", BAD), ("honest", GOOD), ("liar", BAD))
    assert r.piece_failed(T, 7, failed, now=0.0) == []
    assert r.score("honest", 0.0) > 0
    assert r.has_pending(T, 7)
    verdict = r.piece_passed(T, 7, dict.fromkeys(range(4), GOOD), now=1.0)
    assert verdict.culprits == {"liar": 2}
    assert verdict.innocents == {"honest": 2}
    assert [b.host for b in verdict.bans] == ["liar"]
    assert verdict.bans[0].reason == (
        "sent 2 corrupt blocks of piece 7, which failed the hash check (smart ban)"
    )
    assert r.is_banned("liar", 1.0)
    assert not r.is_banned("honest", 1.0)
    assert r.score("honest", 1.0) == pytest.approx(0.0, abs=1e-9)
    assert not r.has_pending(T, 7)


def test_smart_ban_judges_every_failed_version_of_a_block() -> None:
    """The piece failed twice with different senders before passing: both versions count."""
    r = rep()
    r.piece_failed(T, 3, blocks(("a", BAD), ("b", GOOD)), now=0.0)
    r.piece_failed(T, 3, blocks(("c", GOOD), ("d", BAD)), now=1.0)
    verdict = r.piece_passed(T, 3, {0: GOOD, 1: GOOD}, now=2.0)
    assert set(verdict.culprits) == {"a", "d"}
    assert set(verdict.innocents) == {"b", "c"}


def test_blocks_without_digest_or_without_good_data_are_not_judged() -> None:
    r = rep()
    r.piece_failed(T, 1, blocks(("a", None), ("b", BAD)), now=0.0)
    verdict = r.piece_passed(T, 1, {0: GOOD}, now=1.0)  # block 1 unknown
    assert verdict.culprits == {}
    assert verdict.innocents == {}
    assert not r.is_banned("b", 1.0)


def test_passing_a_piece_without_a_record_is_a_no_op() -> None:
    r = rep()
    verdict = r.piece_passed(T, 1, {0: GOOD}, now=1.0)
    assert (verdict.culprits, verdict.innocents, verdict.bans) == ({}, {}, ())


def test_smart_ban_off_keeps_no_records() -> None:
    r = rep(smart_ban=False)
    r.piece_failed(T, 1, blocks(("a", BAD), ("b", GOOD)), now=0.0)
    assert not r.has_pending(T, 1)


def test_anomalies_alone_never_ban_but_add_to_bad_data() -> None:
    r = rep(hash_fail_threshold=3, anomaly_weight=0.5)
    for i in range(100):
        assert r.note_anomaly("x", "anomalous request rate", now=float(i)) is None
    assert r.score("x", 100.0) == pytest.approx(r.policy.partial_cap, rel=1e-3)
    # one sole failure plus maxed-out anomalies is still below 2.5
    assert r.piece_failed(T, 0, blocks(("x", None)), now=100.0) == []
    bans = r.piece_failed(T, 1, blocks(("x", None)), now=100.0)
    assert [b.host for b in bans] == ["x"]


def test_unban_forgets_the_score() -> None:
    r = rep()
    r.piece_failed(T, 0, blocks(("x", None)), now=0.0)
    r.ban("x", "manual", now=0.0)
    assert r.unban("x")
    assert not r.is_banned("x", 0.0)
    assert r.score("x", 0.0) == 0.0
    assert not r.unban("x")


def test_prune_forgets_negligible_scores_and_expired_bans() -> None:
    r = rep(half_life=10.0, ban_duration=5.0, smart_ban=False)
    r.piece_failed(T, 0, blocks(("a", None)), now=0.0)
    r.ban("b", "x", now=0.0)
    assert len(r) == 2
    r.prune(now=1000.0)
    assert len(r) == 0


def test_pending_pieces_are_bounded_and_forgotten_with_the_torrent() -> None:
    r = rep()
    for i in range(MAX_PENDING_PIECES + 50):
        r.piece_failed(T, i, blocks(("a", BAD), ("b", GOOD)), now=0.0)
    assert r.pending_pieces(T) == MAX_PENDING_PIECES
    assert not r.has_pending(T, 0)  # the oldest went first
    r.forget_torrent(T)
    assert r.pending_pieces(T) == 0


def test_active_bans_view_follows_the_reputation_and_its_expiry() -> None:
    r = rep(ban_duration=10.0)
    clock = [0.0]
    view = ActiveBans(r, lambda: clock[0])
    r.ban("1.2.3.4", "why", now=0.0)
    assert "1.2.3.4" in view
    assert view["1.2.3.4"] == "why"
    assert list(view) == ["1.2.3.4"]
    assert len(view) == 1
    clock[0] = 10.0
    assert "1.2.3.4" not in view
    assert view.get("1.2.3.4") is None
    assert 42 not in view  # type: ignore[comparison-overlap]
    view["5.6.7.8"] = "set by hand"
    assert r.ban_of("5.6.7.8", 10.0) is not None
    del view["5.6.7.8"]
    assert "5.6.7.8" not in view
    with pytest.raises(KeyError):
        del view["5.6.7.8"]


def test_ban_level_and_caps() -> None:
    assert ReputationPolicy(hash_fail_threshold=3).ban_level == 2.5
    assert ReputationPolicy(hash_fail_threshold=3).partial_cap == 1.25
    assert math.isinf(ReputationPolicy(hash_fail_threshold=0).ban_level)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 15),  # piece
            st.lists(st.sampled_from(["h1", "h2", "h3", "liar"]), min_size=1, max_size=8),
            st.booleans(),  # liar corrupts its blocks of this piece
            st.floats(0.0, 50.0),  # seconds until the event
        ),
        max_size=60,
    )
)
def test_honest_peers_are_never_banned(
    events: list[tuple[int, list[str], bool, float]],
) -> None:
    """Whatever the mix of pieces, an honest host (always sending good data) is never banned.

    A piece fails only if the liar corrupted one of its blocks; honest hosts share the failure.
    """
    r = rep(hash_fail_threshold=2, half_life=600.0)
    now = 0.0
    for piece, senders, corrupt, dt in events:
        now += dt
        sent = blocks(*((h, BAD if h == "liar" and corrupt else GOOD) for h in senders))
        failed = any(e.digest == BAD for e in sent.values())
        if failed:
            r.piece_failed(T, piece, sent, now)
        else:
            r.piece_passed(T, piece, {i: GOOD for i in sent}, now)
        for host in ("h1", "h2", "h3"):
            assert not r.is_banned(host, now)
