"""The engine's public facade: the only surface the GUI, the CLI and the remote daemon use.

Commands are methods on :class:`Session` and :class:`TorrentHandle`; state comes back as frozen
snapshot dataclasses (cheap to compare, safe to hand to another thread or serialise) and as
typed events from :mod:`ccbt_engine.events`. Nothing here exposes engine internals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ccbt_engine import events as ev
from ccbt_engine.config import Settings
from ccbt_engine.create import CreateError, create_torrent_async
from ccbt_engine.metainfo import Metainfo, MetainfoError, TorrentInfo, load_torrent, parse_torrent
from ccbt_engine.net.utp_socket import transport_name
from ccbt_engine.pathsafe import expand_home  # the facade's way to read a typed save path
from ccbt_engine.portmap import MappingStatus, PortMapOptions
from ccbt_engine.portmap.session_hook import port_mapping_status
from ccbt_engine.queue_service import torrent_ratio
from ccbt_engine.queueing import Direction as QueueDirection
from ccbt_engine.security.reputation import BannedPeer
from ccbt_engine.session import SessionCore, SessionError, default_save_path
from ccbt_engine.state import SessionPersistence, resolve_state_dir
from ccbt_engine.torrent import AddOptions, PeerState, Torrent, TorrentState
from ccbt_engine.tracker import TrackerStatus
from ccbt_engine.webseed import WebSeedStatus

__all__ = [
    "BannedPeer",
    "CreateError",
    "FileStatus",
    "MappingStatus",
    "MetainfoError",
    "NetworkStatus",
    "PeerStatus",
    "PortMapOptions",
    "QueueDirection",
    "Session",
    "SessionError",
    "TorrentHandle",
    "TorrentState",
    "TorrentStatus",
    "TrackerStatus",
    "create_torrent_async",
    "expand_home",
]


@dataclass(frozen=True, slots=True)
class TorrentStatus:
    """One torrent's state at one moment."""

    info_hash: str
    info_hash_v2: str | None
    name: str
    state: str
    progress: float
    #: bytes of the pieces we want, and how many of those we have
    wanted_size: int
    wanted_done: int
    total_size: int
    download_rate: float
    upload_rate: float
    num_peers: int
    num_seeds: int
    downloaded: int
    uploaded: int
    ratio: float
    eta: float | None
    save_path: str
    added_time: float
    time_active: float
    error: str | None
    num_pieces: int
    piece_length: int
    pieces_have: int
    hash_failures: int
    wasted: int
    checking_progress: float
    sequential: bool
    download_limit: int
    upload_limit: int
    #: bytes of the files the user selected (priority > 0), pad files excluded
    selected_size: int = 0
    #: 0-based place in the queue (limits.max_active_*); -1 when not queueable (a magnet)
    queue_position: int = -1


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One connected peer, as a qBittorrent user would see it in the Peers tab."""

    address: str
    client: str
    #: qBittorrent-style: D/d (downloading / interested but choked), U/u, I incoming, S snubbed
    flags: str
    progress: float
    download_rate: float
    upload_rate: float
    downloaded: int
    uploaded: int
    source: str
    transport: str
    encrypted: bool
    is_seed: bool
    hash_failures: int


@dataclass(frozen=True, slots=True)
class FileStatus:
    index: int
    path: str
    size: int
    priority: int
    is_pad: bool
    #: bytes of this file covered by verified pieces
    done: int = 0


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    """The session's connectivity at one moment: what qBittorrent's status bar shows."""

    #: 0 when not listening (session stopped)
    listen_port: int
    #: as peers (BEP 10 ``yourip``), the router or DHT nodes report it; None until one does
    external_ip: str | None
    dht_enabled: bool
    dht_nodes: int
    #: an incoming peer connection got through since start: the port is reachable from outside
    incoming_seen: bool
    download_rate: float
    upload_rate: float
    #: payload bytes since the session started, all torrents
    downloaded: int
    uploaded: int
    alt_speed: bool
    mappings: tuple[MappingStatus, ...]
    #: why no peer connection can be made with the current settings (both transports off, or
    #: TCP off behind a proxy), None when one can
    transport_problem: str | None = None


class TorrentHandle:
    """Commands and state of one torrent. Stays valid after removal (commands then fail)."""

    def __init__(self, session: Session, torrent: Torrent) -> None:
        self._session = session
        self._t = torrent

    @property
    def info_hash(self) -> str:
        return self._t.info_hash_hex

    @property
    def name(self) -> str:
        return self._t.name

    @property
    def info(self) -> TorrentInfo:
        return self._t.info

    def status(self) -> TorrentStatus:
        t = self._t
        now = time.monotonic()
        have = t.picker.have.count()
        wanted = t.wanted_bytes
        done = wanted - t.picker.wanted_remaining()
        down_rate = t.down.rate(now)
        up_rate = t.up.rate(now)
        remaining = wanted - done
        eta = None if down_rate <= 0 else remaining / down_rate
        if remaining == 0:
            eta = 0.0
        downloaded, uploaded = t.down.total, t.up.total
        return TorrentStatus(
            info_hash=t.info_hash_hex,
            info_hash_v2=t.info.info_hash_v2.hex() if t.info.info_hash_v2 else None,
            name=t.name,
            state=str(t.state),
            progress=t.progress,
            wanted_size=wanted,
            wanted_done=done,
            total_size=sum(f.length for f in t.info.files if not f.is_pad),
            selected_size=sum(
                f.length
                for f, prio in zip(t.info.files, t.file_priorities, strict=True)
                if prio > 0 and not f.is_pad
            ),
            download_rate=down_rate,
            upload_rate=up_rate,
            num_peers=len(t.peers),
            num_seeds=sum(1 for p in t.peers.values() if p.is_seed),
            downloaded=downloaded,
            uploaded=uploaded,
            ratio=torrent_ratio(t),  # qBittorrent's: a seed from the start counts its data
            eta=eta,
            save_path=str(t.save_path),
            added_time=t.added_time,
            time_active=t.time_active(),
            error=t.error,
            num_pieces=t.info.num_pieces,
            piece_length=t.info.piece_length,
            pieces_have=have,
            hash_failures=t.hash_failures,
            wasted=t.wasted,
            checking_progress=t.checking_progress,
            sequential=t.picker.sequential,
            download_limit=int(t.down_bucket.rate),
            upload_limit=int(t.up_bucket.rate),
            queue_position=t.session.queue.position(t.info_hash),
        )

    @property
    def queue_position(self) -> int:
        """0-based queue position (0 runs first); -1 once removed, or a magnet still fetching
        its metadata (it joins the queue, at the bottom, when the info dict arrives)."""
        return self._session._core.queue.position(bytes.fromhex(self.info_hash))

    def queue_move(self, direction: QueueDirection) -> bool:
        """Move up/down one place or to the top/bottom of the queue; slots are re-dealt at once
        (a torrent moved above a running one may take its slot). False: already there."""
        try:
            return self._session._core.queue.move(bytes.fromhex(self.info_hash), direction)
        except KeyError:
            raise SessionError(f"no torrent with infohash {self.info_hash}") from None

    async def move_storage(self, path: str | Path) -> bool:
        """Move the torrent's files under ``path`` ("set location") and go on from there.

        All or nothing: on failure (an event ``StorageMoveFailed`` too) the files stay where
        they were and False is returned."""
        return await self._t.session.queue.start_move(self._t, Path(path))

    def peers(self) -> list[PeerStatus]:
        now = time.monotonic()
        peers = [_peer_status(ps, now) for ps in self._t.peers.values()]
        return peers + [_webseed_status(w) for w in self._t.webseeds.status(now)]

    def banned_peers(self) -> list[BannedPeer]:
        """Banned addresses with the reason; a ban covers every torrent of the session."""
        return self._t.session.reputation.banned_peers(time.monotonic())

    def files(self) -> list[FileStatus]:
        t = self._t
        have = t.picker.have
        done = t.storage.file_progress([have[i] for i in range(len(have))])
        return [
            FileStatus(i, "/".join(f.path), f.length, t.file_priorities[i], f.is_pad, done[i])
            for i, f in enumerate(t.info.files)
        ]

    def trackers(self) -> list[TrackerStatus]:
        """Per-tracker state: url, tier, status, message, last/next announce, seeds/peers."""
        return self._t.trackers.status()

    def force_reannounce(self) -> None:
        """Announce to the trackers now (their ``min interval`` is still respected)."""
        self._t.trackers.force_reannounce()

    def pieces(self) -> bytes:
        """Bitfield of verified pieces (BitTorrent bit order)."""
        return self._t.picker.have.to_bytes()

    async def pause(self) -> None:
        await self._t.pause()

    async def resume(self) -> None:
        await self._t.resume()

    async def force_recheck(self) -> None:
        await self._t.force_recheck()

    async def remove(self, *, delete_files: bool = False) -> None:
        await self._session.remove(self.info_hash, delete_files=delete_files)

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        """0 = skip, 1 = low, 4 = normal, 7 = high, one per file (pad files included)."""
        self._t.set_file_priorities(priorities)
        self._persist()

    def set_sequential(self, value: bool) -> None:
        self._t.picker.sequential = value
        self._persist()

    def set_limits(self, download: int | None = None, upload: int | None = None) -> None:
        """Bytes per second; 0 = unlimited; None = unchanged."""
        self._t.set_limits(download, upload)
        self._persist()

    def _persist(self) -> None:
        """A change the resume data must keep: checkpoint soon (when persisting)."""
        if self._session._core.persistence is not None:
            self._session._core.persistence.request(self._t)

    def connect_peer(self, host: str, port: int, source: str = "manual") -> None:
        self._t.add_peers([(host, port)], source)

    async def wait_finished(self, timeout: float | None = None) -> TorrentStatus:
        """Wait until every wanted piece is verified (or raise on the torrent's error)."""
        done = asyncio.Event()

        def listener(event: ev.Event) -> None:
            if event.info_hash == self.info_hash and isinstance(
                event, ev.TorrentFinished | ev.TorrentError | ev.TorrentRemoved
            ):
                done.set()

        unsubscribe = self._session.events.subscribe(listener)
        try:
            if not self._is_finished_or_failed():
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            unsubscribe()
        status = self.status()
        if status.error:
            raise SessionError(status.error)
        return status

    def _is_finished_or_failed(self) -> bool:
        return self._t.state in (TorrentState.SEEDING, TorrentState.ERROR) or (
            self._t.state != TorrentState.CHECKING and self._t.picker.is_finished()
        )


def _webseed_status(w: WebSeedStatus) -> PeerStatus:
    """A BEP 19 web seed as a peer row (qBittorrent shows them so); why it is idle, waiting or
    disabled is in ``client``."""
    return PeerStatus(
        address=w.host,
        client=f"HTTP seed ({w.state}: {w.reason})" if w.reason else f"HTTP seed ({w.state})",
        flags="D" if w.state == "downloading" else "",
        progress=1.0,
        download_rate=w.download_rate,
        upload_rate=0.0,
        downloaded=w.downloaded,
        uploaded=0,
        source="webseed",
        transport="https" if w.url.startswith("https:") else "http",
        encrypted=w.url.startswith("https:"),
        is_seed=True,
        hash_failures=w.hash_failures,
    )


def _peer_status(ps: PeerState, now: float) -> PeerStatus:
    flags = ""
    if ps.am_interested:
        flags += "d" if ps.peer_choking else "D"
    if ps.peer_interested:
        flags += "u" if ps.am_choking else "U"
    if not ps.conn.outgoing:
        flags += "I"
    if ps.snubbed:
        flags += "S"
    n = len(ps.bitfield)
    return PeerStatus(
        address=ps.conn.address_text,
        client=ps.client,
        flags=flags,
        progress=ps.bitfield.count() / n if n else 0.0,
        download_rate=ps.down.rate(now),
        upload_rate=ps.up.rate(now),
        downloaded=ps.down.total,
        uploaded=ps.up.total,
        source=ps.source,
        transport=transport_name(ps.conn.transport),
        encrypted=ps.conn.encrypted,
        is_seed=ps.is_seed,
        hash_failures=ps.hash_fails,
    )


TorrentSource = bytes | str | Path | Metainfo


class Session:
    """The engine: add torrents, control them, watch their state.

    ``async with Session(settings) as session:`` starts listening and stops cleanly (flushing
    data) on exit.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        listen_port: int | None = None,
        persist: bool = False,
        state_dir: str | Path | None = None,
        restore: bool = True,
        portmap_options: PortMapOptions | None = None,
    ) -> None:
        """``persist``: keep resume data and the torrent list in the state folder
        (``state_dir``, else ``$CCBT_STATE_DIR`` / ``disk.state_dir`` / the user data folder;
        giving ``state_dir`` turns ``persist`` on). ``restore``: re-add the saved torrents at
        start (GUI, daemon); ``ccbt download`` passes False and only resumes what it adds.
        ``portmap_options``: where UPnP/NAT-PMP requests go (tests: fakes on 127.0.0.1).
        """
        self._core = SessionCore(settings, listen_port=listen_port)
        self._core.portmap_options = portmap_options
        if persist or state_dir is not None:
            folder = Path(state_dir) if state_dir else resolve_state_dir(self._core.settings)
            self._core.persistence = SessionPersistence(self._core, folder, restore=restore)

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self._core.start()

    async def stop(self) -> None:
        await self._core.stop()

    @property
    def settings(self) -> Settings:
        return self._core.settings

    @property
    def listen_port(self) -> int:
        return self._core.listen_port

    @property
    def events(self) -> ev.EventBus:
        return self._core.events

    async def add_torrent(
        self,
        source: TorrentSource,
        save_path: str | Path | None = None,
        *,
        paused: bool = False,
        file_priorities: Sequence[int] | None = None,
        sequential: bool = False,
    ) -> TorrentHandle:
        """Add a torrent from .torrent bytes, a path to one, or a parsed :class:`Metainfo`.

        Raises ``ValueError`` for a ``save_path`` starting with ``~user`` where that user has no
        home folder (so does :meth:`add_magnet`).
        """
        if isinstance(source, Metainfo):
            metainfo = source
        elif isinstance(source, bytes):
            metainfo = parse_torrent(source)
        else:
            metainfo = load_torrent(Path(source))
        path = Path(save_path) if save_path is not None else default_save_path(self.settings)
        limits = self.settings.limits
        options = AddOptions(
            save_path=expand_home(path),
            paused=paused,
            file_priorities=file_priorities,
            sequential=sequential,
            download_limit=limits.per_torrent_down_kib * 1024,
            upload_limit=limits.per_torrent_up_kib * 1024,
        )
        torrent = await self._core.add_torrent(metainfo, metainfo.info, options)
        return TorrentHandle(self, torrent)

    async def add_magnet(
        self, uri: str, save_path: str | Path | None = None, *, paused: bool = False
    ) -> TorrentHandle:
        """Add a magnet link; the handle is in state "metadata" until the info dict arrives
        from peers (BEP 9), then becomes a normal torrent's handle (see ``magnet_fetch``)."""
        from ccbt_engine.magnet_fetch import MagnetHandle, add_magnet

        path = Path(save_path) if save_path is not None else default_save_path(self.settings)
        limits = self.settings.limits
        options = AddOptions(
            save_path=expand_home(path),
            paused=paused,
            download_limit=limits.per_torrent_down_kib * 1024,
            upload_limit=limits.per_torrent_up_kib * 1024,
        )
        return MagnetHandle(self, await add_magnet(self._core, uri, options))

    def torrents(self) -> list[TorrentHandle]:
        from ccbt_engine.magnet_fetch import MagnetHandle

        handles = [TorrentHandle(self, t) for t in self._core.torrents.values()]
        return handles + [MagnetHandle(self, m) for m in self._core.magnets.values()]

    def get(self, info_hash: str) -> TorrentHandle:
        torrent = self._core.torrents.get(bytes.fromhex(info_hash))
        magnet = self._core.magnets.get(bytes.fromhex(info_hash))
        if torrent is None and magnet is not None:
            from ccbt_engine.magnet_fetch import MagnetHandle

            return MagnetHandle(self, magnet)
        if torrent is None:
            raise SessionError(f"no torrent with infohash {info_hash}")
        return TorrentHandle(self, torrent)

    async def remove(self, info_hash: str, *, delete_files: bool = False) -> None:
        await self._core.remove_torrent(bytes.fromhex(info_hash), delete_files=delete_files)

    def queue_move(self, torrent: TorrentHandle | str, direction: QueueDirection) -> bool:
        """Move a torrent (handle or hex infohash) "up", "down", to the "top" or "bottom" of
        the queue. False when it is already there."""
        handle = torrent if isinstance(torrent, TorrentHandle) else self.get(torrent)
        return handle.queue_move(direction)

    def set_limits(self, download: int | None = None, upload: int | None = None) -> None:
        """Normal global limits in bytes per second; 0 = unlimited; None = unchanged.

        While the alternative limits are on (:attr:`alt_speed`) these wait their turn.
        """
        self._core.set_global_limits(download, upload)

    @property
    def alt_speed(self) -> bool:
        """True while the alternative global limits (``limits.alt_*``) are in force, switched
        by hand or by the schedule (``limits.alt_schedule_*``, followed by the engine)."""
        return self._core.alt_speed.active

    def set_alt_speed(self, enabled: bool) -> None:
        """Switch the alternative limits on or off now (until the schedule's next edge).

        Not written to the config file; an ``AltSpeedChanged`` event announces the change.
        """
        self._core.alt_speed.set_enabled(enabled)

    def global_limits(self) -> tuple[int, int]:
        """The (download, upload) global limits in force now, bytes/s, 0 = unlimited."""
        return self._core.alt_speed.effective()

    async def apply_settings(self, settings: Settings) -> dict[str, tuple[object, object]]:
        """Apply changed settings to the running session; returns what changed.

        Limits, peer counts, timeouts, the IP filter, the listen port, proxy, port mapping,
        queue limits, logging, metrics and the read cache take effect at once; preallocation and
        file-handle limits apply to torrents added afterwards.
        """
        return await self._core.apply_settings(settings)

    def global_rates(self) -> tuple[float, float]:
        now = time.monotonic()
        return self._core.down.rate(now), self._core.up.rate(now)

    def statuses(self) -> list[TorrentStatus]:
        return [h.status() for h in self.torrents()]

    async def snapshots(self, interval: float = 1.0) -> AsyncIterator[list[TorrentStatus]]:
        """Every ``interval`` seconds, the statuses that changed since the previous snapshot.

        The first snapshot has every torrent; removed torrents are announced by events.
        """
        previous: dict[str, TorrentStatus] = {}
        while True:
            current = {s.info_hash: s for s in self.statuses()}
            changed = [s for h, s in current.items() if previous.get(h) != s]
            previous = current
            yield changed
            await asyncio.sleep(interval)

    def subscribe(self, listener: Callable[[ev.Event], None]) -> Callable[[], None]:
        return self._core.events.subscribe(listener)

    def banned_peers(self) -> list[BannedPeer]:
        """Addresses banned session-wide (bad data, proven by smart ban, or anomalies), why."""
        return self._core.reputation.banned_peers(time.monotonic())

    def unban_peer(self, address: str) -> bool:
        """Lift a ban and forget the address's score; False if it was not banned."""
        return self._core.reputation.unban(address)

    def port_mapping(self) -> list[MappingStatus]:
        """UPnP/NAT-PMP mappings of the listen port (TCP and UDP per method) with their state,
        external port, lease and the router's external address; empty when both are off."""
        return port_mapping_status(self._core)

    def network_status(self) -> NetworkStatus:
        """Listen port, external address, DHT size, session rates and totals, alt speed and
        port mappings in one call, for a status bar refreshed every tick.

        "Incoming seen" is sticky: set when the session first accepts a connection (as
        libtorrent's ``has_incoming_connections``), however briefly it lived."""
        core = self._core
        dht = core.dht
        now = time.monotonic()
        return NetworkStatus(
            listen_port=core.listen_port if core.started else 0,
            external_ip=core.external_ip or (dht.external_ip if dht is not None else None),
            dht_enabled=dht is not None,
            dht_nodes=len(dht) if dht is not None else 0,
            incoming_seen=core.incoming_seen,
            download_rate=core.down.rate(now),
            upload_rate=core.up.rate(now),
            downloaded=core.down.total,
            uploaded=core.up.total,
            alt_speed=core.alt_speed.active,
            mappings=tuple(port_mapping_status(core)),
            transport_problem=core.settings.network.no_transport_reason(),
        )
