"""Session metrics in Prometheus form: a collector that reads the engine's state at scrape time.

Nothing is sampled in the background: each scrape reads the live counters (rate meters, peer
tables, the DHT routing table, the disk pool's queue), so an idle exporter costs nothing and
every value is current. A scrape runs on the engine's loop, the only thread allowed to read
that state. Counts that must never go down although the things they count can disappear (hash
failures of a removed torrent, bans that expired) are kept here from the event bus, because a
Prometheus counter that decreases reads as a restart and breaks ``rate()``.

Metric names follow the Prometheus conventions (``_bytes``, ``_total``, base units, a
``ccbt_`` prefix); the list is in ``docs/observability.md``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ccbt_engine import __version__
from ccbt_engine import events as ev
from ccbt_engine.torrent import TorrentState

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = ["TORRENT_STATES", "SessionCollector", "session_registry"]

#: every torrent state (and magnets still fetching metadata), so a state with no torrents
#: reports 0 instead of vanishing from the graphs
TORRENT_STATES: tuple[str, ...] = (*(str(s) for s in TorrentState), "metadata")


class SessionCollector(Collector):
    """Reads one :class:`SessionCore`; :meth:`close` stops counting its events."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core
        self.hash_failures = 0
        self.peers_banned = 0
        self.torrents_finished = 0
        self.torrent_errors = 0
        self._unsubscribe = core.events.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.PieceHashFailed):
            self.hash_failures += 1
        elif isinstance(event, ev.PeerBanned):
            self.peers_banned += 1
        elif isinstance(event, ev.TorrentFinished):
            self.torrents_finished += 1
        elif isinstance(event, ev.TorrentError):
            self.torrent_errors += 1

    def describe(self) -> Iterator[Metric]:
        # no scrape at registration time: describing must not read the engine from another thread
        return iter(())

    def collect(self) -> Iterator[Metric]:
        core = self._core
        now = time.monotonic()
        yield InfoMetricFamily("ccbt_build", "ccbt version.", value={"version": __version__})

        yield _gauge(
            "ccbt_download_rate_bytes", "Payload download rate, bytes/s.", core.down.rate(now)
        )
        yield _gauge("ccbt_upload_rate_bytes", "Payload upload rate, bytes/s.", core.up.rate(now))
        yield _counter("ccbt_downloaded_bytes", "Payload bytes received.", core.down.total)
        yield _counter("ccbt_uploaded_bytes", "Payload bytes sent.", core.up.total)
        down_limit, up_limit = core.alt_speed.effective()
        limits = GaugeMetricFamily(
            "ccbt_rate_limit_bytes",
            "Global rate limit in force, bytes/s (0 = unlimited).",
            labels=["direction"],
        )
        limits.add_metric(["download"], down_limit)
        limits.add_metric(["upload"], up_limit)
        yield limits
        yield _gauge(
            "ccbt_alt_speed_active", "1 while the alternative limits apply.", core.alt_speed.active
        )

        yield _gauge("ccbt_peers_connected", "Connected peers, all torrents.", core.peer_count())
        yield _gauge(
            "ccbt_peers_half_open", "Outgoing connections not yet established.", core.half_open
        )
        yield _gauge(
            "ccbt_banned_peers", "Addresses banned now.", len(core.reputation.banned_peers(now))
        )
        yield _counter("ccbt_peers_banned", "Bans issued since start.", self.peers_banned)

        counts = dict.fromkeys(TORRENT_STATES, 0)
        for torrent in core.torrents.values():
            state = str(torrent.state)
            counts[state] = counts.get(state, 0) + 1
        counts["metadata"] += len(core.magnets)
        by_state = GaugeMetricFamily("ccbt_torrents", "Torrents by state.", labels=["state"])
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        yield _counter(
            "ccbt_torrents_finished", "Torrents that finished downloading.", self.torrents_finished
        )
        yield _counter("ccbt_torrent_errors", "Torrent errors since start.", self.torrent_errors)
        yield _counter(
            "ccbt_hash_failures", "Pieces that failed their hash check.", self.hash_failures
        )
        wasted = sum(t.wasted for t in core.torrents.values())
        yield _gauge(
            "ccbt_wasted_bytes", "Bytes discarded (failed hashes), current torrents.", wasted
        )

        dht = core.dht
        nodes = sum(len(table) for table in dht.tables.values()) if dht is not None else 0
        yield _gauge("ccbt_dht_nodes", "Nodes in the DHT routing tables.", nodes)

        yield _gauge("ccbt_disk_queue_jobs", "Disk/hash jobs waiting for a worker.", _queued(core))
        cached = sum(getattr(t.storage, "_cached_bytes", 0) for t in core.torrents.values())
        yield _gauge("ccbt_disk_write_cache_bytes", "Written blocks not yet on disk.", cached)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _queued(core: SessionCore) -> int:
    """Jobs waiting in the disk/hash pool: ThreadPoolExecutor has no public queue length, so
    read its work queue when it has one (CPython's does) and report 0 otherwise."""
    work = getattr(core.executor, "_work_queue", None)
    size = getattr(work, "qsize", None)
    return int(size()) if callable(size) else 0


def session_registry(collector: SessionCollector) -> CollectorRegistry:
    """A registry holding only this session's metrics (not the process-global default one,
    so two sessions in one process — tests — never collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
