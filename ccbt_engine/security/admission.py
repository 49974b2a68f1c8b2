"""Incoming-connection admission: who may open a connection to us, how many, how fast, how long.

Anyone can connect to a listening BitTorrent client, so every incoming connection is untrusted
until it completes the handshake for a torrent we serve. Without limits a single host can open
thousands of sockets, or keep sockets open without ever sending a handshake, and exhaust file
descriptors, memory and the event loop. The policy here bounds that:

* **connections per IP** (``security.max_connections_per_ip``): counted over incoming
  connections that are open, handshaken or not; more are refused before a byte is read;
* **half-open** (``security.max_incoming_half_open``): connections still in the handshake (MSE
  included) at once, from all addresses together;
* **accept rate**: token buckets per IP (``security.incoming_rate_per_ip``) and global
  (``security.incoming_rate``), each allowing a burst of :data:`BURST_SECONDS` of its rate.
  The per-IP checks run first and a connection refused by them does not spend a global token,
  so one flooding address cannot use up the budget of everybody else;
* **handshake timeout** (``network.handshake_timeout``): a connection that has not completed
  the BitTorrent handshake by then is closed with the reason ``"handshake timeout"``.

:class:`AdmissionPolicy` is the sans-I/O core (the caller passes ``now`` and opaque connection
keys); :class:`IncomingGuard` is the thin asyncio hook the session gives its connections.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ccbt_engine import events as ev

if TYPE_CHECKING:
    from ccbt_engine.config.model import Settings
    from ccbt_engine.net.peer import PeerConnection

__all__ = [
    "BURST_SECONDS",
    "HANDSHAKE_TIMEOUT_REASON",
    "SESSION_STOPPED_REASON",
    "AdmissionLimits",
    "AdmissionPolicy",
    "IncomingGuard",
    "normalize_host",
]

#: a bucket holds this many seconds of its rate, so short legitimate bursts (a tracker
#: announce answered by many peers at once) are not refused
BURST_SECONDS = 2.0
#: per-IP buckets that are full again and belong to no connection are forgotten after this many
#: seconds, so a scan from many addresses does not grow the table forever
BUCKET_IDLE = 60.0
#: at most one scan of the per-IP buckets for idle ones in this many seconds
PRUNE_INTERVAL = 1.0
#: seconds added to the handshake timer, so it never fires a hair before the deadline
TIMER_SLACK = 0.01
#: the close reason of a connection that did not finish its handshake in time
HANDSHAKE_TIMEOUT_REASON = "handshake timeout"
#: the close reason of connections still in the handshake when the session stops
SESSION_STOPPED_REASON = "session stopped"

K = TypeVar("K", bound=Hashable)


def normalize_host(host: str) -> str:
    """One spelling per address: ``::ffff:1.2.3.4`` counts as ``1.2.3.4``, IPv6 compressed."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The numbers the policy enforces (see the module docstring); rates are per second."""

    max_per_ip: int = 4
    max_half_open: int = 100
    handshake_timeout: float = 10.0
    rate: float = 50.0
    rate_per_ip: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AdmissionLimits:
        security = settings.security
        return cls(
            max_per_ip=security.max_connections_per_ip,
            max_half_open=security.max_incoming_half_open,
            handshake_timeout=settings.network.handshake_timeout,
            rate=security.incoming_rate,
            rate_per_ip=security.incoming_rate_per_ip,
        )


class _Bucket:
    """Accept tokens: starts full at ``burst``, refills at ``rate`` per second."""

    __slots__ = ("last", "level")

    def __init__(self, burst: float, now: float) -> None:
        self.level = burst
        self.last = now

    def refill(self, rate: float, burst: float, now: float) -> None:
        if now > self.last:
            self.level = min(burst, self.level + (now - self.last) * rate)
        self.last = max(self.last, now)
        self.level = min(self.level, burst)  # the limit may have been lowered since

    def has_token(self, rate: float, now: float) -> bool:
        self.refill(rate, _burst(rate), now)
        return self.level >= 1.0

    def full(self, rate: float, now: float) -> bool:
        self.refill(rate, _burst(rate), now)
        return self.level >= _burst(rate)


def _burst(rate: float) -> float:
    return max(1.0, rate * BURST_SECONDS)


class AdmissionPolicy(Generic[K]):
    """Sans-I/O bookkeeping of incoming connections, keyed by whatever the caller uses.

    Lifecycle of a key: :meth:`admit` (it is counted from then on, as half-open), then
    :meth:`established` once its handshake completed, and :meth:`release` when it closed.
    :meth:`overdue` lists the half-open keys whose handshake time is up.
    """

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self.limits = limits if limits is not None else AdmissionLimits()
        self._hosts: dict[K, str] = {}
        self._by_host: dict[str, set[K]] = {}
        #: half-open keys -> when they were admitted (insertion order = admission order)
        self._pending: dict[K, float] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._global: _Bucket | None = None
        self._pruned_at = float("-inf")
        #: refusals by reason prefix since the start, for the docs/metrics and tests
        self.refused: dict[str, int] = {}

    # -- queries ----------------------------------------------------------------------------
    def connections(self, host: str) -> int:
        return len(self._by_host.get(normalize_host(host), ()))

    @property
    def half_open(self) -> int:
        return len(self._pending)

    @property
    def tracked(self) -> int:
        return len(self._hosts)

    def all_keys(self) -> list[K]:
        return list(self._hosts)

    # -- lifecycle --------------------------------------------------------------------------
    def admit(self, key: K, host: str, now: float) -> str | None:
        """Count ``key`` from ``host`` in and return None, or return why it is refused."""
        lim = self.limits
        host = normalize_host(host)
        if key in self._hosts:
            return None
        if len(self._by_host.get(host, ())) >= lim.max_per_ip:
            return self._refuse("too many connections from this address", lim.max_per_ip)
        bucket = self._buckets.get(host)
        if bucket is None:
            bucket = self._buckets[host] = _Bucket(_burst(lim.rate_per_ip), now)
        if not bucket.has_token(lim.rate_per_ip, now):
            return self._refuse("connection rate from this address over", lim.rate_per_ip, "/s")
        if len(self._pending) >= lim.max_half_open:
            return self._refuse("too many connections in the handshake", lim.max_half_open)
        if self._global is None:
            self._global = _Bucket(_burst(lim.rate), now)
        if not self._global.has_token(lim.rate, now):
            return self._refuse("incoming connection rate over", lim.rate, "/s")
        bucket.level -= 1.0
        self._global.level -= 1.0
        self._hosts[key] = host
        self._by_host.setdefault(host, set()).add(key)
        self._pending[key] = now
        return None

    def established(self, key: K) -> None:
        """``key`` completed its handshake: it no longer counts as half-open."""
        self._pending.pop(key, None)

    def release(self, key: K) -> None:
        """``key`` closed: forget it (unknown keys are ignored)."""
        self._pending.pop(key, None)
        host = self._hosts.pop(key, None)
        if host is None:
            return
        keys = self._by_host.get(host)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_host[host]

    def overdue(self, now: float) -> list[K]:
        """Half-open keys admitted at least ``handshake_timeout`` seconds before ``now``."""
        deadline = now - self.limits.handshake_timeout
        return [key for key, since in self._pending.items() if since <= deadline]

    def next_deadline(self) -> float | None:
        """When the oldest half-open key times out, or None when nothing is pending."""
        for since in self._pending.values():  # oldest first
            return since + self.limits.handshake_timeout
        return None

    def prune(self, now: float) -> None:
        """Forget per-IP buckets that refilled and have no connection (bounded memory).

        Runs at most once per :data:`PRUNE_INTERVAL`, however often it is called (every accept).
        """
        if now - self._pruned_at < PRUNE_INTERVAL:
            return
        self._pruned_at = now
        rate = self.limits.rate_per_ip
        stale = [
            host
            for host, bucket in self._buckets.items()
            if host not in self._by_host
            and now - bucket.last >= BUCKET_IDLE
            and bucket.full(rate, now)
        ]
        for host in stale:
            del self._buckets[host]

    def _refuse(self, what: str, limit: float, unit: str = "") -> str:
        self.refused[what] = self.refused.get(what, 0) + 1
        return f"{what} (limit {limit:g}{unit})"


class IncomingGuard:
    """The session's hook: applies an :class:`AdmissionPolicy` to real incoming connections.

    Give :meth:`admit` to each incoming :class:`PeerConnection` as its ``admit`` callback (it is
    called from ``connection_made``, before any byte is read). The guard watches the
    connection's ``handshake_done`` future, closes it when the handshake is overdue, and
    publishes a :class:`~ccbt_engine.events.PeerDisconnected` (``info_hash`` None: no torrent
    is known yet) for every refusal and timeout, so the reason is visible.
    """

    def __init__(
        self,
        settings: Callable[[], Settings],
        publish: Callable[[ev.Event], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._publish = publish
        self._clock = clock
        self.policy: AdmissionPolicy[PeerConnection] = AdmissionPolicy()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._seen: object = None

    def admit(self, conn: PeerConnection) -> str | None:
        """Count ``conn`` (its ``address`` is set) in, or return why it must be closed."""
        now = self._clock()
        self._refresh_limits()
        self.sweep(now)
        host = conn.address[0]
        refusal = self.policy.admit(conn, host, now)
        if refusal is not None:
            self._publish(ev.PeerDisconnected(address=conn.address_text, reason=refusal))
            return refusal
        conn.handshake_done.add_done_callback(lambda _f: self._handshake_over(conn))
        self._arm(asyncio.get_running_loop())
        return None

    def sweep(self, now: float | None = None) -> None:
        """Release closed connections and close the ones whose handshake is overdue."""
        now = self._clock() if now is None else now
        for conn in self.policy.all_keys():
            if conn.closed:
                self.policy.release(conn)
        for conn in self.policy.overdue(now):
            self.policy.release(conn)
            if not conn.closed:
                conn.close(HANDSHAKE_TIMEOUT_REASON)
                self._publish(
                    ev.PeerDisconnected(address=conn.address_text, reason=HANDSHAKE_TIMEOUT_REASON)
                )
        self.policy.prune(now)

    def close(self) -> None:
        """The session stopped: stop the timer and close what is still in the handshake.

        (Handshaken connections belong to torrents, which close their own; nobody else would
        close a half-open one, and the listening socket's closing leaves it open.)
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in self.policy.overdue(float("inf")):
            self.policy.release(conn)
            conn.close(SESSION_STOPPED_REASON)

    # -- internals --------------------------------------------------------------------------
    def _refresh_limits(self) -> None:
        settings = self._settings()
        if settings is not self._seen:  # settings are replaced, never mutated, when they change
            self._seen = settings
            self.policy.limits = AdmissionLimits.from_settings(settings)

    def _handshake_over(self, conn: PeerConnection) -> None:
        # the future fails when the connection closed first, and succeeds on a handshake
        if conn.closed or conn.handshake_done.cancelled() or conn.handshake_done.exception():
            self.policy.release(conn)
        else:
            self.policy.established(conn)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer, for the earliest handshake deadline."""
        due = self.policy.next_deadline()
        if due is None:
            return
        if self._timer is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        delay = max(0.0, due - self._clock()) + TIMER_SLACK
        self._timer = loop.call_at(loop.time() + delay, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._refresh_limits()
        self.sweep()
        self._arm(loop)
