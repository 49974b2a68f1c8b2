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
from ccbt_engine.metainfo import Metainfo, TorrentInfo
from ccbt_engine.net.encrypted import skey_finder
from ccbt_engine.net.lsd import SessionLsd
from ccbt_engine.net.peer import PeerConnection, PeerHandler
from ccbt_engine.net.utp_socket import UTPListener, start_session_utp
from ccbt_engine.security.admission import IncomingGuard
from ccbt_engine.security.ipfilter import IPFilter, IPFilterError, load_filter_async
from ccbt_engine.security.reputation import Reputation
from ccbt_engine.stats import RateMeter
from ccbt_engine.strategy.altspeed import SessionAltSpeed
from ccbt_engine.strategy.ratelimit import RateLimiter, TokenBucket
from ccbt_engine.torrent import AddOptions, Torrent, TorrentState

if TYPE_CHECKING:
    from ccbt_engine.magnet_fetch import MagnetTorrent
    from ccbt_engine.state import SessionPersistence

log = logging.getLogger(__name__)

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
        #: resume data and session.json (ccbt_engine.state); set by the facade when persisting
        self.persistence: SessionPersistence | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            return
        await self.start_listening()
        net = self.settings.network
        if net.enable_dht:
            self.dht = await start_session_dht(self)
        if net.enable_lsd:
            lsd = SessionLsd(self)
            self.lsd = lsd if await lsd.start() else None
        await self.load_ip_filter()
        self.alt_speed.start()
        self.http = aiohttp.ClientSession(headers={"User-Agent": f"{CLIENT_NAME}/{__version__}"})
        self.started = True
        log.info("listening for peers on port %d", self.listen_port)
        if self.persistence is not None:
            await self.persistence.start()  # restores the saved torrents

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
        await self.alt_speed.close()
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
        conn = PeerConnection(
            peer_id=self.peer_id,
            lookup=self.lookup_torrent,
            admit=lambda host: self._admit_incoming(host) or self.admission.admit(conn),
            encryption=self.settings.security.encryption,
            skey_lookup=skey_finder(lambda: [*self._by_wire_hash, *self.magnets]),
        )
        return conn

    def _admit_incoming(self, host: str) -> str | None:
        return "blocked by the IP filter" if self.is_blocked(host) else None

    def lookup_torrent(self, info_hash: bytes) -> tuple[PeerHandler, bytes, int] | None:
        torrent = self._by_wire_hash.get(info_hash)
        magnet = self.magnets.get(info_hash) if torrent is None else None
        if magnet is not None and magnet.active:
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
        await torrent.close(delete_files=delete_files)
        self.reputation.forget_torrent(torrent.info_hash)  # its smart-ban evidence (bans stay)
        self.events.publish(
            ev.TorrentRemoved(info_hash=torrent.info_hash_hex, with_data=delete_files)
        )

    async def apply_settings(self, new: Settings) -> dict[str, tuple[object, object]]:
        """Switch to ``new`` settings live; most are read where used, these need a nudge."""
        changes = self.settings.diff(new)
        self.settings = new
        keys = set(changes)
        if keys & {"limits.global_down_kib", "limits.global_up_kib"}:
            self.set_global_limits(
                new.limits.global_down_kib * 1024, new.limits.global_up_kib * 1024
            )
        if any(k.startswith("limits.alt_") for k in keys):
            self.alt_speed.settings_changed(new.limits, keys)
        if keys & {"limits.per_peer_down_kib", "limits.per_peer_up_kib"}:
            for torrent in self.torrents.values():
                for ps in torrent.peers.values():
                    ps.down_bucket.set_rate(new.limits.per_peer_down_kib * 1024)
                    ps.up_bucket.set_rate(new.limits.per_peer_up_kib * 1024)
        if keys & {"security.ip_filter_path", "security.ip_whitelist_path"}:
            await self.load_ip_filter()
        if self.started and keys & {
            "network.listen_port",
            "network.listen_interfaces",
            "network.enable_ipv6",
            "network.enable_utp",
        }:
            await self._restart_listeners()
        if self.started and keys & DHT_KEYS:
            await apply_dht_settings(self)  # on/off, port, bootstrap nodes
        return changes

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
