"""Anomaly detection against synthetic adversarial populations (fixed seeds: reproducible)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine import events as ev
from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from ccbt_engine.security.anomaly import (
    SPECS,
    AnomalyDetector,
    AnomalyPolicy,
    Feature,
    robust_z,
)
from tests.engine_settings import loopback_settings

POLICY = AnomalyPolicy()


def _hosts(n: int) -> list[str]:
    return [f"10.0.0.{i}" for i in range(1, n + 1)]


def _run_requests(
    det: AnomalyDetector, rates: dict[str, float], seconds: int, start: float = 0.0
) -> list[list[str]]:
    """Feed Poisson-ish request counts each second; returns the hosts flagged per evaluation."""
    rng = random.Random(7)
    flagged: list[list[str]] = []
    for s in range(seconds):
        for host, rate in rates.items():
            # natural jitter: +-30 % per second around the host's own rate
            for _ in range(int(rate * rng.uniform(0.7, 1.3))):
                det.on_request(host)
        found = det.evaluate(start + s + 1)
        if found:
            flagged.append(sorted({a.host for a in found if a.feature is Feature.REQUEST_RATE}))
    return flagged


def _connected(hosts: list[str], policy: AnomalyPolicy = POLICY) -> AnomalyDetector:
    det = AnomalyDetector(policy)
    for h in hosts:
        det.on_connect(h, 0.0)
    det.evaluate(0.0, force=True)
    return det


def test_one_request_flooder_among_twenty_normal_peers_is_flagged() -> None:
    hosts = _hosts(21)
    rng = random.Random(1)
    rates = {h: rng.lognormvariate(4.6, 0.5) for h in hosts[:20]}  # around 100 requests/s
    rates[hosts[20]] = 5000.0
    det = _connected(hosts)
    flagged = _run_requests(det, rates, 40)
    assert flagged, "the flooder was never flagged"
    assert all(f == [hosts[20]] for f in flagged), flagged


def test_flooder_becomes_extreme_and_repeated() -> None:
    hosts = _hosts(21)
    rates = dict.fromkeys(hosts[:20], 100.0)
    rates[hosts[20]] = 20000.0
    det = _connected(hosts)
    _run_requests(det, rates, 40)
    found = [a for a in det.evaluate(41.0, force=True) if a.host == hosts[20]]
    assert found and found[0].extreme and found[0].repeated
    assert "request rate" in found[0].describe()


def test_twenty_normal_peers_with_natural_variance_are_not_flagged() -> None:
    for seed in range(5):
        hosts = _hosts(20)
        rng = random.Random(seed)
        rates = {h: rng.lognormvariate(4.6, 0.6) for h in hosts}
        det = _connected(hosts)
        assert _run_requests(det, rates, 40) == [], f"seed {seed}"


def test_slow_populations_are_never_floods() -> None:
    """Below the feature's minimum (50 requests/s) nothing is anomalous, whatever the z."""
    hosts = _hosts(20)
    rates = dict.fromkeys(hosts[:19], 0.5)
    rates[hosts[19]] = 40.0
    det = _connected(hosts)
    assert _run_requests(det, rates, 30) == []


def test_too_small_a_population_gives_no_verdict() -> None:
    hosts = _hosts(4)
    rates = dict.fromkeys(hosts[:3], 100.0)
    rates[hosts[3]] = 20000.0
    det = _connected(hosts)
    assert _run_requests(det, rates, 30) == []


def test_detection_off_with_zero_threshold() -> None:
    hosts = _hosts(21)
    rates = dict.fromkeys(hosts[:20], 100.0)
    rates[hosts[20]] = 20000.0
    det = _connected(hosts, AnomalyPolicy(z_threshold=0.0))
    assert _run_requests(det, rates, 30) == []


def test_reconnect_churn_is_flagged() -> None:
    hosts = _hosts(20)
    det = _connected(hosts)
    churner = "10.9.9.9"
    for i in range(15):
        det.on_connect(churner, float(i))
        det.on_disconnect(churner, float(i) + 0.5)
    found = det.evaluate(20.0, force=True)
    assert [(a.host, a.feature) for a in found] == [(churner, Feature.CHURN)]


def test_protocol_violations_are_flagged() -> None:
    hosts = _hosts(20)
    det = _connected(hosts)
    bad = hosts[0]
    for i in range(4):
        det.on_disconnect(bad, float(i), violation=True)
        det.on_connect(bad, float(i) + 0.1)
    found = [a for a in det.evaluate(10.0, force=True) if a.feature is Feature.VIOLATIONS]
    assert [a.host for a in found] == [bad]


def test_single_protocol_error_is_not_an_anomaly() -> None:
    hosts = _hosts(20)
    det = _connected(hosts)
    det.on_disconnect(hosts[0], 1.0, violation=True)
    assert det.evaluate(10.0, force=True) == []


def test_bad_hash_ratio_flags_the_liar_and_forgiveness_clears_an_innocent() -> None:
    hosts = _hosts(20)
    det = _connected(hosts)
    for h in hosts:
        det.on_blocks(h, 64, 0, 1.0)
    liar, unlucky = hosts[0], hosts[1]
    det.on_blocks(liar, 0, 96, 2.0)
    det.on_blocks(unlucky, 0, 48, 2.0)
    found = {a.host for a in det.evaluate(3.0, force=True) if a.feature is Feature.BAD_HASH_RATIO}
    assert found == {liar, unlucky}
    det.forgive(unlucky, 48, 4.0)  # smart ban proved its blocks good
    found = {a.host for a in det.evaluate(5.0, force=True) if a.feature is Feature.BAD_HASH_RATIO}
    assert found == {liar}


def test_streak_resets_when_a_host_calms_down() -> None:
    hosts = _hosts(21)
    rates = dict.fromkeys(hosts[:20], 100.0)
    rates[hosts[20]] = 20000.0
    det = _connected(hosts)
    _run_requests(det, rates, 30)
    rates[hosts[20]] = 100.0
    _run_requests(det, rates, 120, start=30.0)
    assert not any(a.host == hosts[20] for a in det.evaluate(300.0, force=True))


def test_gone_hosts_are_forgotten_when_their_counts_decay() -> None:
    det = AnomalyDetector(AnomalyPolicy(event_tau=10.0))
    det.on_connect("a", 0.0)
    det.on_disconnect("a", 1.0, violation=True)
    det.evaluate(2.0, force=True)
    assert len(det) == 1
    det.evaluate(1000.0, force=True)
    assert len(det) == 0


def test_features_are_reported_per_host() -> None:
    det = _connected(["a"])
    det.on_blocks("a", 3, 1, 1.0)
    values = det.features(1.0)["a"]
    assert values[Feature.BAD_HASH_RATIO] == 1 / (4 + 16)
    assert values[Feature.CHURN] > 0.99
    assert Feature.REQUEST_RATE not in values  # not requesting: not in that population


def test_evaluation_is_rate_limited() -> None:
    hosts = _hosts(21)
    det = _connected(hosts)
    for h in hosts:
        det.on_connect(h, 1.0)
    assert det.evaluate(1.0) == []  # 1 s after the last evaluation: not due, nothing scored


@settings(max_examples=300, deadline=None)
@given(
    feature=st.sampled_from(list(Feature)),
    base=st.floats(0.0, 1e4, allow_nan=False),
    spread=st.lists(st.floats(0.0, 1.0), min_size=POLICY.min_population, max_size=80),
)
def test_uniform_populations_are_never_flagged(
    feature: Feature, base: float, spread: list[float]
) -> None:
    """Values within a factor 3 (rates) or within two MAD floors (counts, ratios): z < 4."""
    spec = SPECS[feature]
    if spec.log_scale:
        values = [base * (1 + 2 * s) for s in spread]
    else:
        values = [base + 2 * spec.mad_floor * s for s in spread]
    for v in values:
        assert robust_z(v, values, spec) < POLICY.z_threshold


@settings(max_examples=100, deadline=None)
@given(
    base=st.floats(60.0, 5000.0),
    spread=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=30),
)
def test_uniform_request_rates_raise_no_anomaly(base: float, spread: list[float]) -> None:
    """End to end through the detector: steady rates within a factor 3 are never flagged."""
    hosts = _hosts(len(spread))
    det = _connected(hosts)
    for step in range(1, 13):
        for h, s in zip(hosts, spread, strict=True):
            for _ in range(int(base * (1 + 2 * s))):
                det.on_request(h)
        assert det.evaluate(float(step), force=True) == []


async def test_torrent_guard_bans_a_repeated_extreme_flooder_session_wide(tmp_path: Path) -> None:
    """The glue: anomalies from a torrent's detector reach the session's reputation and events."""
    (tmp_path / "f.bin").write_bytes(os.urandom(50_000))
    torrent = create_torrent(tmp_path / "f.bin", version="v1")
    events: list[ev.Event] = []
    async with Session(loopback_settings(), listen_port=0) as session:
        session.subscribe(events.append)
        handle = await session.add_torrent(torrent, tmp_path / "dl")
        t = session._core.torrents[bytes.fromhex(handle.info_hash)]
        hosts = _hosts(21)
        flooder = hosts[20]
        start = time.monotonic()
        for h in hosts:
            t.guard.on_connected(h, start)
        t.guard.anomaly.evaluate(start, force=True)
        for step in range(1, 41):
            for h in hosts:
                for _ in range(20000 if h == flooder else 100):
                    t.guard.on_request(h)
            t.guard.tick(start + step)
        assert flooder in t.banned
        assert t.banned[flooder].startswith("repeatedly anomalous request rate")
        assert not any(h in t.banned for h in hosts[:20])
        bans = [e for e in events if isinstance(e, ev.PeerBanned)]
        assert [e.address for e in bans] == [flooder]
        assert [b.address for b in session.banned_peers()] == [flooder]
        assert session.unban_peer(flooder)
        assert flooder not in t.banned
        t.guard.on_closed(hosts[0], "request flood: more than 500 requests refused", start + 41)
        t.guard.on_closed(hosts[1], "idle timeout", start + 41)
        features = t.guard.anomaly.features(start + 41)
        assert features[hosts[0]][Feature.VIOLATIONS] > 0.9
        assert features[hosts[1]][Feature.VIOLATIONS] == 0.0
