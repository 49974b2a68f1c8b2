"""The session: owns torrents, listening sockets, global limits, the disk/hash thread pool.

Internal: the GUI, CLI and daemon use :mod:`ccbt_engine.api`, which wraps this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import string
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from ccbt_engine import CLIENT_NAME, __version__
from ccbt_engine import events as ev
from ccbt_engine.config import Settings
from ccbt_engine.dht.node import DHTNode
from ccbt_engine.dht.service import DHT_KEYS, apply_dht_settings, start_session_dht
from ccbt_engine.gctune import tune_for_engine
from ccbt_engine.metainfo import Metainfo, TorrentInfo
from ccbt_engine.net.encrypted import skey_finder
from ccbt_engine.net.lsd import SessionLsd
from ccbt_engine.net.peer import PeerConnection, PeerHandler
from ccbt_engine.net.proxy_dial import (
    PROXY_KEYS,
    apply_proxy_settings,
    open_tracker_session,
    udp_block_reason,
)
from ccbt_engine.net.utp_socket import UTPListener, start_session_utp
from ccbt_engine.observability.exporter import MetricsService
from ccbt_engine.portmap.session_hook import (
    PORTMAP_KEYS,
    apply_portmap_settings,
    start_session_portmap,
    stop_session_portmap,
)
from ccbt_engine.queue_service import QUEUE_KEYS, SessionQueue
from ccbt_engine.security.admission import IncomingGuard
from ccbt_engine.security.ipfilter import IPFilter, IPFilterError, load_filter_async
from ccbt_engine.security.reputation import Reputation
from ccbt_engine.stats import RateMeter
from ccbt_engine.storage.readcache import ReadCachePool
from ccbt_engine.strategy.altspeed import SessionAltSpeed
from ccbt_engine.strategy.ratelimit import RateLimiter, TokenBucket
from ccbt_engine.torrent import AddOptions, Torrent, TorrentState
from ccbt_engine.tracker.http_tls import set_tls_policy

if TYPE_CHECKING:
    from ccbt_engine.magnet_fetch import MagnetTorrent
    from ccbt_engine.portmap import PortMapOptions, PortMapService
    from ccbt_engine.state import SessionPersistence

log = logging.getLogger(__name__)

#: settings whose change can leave no way to reach a peer (NetworkSettings.no_transport_reason)
_TRANSPORT_KEYS = frozenset({"network.enable_tcp", "network.enable_utp", "network.proxy_type"})

#: Azureus-style peer id prefix: CC = ccBitTorrent, then the version digits
PEER_ID_PREFIX = b"-CC" + __version__.replace(".", "").ljust(4, "0")[:4].encode() + b"-"


def make_peer_id() -> bytes:
    alphabet = string.ascii_letters + string.digits
    tail = "".join(secrets.choice(alphabet) for _ in range(20 - len(PEER_ID_PREFIX)))
    return PEER_ID_PREFIX + tail.encode()


class SessionError(RuntimeError):
    """A command the session cannot carry out (duplicate torrent, unknown torrent …)."""


class SessionCore:
    """Everything that runs: torrents, listeners, limits; ``await start()``, ``await stop()``."""

    def __init__(self, settings: Settings | None = None, *, listen_port: int | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._port_override = listen_port
        self.peer_id = make_peer_id()
        self.client_name = f"{CLIENT_NAME} {__version__}"
        workers = max(2, self.settings.disk.hash_threads + 1)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ccbt-disk")
        #: upload read cache shared by every torrent (disk.read_cache_mb, resized live)
        self.read_cache = ReadCachePool(self.settings.disk.read_cache_mb * 1024 * 1024)
        self.events = ev.EventBus()
        self.torrents: dict[bytes, Torrent] = {}
        #: wire infohash -> torrent, including a hybrid torrent's truncated v2 hash
        self._by_wire_hash: dict[bytes, Torrent] = {}
        #: magnets still fetching their metadata (they become torrents afterwards)
        self.magnets: dict[bytes, MagnetTorrent] = {}
        self.down = RateMeter()
        self.up = RateMeter()
        limits = self.settings.limits
        self.down_bucket = TokenBucket(limits.global_down_kib * 1024)
        self.up_bucket = TokenBucket(limits.global_up_kib * 1024)
        self.limiter = RateLimiter()
        #: normal vs alternative global limits (manual switch and schedule); sets the buckets
        self.alt_speed = SessionAltSpeed(self)
        self.half_open = 0
        #: incoming connections: per-IP count, accept rate, half-open and handshake timeout
        self.admission = IncomingGuard(lambda: self.settings, self.events.publish)
        #: an incoming TCP or uTP connection was accepted: the port is reachable from outside
        self.incoming_seen = False
        self.listen_port = 0
        self._servers: list[asyncio.Server] = []
        self.utp: UTPListener | None = None  # uTP on the listen port (network.enable_utp)
        self.started = False
        #: one HTTP client for every tracker (connection pooling, one place for the user agent)
        self.http: aiohttp.ClientSession | None = None
        self.ip_filter: IPFilter | None = None
        #: peer scores and bans by IP, shared by every torrent (security/reputation.py)
        self.reputation = Reputation()
        #: our address as peers see it (their BEP 10 ``yourip``), for BEP 40 peer priority
        self.external_ip: str | None = None
        self.dht: DHTNode | None = None  # started with the session when network.enable_dht
        self.lsd: SessionLsd | None = None  # BEP 14, when network.enable_lsd
        #: UPnP/NAT-PMP for the listen port (portmap/session_hook.py); options: where to ask
        self.portmap: PortMapService | None = None
        self.portmap_options: PortMapOptions | None = None
        #: resume data and session.json (ccbt_engine.state); set by the facade when persisting
        self.persistence: SessionPersistence | None = None
        #: queue order and slots, seeding limits, moving finished downloads (queue_service.py)
        self.queue = SessionQueue(self)
        #: Prometheus endpoint (observability.enable_metrics); counts events from now on
        self.metrics = MetricsService(self)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            return
        await self.start_listening()
        net = self.settings.network
        if net.enable_dht:
            self.dht = await start_session_dht(self)
        if net.enable_lsd and udp_block_reason(net) is None:  # proxy_force: nothing direct
            lsd = SessionLsd(self)
            self.lsd = lsd if await lsd.start() else None
        await self.load_ip_filter()
        self.alt_speed.start()
        self.http = await open_tracker_session(self)  # through network.proxy_* when set
        set_tls_policy(self.http, self._verify_tls)  # security.verify_tls, read per request
        await start_session_portmap(self)  # network.enable_upnp / enable_natpmp, in background
        self.started = True
        await self.metrics.start()  # serves only when observability.enable_metrics
        log.info("listening for peers on port %d", self.listen_port)
        self._warn_if_no_transport()
        self.queue.start()
        if self.persistence is not None:
            await self.persistence.start()  # restores the saved torrents
        tune_for_engine()  # once per process: freeze start-up objects for the GC (gctune.py)

    async def start_listening(self) -> None:
        """Open the peer listeners on every configured interface (one port for all)."""
        net = self.settings.network
        port = net.listen_port if self._port_override is None else self._port_override
        loop = asyncio.get_running_loop()
        hosts = [h for h in net.listen_interfaces if net.enable_ipv6 or ":" not in h]
        errors = []
        for host in hosts:
            try:
                server = await loop.create_server(self._incoming, host, port, reuse_address=True)
            except OSError as exc:
                errors.append(f"{host}:{port}: {exc.strerror or exc}")
                continue
            self._servers.append(server)
            if port == 0:  # the other families share the port the first one got
                port = server.sockets[0].getsockname()[1]
        if not self._servers:
            raise SessionError("cannot listen for peers: " + "; ".join(errors))
        for msg in errors:
            log.warning("not listening on %s", msg)
        self.listen_port = port
        self.utp = await start_session_utp(self)

    async def stop(self) -> None:
        """Close every torrent (flushing data) and the listeners."""
        await self.metrics.stop()
        await self.alt_speed.close()
        await self.queue.close()  # moves in progress roll back before the torrents close
        for magnet in list(self.magnets.values()):
            await magnet.close()
        for torrent in list(self.torrents.values()):
            await torrent.close()
        if self.persistence is not None:
            await self.persistence.close()  # final checkpoints, after the torrents stopped
        if self.dht is not None:
            await self.dht.stop()  # saves the routing table
            self.dht = None
        if self.lsd is not None:
            await self.lsd.close()
            self.lsd = None
        await stop_session_portmap(self)  # deletes the router's mappings
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        if self.utp is not None:
            self.utp.close()
            self.utp = None
        self.admission.close()
        if self.http is not None:
            await self.http.close()
            self.http = None
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.started = False

    # -- connections ----------------------------------------------------------------------
    def _incoming(self) -> PeerConnection:
        self.incoming_seen = True
        conn = PeerConnection(
            peer_id=self.peer_id,
            lookup=self.lookup_torrent,
            admit=lambda host: self._admit_incoming(host) or self.admission.admit(conn),
            encryption=self.settings.security.encryption,
            skey_lookup=skey_finder(lambda: [*self._by_wire_hash, *self._magnet_hashes()]),
        )
        return conn

    def _admit_incoming(self, host: str) -> str | None:
        return "blocked by the IP filter" if self.is_blocked(host) else None

    def _magnet_hashes(self) -> list[bytes]:
        """Every hash a magnet in its metadata phase answers to: its key and, for a hybrid,
        the truncated v2 hash (peers from the v2 swarm dial in with that one)."""
        hashes = list(self.magnets)
        for magnet in self.magnets.values():
            v2 = magnet.magnet.info_hash_v2
            if v2 is not None and v2[:20] not in self.magnets:
                hashes.append(v2[:20])
        return hashes

    def lookup_torrent(self, info_hash: bytes) -> tuple[PeerHandler, bytes, int] | None:
        torrent = self._by_wire_hash.get(info_hash)
        if torrent is None:
            magnet = self.magnets.get(info_hash)
            if magnet is None:  # a hybrid magnet's v2 swarm: few magnets, a short scan
                found = (m._lookup(info_hash) for m in self.magnets.values())
                return next((hit for hit in found if hit is not None), None)
            if magnet.active:
                return magnet, info_hash, 0  # a magnet's metadata phase: no piece count yet
        if torrent is None or torrent.state not in (TorrentState.DOWNLOADING, TorrentState.SEEDING):
            return None
        return torrent, info_hash, torrent.info.num_pieces

    def peer_count(self) -> int:
        return sum(len(t.peers) for t in self.torrents.values())

    def can_open_connection(self) -> bool:
        net = self.settings.network
        return self.half_open < net.max_half_open and self.peer_count() < net.max_global_peers

    async def load_ip_filter(self) -> None:
        """(Re)load ``security.ip_filter_path`` with ``ip_whitelist_path`` as its exceptions.

        A list that cannot be read is logged, not fatal: the session keeps running unfiltered
        rather than refusing to start over a missing file."""
        path = self.settings.security.ip_filter_path
        if path is None:
            self.ip_filter = None
            return
        allow = self.settings.security.ip_whitelist_path
        allow_path = Path(allow).expanduser() if allow is not None else None
        try:
            self.ip_filter, report = await load_filter_async(Path(path).expanduser(), allow_path)
        except IPFilterError as exc:
            log.error("IP filter not loaded: %s", exc)
            return
        log.info("IP filter: %d ranges from %s", report.ranges, path)

    def is_blocked(self, host: str) -> bool:
        """True when the IP filter blocks ``host`` (peers from any source, incoming too)."""
        return self.ip_filter is not None and self.ip_filter.is_blocked(host)

    def can_accept_peer(self) -> bool:
        return self.peer_count() < self.settings.network.max_global_peers

    # -- torrents -------------------------------------------------------------------------
    async def add_torrent(
        self,
        metainfo: Metainfo | None,
        info: TorrentInfo,
        options: AddOptions,
    ) -> Torrent:
        if info.info_hash in self.torrents:
            raise SessionError(f"torrent {info.name!r} is already in the session")
        torrent = Torrent(self, info, options, metainfo)
        self.torrents[info.info_hash] = torrent
        self._by_wire_hash[info.info_hash] = torrent
        if info.info_hash_v2 is not None:
            self._by_wire_hash[info.info_hash_v2[:20]] = torrent
        self.events.publish(ev.TorrentAdded(info_hash=torrent.info_hash_hex, name=info.name))
        if self.persistence is not None:
            await self.persistence.attach(torrent, options)  # resume data, .torrent copy
        await torrent.start()
        return torrent

    async def remove_torrent(self, info_hash: bytes, *, delete_files: bool = False) -> None:
        magnet = self.magnets.pop(info_hash, None)
        if magnet is not None:
            await magnet.close()
            self.events.publish(ev.TorrentRemoved(info_hash=info_hash.hex(), with_data=False))
            return
        torrent = self.torrents.pop(info_hash, None)
        if torrent is None:
            raise SessionError(f"no torrent with infohash {info_hash.hex()}")
        for key in [k for k, t in self._by_wire_hash.items() if t is torrent]:
            del self._by_wire_hash[key]
        await self.queue.removing(torrent)  # a move of its files ends first
        await torrent.close(delete_files=delete_files)
        self.reputation.forget_torrent(torrent.info_hash)  # its smart-ban evidence (bans stay)
        self.events.publish(
            ev.TorrentRemoved(info_hash=torrent.info_hash_hex, with_data=delete_files)
        )

    def _warn_if_no_transport(self) -> None:
        """Settings that allow no peer connection are legal key by key: say so in the log."""
        reason = self.settings.network.no_transport_reason()
        if reason is not None:
            log.warning("no peers can be reached: %s", reason)

    async def apply_settings(self, new: Settings) -> dict[str, tuple[object, object]]:
        """Switch to ``new`` settings live; most are read where used, these need a nudge."""
        changes = self.settings.diff(new)
        self.settings = new
        keys = set(changes)
        if self.started and keys & _TRANSPORT_KEYS:
            self._warn_if_no_transport()
        if keys & {"limits.global_down_kib", "limits.global_up_kib"}:
            self.set_global_limits(
                new.limits.global_down_kib * 1024, new.limits.global_up_kib * 1024
            )
        if keys & QUEUE_KEYS:
            self.queue.request()  # slots re-dealt; ratio/seed-time limits are read every tick
        if any(k.startswith("limits.alt_") for k in keys):
            self.alt_speed.settings_changed(new.limits, keys)
        if keys & {"limits.per_peer_down_kib", "limits.per_peer_up_kib"}:
            for torrent in self.torrents.values():
                for ps in torrent.peers.values():
                    ps.down_bucket.set_rate(new.limits.per_peer_down_kib * 1024)
                    ps.up_bucket.set_rate(new.limits.per_peer_up_kib * 1024)
        if keys & {"security.ip_filter_path", "security.ip_whitelist_path"}:
            await self.load_ip_filter()
        if "disk.read_cache_mb" in keys:
            self.read_cache.resize(new.disk.read_cache_mb * 1024 * 1024)
        if self.started and keys & {
            "network.listen_port",
            "network.listen_interfaces",
            "network.enable_ipv6",
            "network.enable_utp",
        }:
            await self._restart_listeners()
        if self.started and keys & DHT_KEYS:
            await apply_dht_settings(self)  # on/off, port, bootstrap nodes
        if self.started and keys & PROXY_KEYS:
            await apply_proxy_settings(self, keys)  # tracker HTTP session, proxy_force
        if self.started and keys & PORTMAP_KEYS:
            await apply_portmap_settings(self)  # methods on/off, new listen port
        if self.http is not None:  # a proxy change made a new one
            set_tls_policy(self.http, self._verify_tls)
        if self.started:
            await self.metrics.settings_changed(keys)  # endpoint on/off, new address
        return changes

    def _verify_tls(self) -> bool:
        return self.settings.security.verify_tls

    async def _restart_listeners(self) -> None:
        old = self._servers
        if self.utp is not None:
            self.utp.close()
            self.utp = None
        self._servers = []
        for server in old:
            server.close()
        self.started = False
        try:
            await self.start_listening()
        except SessionError:
            log.error("cannot listen with the new settings; peers cannot connect to us")
            raise
        finally:
            self.started = True
        if self.dht is not None:  # it may have shared the uTP socket that was just replaced
            await self.dht.stop()
            self.dht = await start_session_dht(self)

    def set_global_limits(self, download: int | None = None, upload: int | None = None) -> None:
        """The normal global limits; while the alternative ones are on, they wait their turn."""
        self.alt_speed.set_normal(download, upload)
        if self.persistence is not None:
            self.persistence.request_session()

    def peer_buckets(self) -> tuple[TokenBucket, TokenBucket]:
        """Fresh (download, upload) buckets for one connection (``limits.per_peer_*``)."""
        limits = self.settings.limits
        return TokenBucket(limits.per_peer_down_kib * 1024), TokenBucket(
            limits.per_peer_up_kib * 1024
        )


def default_save_path(settings: Settings) -> Path:
    return Path(os.path.expanduser(str(settings.disk.download_path)))
