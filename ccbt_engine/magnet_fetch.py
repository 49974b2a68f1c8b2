"""A magnet link's metadata phase: find peers, fetch the info dict (BEP 9), become a torrent.

Why a separate object rather than a Torrent without info: everything in a Torrent (picker,
storage, bitfields, choking) needs the piece count, which only the info dict gives. The
:class:`MagnetTorrent` is the small thing in between: it connects to peers (``x.pe``, and
whatever the trackers, DHT, PEX or LSD find through :meth:`MagnetTorrent.add_peers`), speaks only
the extension protocol, assembles and verifies the metadata, then asks the session to add the
real :class:`~ccbt_engine.torrent.Torrent` (with BEP 53 ``so=`` applied as file priorities) and
hands its peers over. :class:`MagnetHandle` is the facade's handle for it, valid across the
transition: before it, status says ``state == "metadata"``; after it, it is a normal handle.

The metadata connections are closed and the peers redialled by the new torrent: the wire rules
(bitfield only as the first message) make re-using them for a torrent that now has pieces
fragile, and a redial on a LAN or loopback costs a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ccbt_engine import events as ev
from ccbt_engine.api import (
    FileStatus,
    PeerStatus,
    Session,
    TorrentHandle,
    TorrentStatus,
    TrackerStatus,
)
from ccbt_engine.dht.service import peer_loop
from ccbt_engine.extensions import ExtensionManager, ExtPeer
from ccbt_engine.extensions.metadata import MetadataAssembler, UtMetadata
from ccbt_engine.extensions.pex import UtPex
from ccbt_engine.layer_fetch import LayerDriver, fetch_piece_layers
from ccbt_engine.magnet import Magnet, parse_magnet
from ccbt_engine.metainfo import Metainfo, MetainfoError, TorrentInfo, parse_info_dict
from ccbt_engine.net.peer import PeerConnection
from ccbt_engine.net.proxy_dial import dial_peer, udp_block_reason
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.extension import decode_extension_handshake, encode_extension_handshake
from ccbt_engine.session import SessionError
from ccbt_engine.strategy.picker import PRIORITY_NORMAL
from ccbt_engine.torrent import MAX_UPLOAD_QUEUE, AddOptions, Torrent, TorrentState
from ccbt_engine.tracker import AnnounceStats
from ccbt_engine.tracker_link import TrackerLink

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = ["MagnetHandle", "MagnetTorrent", "add_magnet", "select_only_priorities"]

log = logging.getLogger(__name__)

METADATA_STATE = "metadata"
HANDSHAKE_TIMEOUT = 20.0
#: give the remote side a moment to see our metadata connections close before we redial, so
#: it does not take the new connection for a duplicate of the old one (same peer id)
REDIAL_DELAY = 0.25


@dataclass(eq=False)
class _MetaPeer:
    conn: PeerConnection
    source: str
    connected_at: float
    client: str = ""


@dataclass
class _Pending:
    """Commands given to the handle before the metadata arrived, applied when it does."""

    file_priorities: Sequence[int] | None = None
    sequential: bool = False
    download_limit: int = 0
    upload_limit: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def select_only_priorities(selected: Sequence[int], num_files: int) -> list[int] | None:
    """BEP 53 ``so``: normal priority for the listed file indices, 0 (skip) for the rest.

    None (download everything) when nothing valid is selected: a link whose every index is out
    of range would otherwise download nothing at all, which no user means.
    """
    chosen = {i for i in selected if 0 <= i < num_files}
    if not chosen:
        return None
    return [PRIORITY_NORMAL if i in chosen else 0 for i in range(num_files)]


class MagnetTorrent:
    """A torrent known only by its infohash, fetching its info dict from peers."""

    def __init__(self, core: SessionCore, magnet: Magnet, options: AddOptions) -> None:
        self.core = core
        self.magnet = magnet
        self.options = options
        self.info_hash = magnet.info_hash
        self.info_hash_hex = self.info_hash.hex()
        self.name = magnet.display_name or self.info_hash_hex
        self.added_time = time.time()
        self.paused = options.paused
        self.error: str | None = None
        self.pending = _Pending(
            file_priorities=options.file_priorities,
            sequential=options.sequential,
            download_limit=options.download_limit,
            upload_limit=options.upload_limit,
        )
        #: the real torrent once the metadata is in
        self.torrent: Torrent | None = None
        self.became_torrent = asyncio.Event()
        self.peers: dict[PeerConnection, _MetaPeer] = {}
        self.connecting: set[tuple[str, int]] = set()
        self.candidates: list[tuple[str, int]] = []
        #: every address heard of, with where from (handed to the torrent afterwards)
        self.sources: dict[tuple[str, int], str] = {}
        self.assembler = MetadataAssembler(magnet.info_hash_v1, magnet.info_hash_v2)
        self.extensions = ExtensionManager(self)
        self.extensions.register(
            UtMetadata(
                None,
                assembler=self.assembler,
                on_complete=self._on_metadata,
                on_bad_peer=self._on_bad_peer,
            )
        )
        if core.settings.network.enable_pex:
            self.extensions.register(UtPex())
        #: addresses (not hosts: on a NAT or loopback an honest peer may share the host) that
        #: sent metadata failing the infohash
        self.banned: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick_task: asyncio.Task[None] | None = None
        #: DHT lookups and tracker announces: peer sources of the metadata phase only (the
        #: torrent runs its own once it exists)
        self._discovery: list[asyncio.Task[Any]] = []
        self.trackers = TrackerLink(
            info_hash=self.info_hash,
            peer_id=core.peer_id,
            tiers=[(url,) for url in magnet.trackers],
            private=False,
            # "left" is unknown without metadata; xl= is the best guess, 0 is not a lie of "done"
            stats=lambda: AnnounceStats(uploaded=0, downloaded=0, left=magnet.exact_length or 1),
            on_peers=self.add_peers,
            listen_port=lambda: core.listen_port,
            http=lambda: core.http,
            udp_blocked=lambda: udp_block_reason(core.settings.network),
        )
        self._finishing = False
        #: BEP 52 piece-layer fetch of a v2-only torrent (between the info dict and the torrent)
        self.layer_fetch: LayerDriver | None = None
        #: the verified info dict of a piece-layer fetch interrupted by a pause (resume restarts it)
        self.metadata_raw: bytes | None = None

    # -- state ----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self.error is not None:
            return str(TorrentState.ERROR)
        return str(TorrentState.PAUSED) if self.paused else METADATA_STATE

    @property
    def active(self) -> bool:
        return not self.paused and self.error is None and not self._finishing

    def progress(self) -> float:
        """Share of the metadata received so far (0 before any peer said how large it is).

        A v2-only magnet's metadata phase has a second half, the piece layers (BEP 52): while
        they are fetched the figure is the share of their hash ranges received, so a status
        bar does not sit at 100 % for it."""
        if self.layer_fetch is not None:
            return self.layer_fetch.fetch.progress
        return self.assembler.progress

    def start(self) -> None:
        if not self.active:
            return
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._tick_loop(), name=f"magnet-{self.name}")
        if not self._discovery:
            self._start_discovery()
        self.add_peers(self.magnet.peers, "magnet")
        self._connect_more()

    def _start_discovery(self) -> None:
        hashes = [self.info_hash]
        v2 = self.magnet.info_hash_v2
        if v2 is not None and v2[:20] != self.info_hash:
            hashes.append(v2[:20])  # a hybrid's v2 swarm (BEP 52)
        for ih in hashes:
            self._discovery.append(
                asyncio.create_task(
                    peer_loop(
                        lambda: self.core.dht,
                        ih,
                        self.add_peers,
                        lambda: self.core.listen_port or None,
                    ),
                    name=f"magnet-dht-{self.name}",
                )
            )
        self._discovery.append(
            asyncio.create_task(self.trackers.start(), name=f"magnet-trackers-{self.name}")
        )

    async def _stop_discovery(self) -> None:
        tasks, self._discovery = self._discovery, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.trackers.stop()

    async def pause(self) -> None:
        self.paused = True
        await self._stop_activity()

    async def resume(self) -> None:
        self.paused = False
        self.error = None
        self.candidates = list(self.sources)
        self.start()
        raw, self.metadata_raw = self.metadata_raw, None
        if raw is not None:
            self._on_metadata(raw)

    async def close(self, *, delete_files: bool = False) -> None:
        """Stop fetching; there are no files yet, so ``delete_files`` has nothing to delete."""
        self.paused = True
        await self._stop_activity()

    async def _stop_activity(self) -> None:
        await self._stop_discovery()
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        for conn in list(self.peers):
            conn.close("magnet stopped")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- peers: connecting ------------------------------------------------------------------
    def add_peers(self, addresses: Sequence[tuple[str, int]], source: str) -> None:
        """Peers from any source (x.pe, trackers, DHT, PEX, LSD); the first source is kept."""
        for host, port in addresses:
            key = (host, port)
            if key in self.sources or key in self.banned or not 0 < port < 65536:
                continue
            self.sources[key] = source
            self.candidates.append(key)
        self._connect_more()

    def _connect_more(self) -> None:
        if not self.active:
            return
        limit = self.core.settings.network.max_peers_per_torrent
        while self.candidates and len(self.peers) + len(self.connecting) < limit:
            if not self.core.can_open_connection():
                break
            host, port = self.candidates.pop(0)
            if (host, port) in self.connecting or (host, port) in self.banned:
                continue
            if any(c.address == (host, port) for c in self.peers):
                continue
            self.connecting.add((host, port))
            self._spawn(self._connect(host, port))

    def _lookup(self, info_hash: bytes) -> tuple[MagnetTorrent, bytes, int] | None:
        v2 = self.magnet.info_hash_v2  # a hybrid's peers may answer with its truncated v2 hash
        ours = info_hash == self.info_hash or (v2 is not None and info_hash == v2[:20])
        return (self, info_hash, 0) if ours and self.active else None

    async def _connect(self, host: str, port: int) -> None:
        timeout = self.core.settings.network.connect_timeout
        self.core.half_open += 1
        conn: PeerConnection | None = None

        # "forced" must never send plaintext; otherwise the metadata phase dials plain (a few
        # KiB of public metadata), leaving the MSE-first-then-fallback dance to the torrent
        forced = self.core.settings.security.encryption == "forced"

        def factory() -> PeerConnection:
            made = PeerConnection(
                peer_id=self.core.peer_id,
                lookup=self._lookup,
                outgoing_info_hash=self.info_hash,
                encryption="forced" if forced else "disabled",
            )
            made.state = self.sources.get((host, port), "manual")  # before any byte arrives
            return made

        try:
            _, connected = await asyncio.wait_for(
                dial_peer(self.core, factory, host, port, timeout),  # the proxy when set
                timeout,
            )
            conn = connected
            self.core.half_open -= 1
            await asyncio.wait_for(asyncio.shield(conn.handshake_done), HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, ConnectionError) as exc:
            log.debug("%s: connect to %s:%d failed: %s", self.name, host, port, exc)
            if conn is None:
                self.core.half_open -= 1
            else:
                conn.close("handshake timeout")
        finally:
            self.connecting.discard((host, port))

    # -- PeerHandler ----------------------------------------------------------------------
    def on_peer_connected(self, conn: PeerConnection) -> str | None:
        if not self.active:
            return "magnet not active"
        if conn.address in self.banned:
            return "banned"
        remote = conn.remote
        assert remote is not None
        if not remote.supports_extended:
            return "no extension protocol: cannot send metadata"
        if len(self.peers) >= self.core.settings.network.max_peers_per_torrent:
            return "too many peers for this torrent"
        # no piece count yet: the parser must not judge bitfield sizes or HAVE indices
        conn.parser.set_num_pieces(None)
        source = conn.state if isinstance(conn.state, str) else "incoming"
        self.peers[conn] = _MetaPeer(conn, source, time.monotonic())
        hs = self.extensions.handshake(
            client=self.core.client_name,
            listen_port=self.core.listen_port or None,
            reqq=MAX_UPLOAD_QUEUE,
        )
        parts = [wire.encode_extended(0, encode_extension_handshake(hs))]
        if remote.supports_fast:
            parts.append(wire.encode_have_none())
        conn.send(b"".join(parts))
        return None

    def on_peer_batch_end(self, conn: PeerConnection) -> None:
        """Nothing is batched while only metadata is exchanged."""

    def on_peer_event(self, conn: PeerConnection, event: wire.Event) -> None:
        mp = self.peers.get(conn)
        if mp is not None and isinstance(event, wire.HashTransfer):
            if self.layer_fetch is not None:
                self.layer_fetch.on_message(conn, event)
            return
        if mp is None or not isinstance(event, wire.Extended):
            return  # pieces, bitfields and choking mean nothing without metadata
        if event.ext_id == 0:
            hs = decode_extension_handshake(event.payload)
            if hs.client:
                mp.client = hs.client[:64]
            self.extensions.on_handshake(conn, hs)
        else:
            self.extensions.on_message(conn, event.ext_id, event.payload)

    def on_peer_closed(self, conn: PeerConnection, reason: str) -> None:
        if self.peers.pop(conn, None) is None:
            return
        self.extensions.on_peer_closed(conn)
        if self.layer_fetch is not None:
            self.layer_fetch.on_peer_closed(conn)
        self._connect_more()

    def on_peer_writable(self, conn: PeerConnection) -> None:
        pass

    def _on_bad_peer(self, peer: ExtPeer, reason: str) -> None:
        self.banned.add(peer.conn.address)
        if peer.listen_address is not None:
            self.banned.add(peer.listen_address)
        log.warning("%s: banning %s: %s", self.name, peer.conn.address_text, reason)
        self.core.events.publish(
            ev.PeerBanned(
                info_hash=self.info_hash_hex, address=peer.conn.address_text, reason=reason
            )
        )
        peer.conn.close(f"banned: {reason}")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            try:
                self.extensions.on_tick(now)
                for conn in list(self.peers):
                    conn.send(wire.encode_keepalive())
                self._connect_more()
            except Exception:
                log.exception("%s: magnet tick failed", self.name)

    # -- the transition -------------------------------------------------------------------
    def _on_metadata(self, raw: bytes) -> None:
        if not self._finishing and self.layer_fetch is None:
            self._finishing = True
            self._spawn(self._become_torrent(raw))

    async def _become_torrent(self, raw: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            info: TorrentInfo = await loop.run_in_executor(self.core.executor, parse_info_dict, raw)
        except MetainfoError as exc:
            # it matched the infohash, so this IS the torrent: nothing else to wait for
            self._fail(f"the torrent's metadata is invalid: {exc}")
            return
        if not info.has_v1:
            # v2 piece hashes are not in the info dict: fetch and verify them (BEP 52) first,
            # so the torrent starts as complete as one added from a .torrent file
            fetched = await fetch_piece_layers(self, raw, info)
            if fetched is None:
                return
            info = fetched
        peers = [(mp.conn, mp.source) for mp in self.peers.values()]
        for conn, _ in peers:
            conn.close("metadata received: reconnecting as a torrent")
        if peers:
            await asyncio.sleep(REDIAL_DELAY)
        if self._tick_task is not None:
            self._tick_task.cancel()
            self._tick_task = None
        await self._stop_discovery()
        priorities = self.pending.file_priorities
        if priorities is not None and len(priorities) != len(info.files):
            priorities = None
        if priorities is None and self.magnet.select_only:
            priorities = select_only_priorities(self.magnet.select_only, len(info.files))
        options = replace(
            self.options,
            paused=self.paused,
            file_priorities=priorities,
            sequential=self.pending.sequential,
            download_limit=self.pending.download_limit,
            upload_limit=self.pending.upload_limit,
        )
        metainfo = Metainfo(
            info=info,
            trackers=tuple((url,) for url in self.magnet.trackers),
            web_seeds=tuple(self.magnet.web_seeds),
        )
        self.core.magnets.pop(self.info_hash, None)
        try:
            torrent = await self.core.add_torrent(metainfo, info, options)
        except SessionError as exc:
            existing = self.core.torrents.get(info.info_hash)
            if existing is None:
                self._fail(str(exc))
                return
            torrent = existing
        self.torrent = torrent
        by_source: dict[str, list[tuple[str, int]]] = {}
        for addr, source in self.sources.items():
            if addr not in self.banned:
                by_source.setdefault(source, []).append(addr)
        for source, addrs in by_source.items():
            torrent.add_peers(addrs, source)
        self.became_torrent.set()

    def _fail(self, message: str) -> None:
        log.error("%s: %s", self.name, message)
        self.error = message
        self.core.events.publish(ev.TorrentError(info_hash=self.info_hash_hex, message=message))
        self.became_torrent.set()
        for conn in list(self.peers):
            conn.close(message)


async def add_magnet(core: SessionCore, uri: str | Magnet, options: AddOptions) -> MagnetTorrent:
    """Parse ``uri`` (raises :class:`~ccbt_engine.magnet.MagnetError`) and start fetching."""
    magnet = uri if isinstance(uri, Magnet) else parse_magnet(uri)
    ih = magnet.info_hash
    if ih in core.torrents or ih in core.magnets:
        raise SessionError(f"torrent {ih.hex()} is already in the session")
    pending = MagnetTorrent(core, magnet, options)
    core.magnets[ih] = pending
    core.events.publish(ev.TorrentAdded(info_hash=pending.info_hash_hex, name=pending.name))
    pending.start()
    return pending


class MagnetHandle(TorrentHandle):
    """A :class:`TorrentHandle` for a magnet: metadata-phase answers until the info dict arrives,
    then exactly a torrent's handle (same object, so GUI rows and CLI loops keep working)."""

    def __init__(self, session: Session, magnet: MagnetTorrent) -> None:
        self._session = session
        self._magnet = magnet

    @property
    def _t(self) -> Torrent:
        torrent = self._magnet.torrent
        if torrent is None:
            raise SessionError(f"{self._magnet.name}: metadata not received yet")
        return torrent

    @_t.setter
    def _t(self, value: Torrent) -> None:
        self._magnet.torrent = value

    @property
    def has_metadata(self) -> bool:
        return self._magnet.torrent is not None

    @property
    def info_hash(self) -> str:
        return self._magnet.info_hash_hex

    @property
    def name(self) -> str:
        return self._t.name if self.has_metadata else self._magnet.name

    async def wait_metadata(self, timeout: float | None = None) -> None:
        """Wait until the info dict is fetched and the torrent exists (or it failed)."""
        await asyncio.wait_for(self._magnet.became_torrent.wait(), timeout)
        if self._magnet.torrent is None:
            raise SessionError(self._magnet.error or "magnet stopped")

    def status(self) -> TorrentStatus:
        if self.has_metadata:
            return super().status()
        m = self._magnet
        return TorrentStatus(
            info_hash=m.info_hash_hex,
            info_hash_v2=m.magnet.info_hash_v2.hex() if m.magnet.info_hash_v2 else None,
            name=m.name,
            state=m.state,
            progress=0.0,
            wanted_size=m.magnet.exact_length or 0,
            wanted_done=0,
            total_size=m.magnet.exact_length or 0,
            download_rate=0.0,
            upload_rate=0.0,
            num_peers=len(m.peers),
            num_seeds=sum(1 for p in m.extensions.peers() if p.upload_only),
            downloaded=0,
            uploaded=0,
            ratio=0.0,
            eta=None,
            save_path=str(m.options.save_path),
            added_time=m.added_time,
            time_active=0.0,
            error=m.error,
            num_pieces=0,
            piece_length=0,
            pieces_have=0,
            hash_failures=m.assembler.hash_failures,
            wasted=0,
            checking_progress=m.progress(),
            sequential=m.pending.sequential,
            download_limit=m.pending.download_limit,
            upload_limit=m.pending.upload_limit,
        )

    def peers(self) -> list[PeerStatus]:
        if self.has_metadata:
            return super().peers()
        return [
            PeerStatus(
                address=mp.conn.address_text,
                client=mp.client,
                flags="" if mp.conn.outgoing else "I",
                progress=0.0,
                download_rate=0.0,
                upload_rate=0.0,
                downloaded=0,
                uploaded=0,
                source=mp.source,
                transport="TCP",
                encrypted=False,
                is_seed=False,
                hash_failures=0,
            )
            for mp in self._magnet.peers.values()
        ]

    def files(self) -> list[FileStatus]:
        return super().files() if self.has_metadata else []

    def pieces(self) -> bytes:
        return super().pieces() if self.has_metadata else b""

    def trackers(self) -> list[TrackerStatus]:
        return super().trackers() if self.has_metadata else self._magnet.trackers.status()

    def force_reannounce(self) -> None:
        if self.has_metadata:
            super().force_reannounce()
        else:
            self._magnet.trackers.force_reannounce()

    async def pause(self) -> None:
        if self.has_metadata:
            await super().pause()
        else:
            await self._magnet.pause()

    async def resume(self) -> None:
        if self.has_metadata:
            await super().resume()
        else:
            await self._magnet.resume()

    async def force_recheck(self) -> None:
        if self.has_metadata:
            await super().force_recheck()

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        if self.has_metadata:
            super().set_file_priorities(priorities)
        else:
            self._magnet.pending.file_priorities = list(priorities)

    def set_sequential(self, value: bool) -> None:
        if self.has_metadata:
            super().set_sequential(value)
        else:
            self._magnet.pending.sequential = value

    def set_limits(self, download: int | None = None, upload: int | None = None) -> None:
        if self.has_metadata:
            super().set_limits(download, upload)
            return
        if download is not None:
            self._magnet.pending.download_limit = download
        if upload is not None:
            self._magnet.pending.upload_limit = upload

    def connect_peer(self, host: str, port: int, source: str = "manual") -> None:
        if self.has_metadata:
            super().connect_peer(host, port, source)
        else:
            self._magnet.add_peers([(host, port)], source)

    async def wait_finished(self, timeout: float | None = None) -> TorrentStatus:
        start = time.monotonic()
        await self.wait_metadata(timeout)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        return await super().wait_finished(left)
