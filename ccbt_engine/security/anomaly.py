"""Statistical anomaly detection over one torrent's peers (per IP address).

Pure logic: the caller reports events and calls :meth:`AnomalyDetector.evaluate` with ``now``.

**Features** (per host, smoothed so one burst is not a verdict):

* ``request rate`` — REQUESTs per second the host sends us, an EWMA with time constant
  ``request_tau``: ``r ← r + (1 - e^(-Δt/τ)) (count/Δt - r)`` at each evaluation;
* ``bad-hash ratio`` — blocks it sent that were in failed pieces over all its blocks that were
  hashed, each a decaying count (time constant ``event_tau``), with a prior of
  ``BAD_HASH_PRIOR`` good blocks so a single early failure does not read as 100 %;
* ``protocol violations`` — connections that ended in a protocol error or a request flood, a
  decaying count;
* ``reconnect churn`` — connections the host made or accepted, a decaying count (a healthy peer
  connects once; one that cycles connections is probing or flooding).

Decaying counts follow ``c(t) = c(t0) e^(-(t - t0)/τ) + 1`` per event, so ``c`` approximates
"events in the last τ seconds".

**Score.** Each feature is compared with the torrent's population by a robust (modified)
z-score (Iglewicz and Hoaglin): ``z = 0.6745 (f(x) - median f) / max(MAD, floor)``, where ``f``
is ``log1p`` for rates (peers' rates are spread multiplicatively: a 10 MB/s leecher and a
100 kB/s one are both normal) and the identity for ratios and counts. Median and MAD are not
dragged by the outliers we look for, unlike mean and standard deviation. The MAD floor keeps a
population of identical peers (MAD 0) from turning a tiny difference into a huge z, and a
minimum raw value per feature keeps harmless values (2 requests/s) from ever being anomalous.

A host is **anomalous** for a feature when ``z >= z_threshold`` and its value reaches the
feature's minimum; **extreme** when also ``z >= extreme_factor * z_threshold``; an extreme
anomaly seen in ``repeat`` evaluations in a row is flagged ``repeated`` (the caller may ban).
Fewer than ``min_population`` hosts with the feature: no z-score at all (nothing to compare with).
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

#: the constant that makes the MAD consistent with the standard deviation of a normal law
MAD_TO_Z = 0.6745
#: good blocks assumed for every host before any evidence (Bayesian prior of the ratio)
BAD_HASH_PRIOR = 16.0
#: a host's state is dropped when it is gone and its counts decayed below this
FORGET_BELOW = 0.05


class Feature(enum.StrEnum):
    REQUEST_RATE = "request rate"
    BAD_HASH_RATIO = "bad-hash ratio"
    VIOLATIONS = "protocol violations"
    CHURN = "reconnect churn"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How one feature is compared: transform, MAD floor (transformed units), minimum value."""

    log_scale: bool
    mad_floor: float
    min_value: float
    unit: str


#: floors and minimums: see docs/security.md, "Reputation and anomaly detection"
SPECS: dict[Feature, FeatureSpec] = {
    # log scale: floor 0.35 means a host must exceed ~e^(z*0.35/0.6745) x the median
    # (7.9x at z = 4) before the MAD floor lets it count; 50 requests/s is below any flood
    Feature.REQUEST_RATE: FeatureSpec(True, 0.35, 50.0, "requests/s"),
    Feature.BAD_HASH_RATIO: FeatureSpec(False, 0.05, 0.2, ""),
    Feature.VIOLATIONS: FeatureSpec(False, 0.5, 2.0, "errors"),
    Feature.CHURN: FeatureSpec(False, 1.0, 5.0, "connections"),
}


@dataclass(frozen=True, slots=True)
class AnomalyPolicy:
    """Thresholds; ``z_threshold`` comes from ``security.anomaly_z_threshold`` (0 = off)."""

    z_threshold: float = 4.0
    extreme_factor: float = 2.0
    repeat: int = 3
    min_population: int = 5
    #: seconds between evaluations
    interval: float = 5.0
    #: time constant of the request-rate EWMA
    request_tau: float = 10.0
    #: time constant of the decaying counts (hash results, violations, churn)
    event_tau: float = 300.0


@dataclass(frozen=True, slots=True)
class Anomaly:
    host: str
    feature: Feature
    value: float
    z: float
    extreme: bool
    #: extreme in ``repeat`` evaluations in a row
    repeated: bool

    def describe(self) -> str:
        unit = SPECS[self.feature].unit
        amount = f"{self.value:.3g}" + (f" {unit}" if unit else "")
        return f"anomalous {self.feature} {amount} (z = {self.z:.1f})"


@dataclass(slots=True)
class _Decaying:
    value: float = 0.0
    at: float = 0.0

    def get(self, now: float, tau: float) -> float:
        if now > self.at:
            self.value *= math.exp(-(now - self.at) / tau)
            self.at = now
        return self.value

    def add(self, amount: float, now: float, tau: float) -> None:
        self.value = self.get(now, tau) + amount
        self.at = max(self.at, now)


@dataclass(slots=True)
class _Host:
    connections: int = 0
    requests: int = 0  # since the last evaluation
    request_rate: float = 0.0
    bad: _Decaying = field(default_factory=_Decaying)
    hashed: _Decaying = field(default_factory=_Decaying)
    violations: _Decaying = field(default_factory=_Decaying)
    churn: _Decaying = field(default_factory=_Decaying)
    streak: dict[Feature, int] = field(default_factory=dict)


def robust_z(value: float, population: Iterable[float], spec: FeatureSpec) -> float:
    """Modified z-score of ``value`` against ``population`` (which should include it)."""
    f = math.log1p if spec.log_scale else float
    xs = [f(max(v, 0.0)) for v in population]
    med = statistics.median(xs)
    mad = statistics.median(abs(x - med) for x in xs)
    return MAD_TO_Z * (f(max(value, 0.0)) - med) / max(mad, spec.mad_floor)


class AnomalyDetector:
    """Per-host features for one torrent, scored against the torrent's other hosts."""

    def __init__(self, policy: AnomalyPolicy | None = None) -> None:
        self.policy = policy if policy is not None else AnomalyPolicy()
        self._hosts: dict[str, _Host] = {}
        self._last_eval: float | None = None

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host()
        return state

    # -- events ----------------------------------------------------------------------------
    def on_request(self, host: str) -> None:
        """A REQUEST arrived (hot path: one dict lookup and an increment)."""
        state = self._hosts.get(host)
        if state is not None:
            state.requests += 1

    def on_connect(self, host: str, now: float) -> None:
        state = self._host(host)
        state.connections += 1
        state.churn.add(1.0, now, self.policy.event_tau)

    def on_disconnect(self, host: str, now: float, *, violation: bool = False) -> None:
        state = self._hosts.get(host)
        if state is None:
            return
        state.connections = max(0, state.connections - 1)
        if violation:
            state.violations.add(1.0, now, self.policy.event_tau)

    def on_blocks(self, host: str, good: int, bad: int, now: float) -> None:
        """Blocks from ``host`` in a piece that passed (good) or failed (bad) its hash check."""
        state = self._host(host)
        tau = self.policy.event_tau
        state.hashed.add(float(good + bad), now, tau)
        if bad:
            state.bad.add(float(bad), now, tau)

    def forgive(self, host: str, blocks: int, now: float) -> None:
        """Smart ban cleared ``blocks`` of the host's bad blocks: they were good after all."""
        state = self._hosts.get(host)
        if state is not None:
            tau = self.policy.event_tau
            state.bad.value = max(0.0, state.bad.get(now, tau) - blocks)

    # -- features ----------------------------------------------------------------------------
    def _value(self, state: _Host, feature: Feature, now: float) -> float | None:
        """The feature's value, or None when the host is not part of that population."""
        tau = self.policy.event_tau
        if feature is Feature.REQUEST_RATE:
            # only hosts that download from us: seeds (rate 0) would make any leecher an outlier
            return state.request_rate if state.connections and state.request_rate > 0.1 else None
        if feature is Feature.BAD_HASH_RATIO:
            hashed = state.hashed.get(now, tau)
            if hashed < 1.0:
                return None
            return state.bad.get(now, tau) / (hashed + BAD_HASH_PRIOR)
        if feature is Feature.VIOLATIONS:
            return state.violations.get(now, tau)
        return state.churn.get(now, tau)

    def features(self, now: float) -> dict[str, dict[Feature, float]]:
        """Every host's current feature values (for inspection, logs and tests)."""
        return {
            host: {f: v for f in Feature if (v := self._value(state, f, now)) is not None}
            for host, state in self._hosts.items()
        }

    def _fold_requests(self, now: float) -> None:
        last = self._last_eval
        dt = now - last if last is not None else 0.0
        alpha = 1.0 - math.exp(-dt / self.policy.request_tau) if dt > 0 else 0.0
        for state in self._hosts.values():
            if dt > 0:
                rate = state.requests / dt
                state.request_rate += alpha * (rate - state.request_rate)
            state.requests = 0

    def evaluate(self, now: float, *, force: bool = False) -> list[Anomaly]:
        """Score every host if ``interval`` has passed since the last evaluation (or ``force``).

        Returns the anomalies found, worst first; ``[]`` when not due or detection is off.
        """
        policy = self.policy
        if not force and self._last_eval is not None and now - self._last_eval < policy.interval:
            return []
        self._fold_requests(now)
        self._last_eval = now
        self._forget_gone(now)
        if policy.z_threshold <= 0:
            return []
        found: list[Anomaly] = []
        flagged_extreme: set[tuple[str, Feature]] = set()
        for feature, spec in SPECS.items():
            values = {
                host: v
                for host, state in self._hosts.items()
                if (v := self._value(state, feature, now)) is not None
            }
            if len(values) < policy.min_population:
                continue
            population = list(values.values())
            for host, value in values.items():
                if value < spec.min_value:
                    continue
                z = robust_z(value, population, spec)
                if z < policy.z_threshold:
                    continue
                extreme = z >= policy.z_threshold * policy.extreme_factor
                streak = 0
                if extreme:
                    flagged_extreme.add((host, feature))
                    streak = self._hosts[host].streak.get(feature, 0) + 1
                    self._hosts[host].streak[feature] = streak
                found.append(Anomaly(host, feature, value, z, extreme, streak >= policy.repeat))
        for host, state in self._hosts.items():
            for feature in [f for f in state.streak if (host, f) not in flagged_extreme]:
                del state.streak[feature]
        found.sort(key=lambda a: -a.z)
        return found

    def _forget_gone(self, now: float) -> None:
        tau = self.policy.event_tau
        for host in list(self._hosts):
            state = self._hosts[host]
            if state.connections:
                continue
            counts = (state.churn, state.violations, state.bad, state.hashed)
            if all(c.get(now, tau) < FORGET_BELOW for c in counts):
                del self._hosts[host]

    def __len__(self) -> int:
        return len(self._hosts)
