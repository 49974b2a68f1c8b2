"""One torrent's lifecycle (checking → downloading → seeding; paused; error) and its swarm logic.

The torrent owns its storage, piece picker and peers. Connections (``net.peer``) report wire
events here; this module decides interest, requests, uploads and choking. It never blocks the
loop: disk and hashing run in the storage's executor, awaited in tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccbt_engine import events as ev
from ccbt_engine.bitfield import Bitfield, BitfieldError
from ccbt_engine.dht.service import torrent_dht_job
from ccbt_engine.extensions.torrent_ext import torrent_extensions
from ccbt_engine.hash_server import HashServer
from ccbt_engine.net.encrypted import EncryptionPolicy
from ccbt_engine.net.peer import PeerConnection
from ccbt_engine.net.proxy_dial import dial_peer, udp_block_reason
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.extension import (
    ExtensionHandshake,
    decode_extension_handshake,
    encode_extension_handshake,
)
from ccbt_engine.protocol.fast import allowed_fast_set
from ccbt_engine.protocol.peer_priority import peer_priority
from ccbt_engine.protocol.wire import ProtocolError
from ccbt_engine.security.guard import ActiveBans, PeerGuard
from ccbt_engine.security.peer_limits import RequestGuard, request_flood
from ccbt_engine.state import initial_check
from ccbt_engine.stats import RateMeter
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from ccbt_engine.storage.layout import PieceLayout
from ccbt_engine.strategy.choker import Choker, PeerChokeInfo, is_snubbed
from ccbt_engine.strategy.picker import PRIORITY_NORMAL, BlockRequest, PiecePicker
from ccbt_engine.strategy.ratelimit import DownloadBudget, TokenBucket
from ccbt_engine.strategy.upload import READ_AHEAD, batch_bytes, peek_batch, take_batch
from ccbt_engine.tracker import AnnounceStats
from ccbt_engine.tracker_link import TrackerLink
from ccbt_engine.webseed import WebSeeds

if TYPE_CHECKING:
    from ccbt_engine.metainfo import Metainfo, TorrentInfo
    from ccbt_engine.session import SessionCore

log = logging.getLogger(__name__)

BLOCK = 16 * 1024
#: requests we accept queued from one peer before rejecting more (advertised as ``reqq``)
MAX_UPLOAD_QUEUE = 500
#: seconds an outstanding request may wait before it is re-assigned
REQUEST_TIMEOUT = 60.0
KEEPALIVE_INTERVAL = 60.0
#: seconds of download worth of requests kept in flight per peer (bandwidth-delay sizing)
REQUEST_QUEUE_TIME = 3.0
MIN_QUEUE_DEPTH = 16
#: reconnecting to a peer that dropped or could not be reached: 30 s, doubling, at most 6 tries
RETRY_BASE = 30.0
RETRY_MAX_DELAY = 1800.0
RETRY_MAX_TRIES = 6
#: a peer that was sending us data when its connection died is dialled again this soon, once:
#: most such deaths are the transport's (a uTP sender that gave up on a packet lost three
#: times, a NAT dropping state), not the peer's wish, and a 30 s pause wastes a good source
PRODUCTIVE_RETRY_DELAY = 2.0
#: why a connection ended that makes dialling the peer again pointless
NO_RETRY_REASONS = ("banned", "both are seeds", "torrent stopped", "connected to ourselves")


class TorrentState(enum.StrEnum):
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    SEEDING = "seeding"
    PAUSED = "paused"
    ERROR = "error"
    #: waiting for a download/seed slot (limits.max_active_*; queue_service.py)
    QUEUED = "queued"
    #: its files are being moved (disk.move_completed_to; storage/move.py)
    MOVING = "moving"


@dataclass(eq=False)
class PeerState:
    """What the torrent knows about one connected peer."""

    conn: PeerConnection
    bitfield: Bitfield
    source: str
    connected_at: float
    am_choking: bool = True
    am_interested: bool = False
    peer_choking: bool = True
    peer_interested: bool = False
    #: (piece, begin) -> (length, time requested)
    requests: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)
    upload_queue: deque[wire.Request] = field(default_factory=deque)
    upload_task: asyncio.Task[None] | None = None
    allowed_fast_in: set[int] = field(default_factory=set)
    allowed_fast_out: set[int] = field(default_factory=set)
    down: RateMeter = field(default_factory=RateMeter)
    up: RateMeter = field(default_factory=RateMeter)
    last_block: float = 0.0
    last_received: float = 0.0
    last_sent: float = 0.0
    client: str = ""
    reqq: int = 250
    #: refused requests (security.peer_limits): too many disconnect the peer as a flood
    request_guard: RequestGuard = field(default_factory=RequestGuard)
    hash_fails: int = 0
    snubbed: bool = False
    extensions: ExtensionHandshake | None = None
    resume_timer: asyncio.TimerHandle | None = None
    #: per-connection limits (limits.per_peer_*), charged with the torrent's and the session's
    down_bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    up_bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    #: under a download limit, requests are paced by the buckets (strategy/ratelimit.py)
    budget: DownloadBudget = field(default_factory=DownloadBudget)
    #: a block arrived in the current read: top up requests when the read is handled
    refill: bool = False
    #: block bytes of the current read not yet added to the rate meters (once per read)
    pending_down: int = 0
    #: verified pieces the peer already has: their HAVEs ride with our next requests (a send
    #: per piece to a seed is a syscall for nothing it needs), or go out on the next tick
    haves: list[int] = field(default_factory=list)

    @property
    def fast(self) -> bool:
        remote = self.conn.remote
        return remote is not None and remote.supports_fast

    @property
    def is_seed(self) -> bool:
        return self.bitfield.all()


@dataclass(frozen=True, slots=True)
class AddOptions:
    """How a torrent is added (the facade's ``add_torrent`` arguments)."""

    save_path: Path
    paused: bool = False
    file_priorities: Sequence[int] | None = None
    sequential: bool = False
    download_limit: int = 0
    upload_limit: int = 0


class Torrent:
    """A torrent in the session."""

    def __init__(
        self,
        session: SessionCore,
        info: TorrentInfo,
        options: AddOptions,
        metainfo: Metainfo | None = None,
    ) -> None:
        self.session = session
        self.info = info
        self.metainfo = metainfo
        self.save_path = options.save_path
        self.name = info.name
        self.info_hash = info.info_hash
        self.info_hash_hex = self.info_hash.hex()
        self.added_time = time.time()
        self.state = TorrentState.PAUSED
        self.error: str | None = None
        self.paused = options.paused
        self.layout = PieceLayout(info)
        self.picker = PiecePicker(info.num_pieces, info.piece_length, info.total_length)
        self.picker.sequential = options.sequential
        self.storage = self._make_storage(self.save_path)
        self.file_priorities: list[int] = [PRIORITY_NORMAL] * len(info.files)
        self._wanted_bytes = info.total_length
        if options.file_priorities is not None:
            self._set_file_priorities(options.file_priorities)
        self.down_bucket = TokenBucket(options.download_limit)
        self.up_bucket = TokenBucket(options.upload_limit)
        self.peers: dict[PeerConnection, PeerState] = {}
        self.extensions = torrent_extensions(self)
        self.hash_server = HashServer(info, session.executor)  # BEP 52 piece-layer requests
        self.webseeds = WebSeeds(self, metainfo.web_seeds if metainfo is not None else ())
        self.connecting: set[tuple[str, int]] = set()
        self.candidates: deque[tuple[str, int, str]] = deque()
        self.known_peers: set[tuple[str, int]] = set()
        #: session-wide bans in force (host -> reason), expiring; see security/guard.py
        self.banned = ActiveBans(session.reputation)
        self.guard = PeerGuard(self)  # reputation, smart ban, anomaly detection
        self.choker = Choker()
        self.down = RateMeter()
        self.up = RateMeter()
        self.wasted = 0
        self.hash_failures = 0
        self.checking_progress = 0.0
        self.active_since: float | None = None
        self.active_seconds = 0.0
        self._relieving = False
        #: address -> consecutive failures; address -> (when to dial again, source)
        self._failures: dict[tuple[str, int], int] = {}
        self._retry_due: dict[tuple[str, int], tuple[float, str]] = {}
        self._hashing: set[int] = set()
        self._verify_tasks: set[asyncio.Task[None]] = set()
        #: the stop :meth:`_fail` runs in the background (resume waits for it)
        self._stopping: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick_task: asyncio.Task[None] | None = None
        self._last_rechoke = 0.0
        self._checked = False
        self._closed = False
        self.trackers = TrackerLink(
            info_hash=self.info_hash,
            peer_id=session.peer_id,
            tiers=metainfo.trackers if metainfo is not None else (),
            private=info.private,
            stats=self._announce_stats,
            on_peers=self.add_peers,
            listen_port=lambda: session.listen_port,
            http=lambda: session.http,
            udp_blocked=lambda: udp_block_reason(session.settings.network),
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Check existing data once, then download or seed unless paused."""
        if not self._checked:
            await self._check()
        if self.state == TorrentState.ERROR:
            return
        if self.paused:
            self._set_state(TorrentState.PAUSED)
            return
        if (held := self.session.queue.hold(self)) is not None:  # no free slot, or moving
            await self.suspend(held)
            return
        if self._done():
            self._set_state(TorrentState.SEEDING)
            self._spawn(self.storage.create_empty_files())
        else:
            self._set_state(TorrentState.DOWNLOADING)
        self.active_since = time.monotonic()
        self.webseeds.start()  # BEP 19; idle while seeding, cancelled by _stop_activity
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._tick_loop(), name=f"tick-{self.name}")
            if (dht_job := torrent_dht_job(self)) is not None:  # get_peers + announce cycle
                self._spawn(dht_job)
        await self.trackers.start()

    def _announce_stats(self) -> AnnounceStats:
        return AnnounceStats(
            uploaded=self.up.total, downloaded=self.down.total, left=self.picker.wanted_remaining()
        )

    async def _check(self) -> None:
        self._set_state(TorrentState.CHECKING)
        try:

            def progress(done: int, total: int) -> None:
                self.checking_progress = done / total if total else 1.0

            verified = await initial_check(self, progress)  # resume data, else a recheck
        except StorageError as exc:
            self._fail(str(exc))
            return
        for index, ok in enumerate(verified):
            if ok:
                self.picker.set_have(index)
        self.checking_progress = 1.0
        self._checked = True

    async def pause(self) -> None:
        self.paused = True
        await self._stop_activity()
        if self.state != TorrentState.ERROR:
            self._set_state(TorrentState.PAUSED)

    async def suspend(self, state: TorrentState) -> None:
        """Stop without the user's pause, waiting in ``state`` (queued, moving) until the
        session's queue (queue_service.py) calls :meth:`start` again."""
        if self.state in (TorrentState.DOWNLOADING, TorrentState.SEEDING):
            await self._stop_activity()
        if self.state != TorrentState.ERROR and not self.paused:
            self._set_state(state)

    def _make_storage(self, save_path: Path) -> TorrentStorage:
        cfg = self.session.settings
        return TorrentStorage(
            self.info,
            save_path,
            preallocate=cfg.disk.preallocate,
            max_open_files=cfg.disk.max_open_files,
            executor=self.session.executor,
            write_cache_bytes=cfg.disk.write_cache_mb * 1024 * 1024,
            read_cache=self.session.read_cache.cache(),
            write_mode=cfg.disk.write_mode,
        )

    def relocate(self, save_path: Path) -> None:
        """Use the files under ``save_path`` from now on (storage/move.py moved them there)."""
        self.save_path = save_path
        self.storage = self._make_storage(save_path)
        self.storage.set_file_priorities(self.file_priorities)

    async def resume(self) -> None:
        if self._stopping is not None:
            # the stop an error started must be over first: finishing later, it would cancel
            # the restarted torrent's tasks and close its new connections
            await asyncio.shield(self._stopping)
            self._stopping = None
        self.paused = False
        if self.state == TorrentState.ERROR:
            self.error = None
            self._set_state(TorrentState.PAUSED)  # else start() sees ERROR and does nothing
        await self.start()

    async def force_recheck(self) -> None:
        was_paused = self.paused
        await self._stop_activity()
        self.picker = PiecePicker(
            self.info.num_pieces, self.info.piece_length, self.info.total_length
        )
        self.picker.set_piece_priorities(self.layout.piece_priorities(self.file_priorities))
        self._checked = False
        self.error = None
        self.paused = was_paused
        await self.start()

    async def close(self, *, delete_files: bool = False) -> None:
        self._closed = True
        await self._stop_activity()
        try:
            await self.storage.close()
        except StorageError as exc:
            # e.g. still no space: the unwritten blocks are lost and will be downloaded again;
            # raising here would stop the session from closing the other torrents
            log.warning("%s: closing with unwritten data: %s", self.name, exc)
        if delete_files:
            await self.storage.delete_files()

    async def _stop_activity(self, *, finish_hashing: bool = True) -> None:
        # tick and connections first, before any await: blocks arriving while the trackers
        # hear "stopped" would complete pieces a closing torrent can no longer hash, and with
        # no tick task nothing dials again (_connect_more)
        tick, self._tick_task = self._tick_task, None
        if tick is not None:
            tick.cancel()
        for conn in list(self.peers):
            conn.close("torrent stopped")
        self.candidates.extend((h, p, "reconnect") for h, p in self.known_peers)
        if tick is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await tick
        await self.trackers.stop()
        me = asyncio.current_task()  # _fail runs us as one of our own tasks: never await self
        # complete pieces already hashing (from memory, on a thread) are let finish: a pause
        # keeps and claims what it verified instead of leaving it to the next start's check
        # (blocks a closed connection had already read can still complete pieces meanwhile:
        # wait until no hash is left, not only for the ones running now)
        while finish_hashing and (verifying := [t for t in self._verify_tasks if t is not me]):
            await asyncio.gather(*verifying, return_exceptions=True)
        # a cancelled write or hash loses its piece's bookkeeping: those pieces start over
        at_risk = set(self._hashing)
        others = [t for t in self._tasks if t is not me]
        for task in others:
            task.cancel()
        if others:
            await asyncio.gather(*others, return_exceptions=True)
        for piece in at_risk:
            if not self.picker.have[piece]:
                self.picker.piece_failed(piece)
        self._hashing.clear()
        if self.active_since is not None:
            self.active_seconds += time.monotonic() - self.active_since
            self.active_since = None
        with contextlib.suppress(StorageError):
            await self.storage.flush()

    def _set_state(self, new: TorrentState) -> None:
        if new != self.state:
            old, self.state = self.state, new
            self.session.events.publish(
                ev.TorrentStateChanged(info_hash=self.info_hash_hex, old=old, new=new)
            )

    def _fail(self, message: str) -> None:
        """Put this torrent (only this one) in the error state with a message for the user."""
        if self.state == TorrentState.ERROR:
            return  # concurrent writes fail together: the first message is the one to show
        log.error("%s: %s", self.name, message)
        self.error = message
        self._set_state(TorrentState.ERROR)
        self.session.events.publish(ev.TorrentError(info_hash=self.info_hash_hex, message=message))
        # after an error the pending hashes are not awaited: their writes would fail the same
        # way, and could still be failing after the user has resumed the torrent
        self._stopping = self._spawn(self._stop_activity(finish_hashing=False))

    def _done(self) -> bool:
        return self.picker.is_finished()

    def _spawn(self, coro: Any) -> asyncio.Task[Any] | None:
        if self._closed:  # a closed torrent starts nothing: the disk pool may be gone already
            coro.close()
            return None
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.name, exc_info=task.exception())

    # -- settings -------------------------------------------------------------------------
    def _set_file_priorities(self, priorities: Sequence[int]) -> None:
        if len(priorities) != len(self.info.files):
            raise ValueError(
                f"expected {len(self.info.files)} file priorities, got {len(priorities)}"
            )
        self.file_priorities = [max(0, min(7, int(p))) for p in priorities]
        piece_prios = self.layout.piece_priorities(self.file_priorities)
        self.picker.set_piece_priorities(piece_prios)
        self.storage.set_file_priorities(self.file_priorities)
        self._wanted_bytes = sum(
            self.info.piece_size(i) for i, prio in enumerate(piece_prios) if prio > 0
        )

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        self._set_file_priorities(priorities)
        for ps in self.peers.values():
            self._update_interest(ps)
        if self.state == TorrentState.SEEDING and not self._done():
            self._set_state(TorrentState.DOWNLOADING)
        elif self.state == TorrentState.DOWNLOADING and self._done():
            self._on_finished()

    def set_limits(self, download: int | None = None, upload: int | None = None) -> None:
        if download is not None:
            self.down_bucket.set_rate(download)
        if upload is not None:
            self.up_bucket.set_rate(upload)

    # -- peers: connecting ------------------------------------------------------------------
    def add_peers(self, addresses: Sequence[tuple[str, int]], source: str) -> None:
        for host, port in addresses:
            key = (host, port)
            # a manual "add peer" retries a known peer that dropped (_connect_more skips live ones)
            known = key in self.known_peers and source != "manual"
            if known or host in self.banned or not 0 < port < 65536:
                continue
            if self.session.is_blocked(host):
                continue
            self.known_peers.add(key)
            self.candidates.append((host, port, source))
        self._order_candidates()
        self._connect_more()

    def _order_candidates(self) -> None:
        """BEP 40: dial in canonical peer priority order, so swarms converge on the same mesh.

        Needs our own address as peers see it (learnt from their ``yourip``); until then the
        order of arrival is kept.
        """
        me = self.session.external_ip
        if me is None or len(self.candidates) < 2:
            return
        ours = (me, self.session.listen_port)

        def priority(candidate: tuple[str, int, str]) -> int:
            try:
                return peer_priority(ours, (candidate[0], candidate[1]))
            except ValueError:  # other address family: after the comparable ones
                return -1

        self.candidates = deque(sorted(self.candidates, key=priority, reverse=True))

    def _connect_more(self) -> None:
        if self.state not in (TorrentState.DOWNLOADING, TorrentState.SEEDING):
            return
        if self._tick_task is None:
            return  # stopping (pause, recheck): keep the reconnect candidates for the restart
        limit = self.session.settings.network.max_peers_per_torrent
        while self.candidates and len(self.peers) + len(self.connecting) < limit:
            if not self.session.can_open_connection():
                break
            host, port, source = self.candidates.popleft()
            if (host, port) in self.connecting or host in self.banned:
                continue
            if any(c.address == (host, port) for c in self.peers):
                continue
            self.connecting.add((host, port))
            self._spawn(self._connect(host, port, source))

    async def _connect(
        self, host: str, port: int, source: str, encryption: EncryptionPolicy | None = None
    ) -> None:
        # 'enabled' dials MSE first; a peer that drops it mid-handshake gets one plain retry
        policy = encryption or self.session.settings.security.encryption
        retry_plain = False
        timeout = self.session.settings.network.connect_timeout
        self.session.half_open += 1
        conn: PeerConnection | None = None

        def factory() -> PeerConnection:
            made = PeerConnection(
                peer_id=self.session.peer_id,
                lookup=self.session.lookup_torrent,
                outgoing_info_hash=self.info_hash,
                encryption=policy,
            )
            # set before any byte arrives: on loopback the handshake reply can be handled
            # before create_connection returns, and the peer would show up as "incoming"
            made.state = source
            return made

        try:
            _, connected = await asyncio.wait_for(
                # the proxy when set; else uTP first, TCP after a head start (net/proxy_dial.py)
                dial_peer(self.session, factory, host, port, timeout),
                timeout,
            )
            conn = connected
            self.session.half_open -= 1
            hs_timeout = self.session.settings.network.handshake_timeout
            await asyncio.wait_for(asyncio.shield(conn.handshake_done), hs_timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            log.debug("%s: connect to %s:%d failed: %s", self.name, host, port, exc)
            if conn is None:
                self.session.half_open -= 1
            else:
                retry_plain = policy == "enabled" and conn.mse_pending
                conn.close("handshake timeout")
            if not retry_plain:
                self._schedule_retry((host, port), source)
        except asyncio.CancelledError:  # torrent stopped: undo what the except above would
            if conn is None:
                self.session.half_open -= 1
            else:
                conn.close("torrent stopped")
            raise
        finally:
            if not retry_plain:
                self.connecting.discard((host, port))
        if retry_plain:
            await self._connect(host, port, source, "disabled")

    # -- peers: PeerHandler -----------------------------------------------------------------
    def on_peer_connected(self, conn: PeerConnection) -> str | None:
        if self.state not in (TorrentState.DOWNLOADING, TorrentState.SEEDING):
            return "torrent not active"
        host = conn.address[0]
        if self.session.is_blocked(host):
            return "blocked by the IP filter"
        if (ban_reason := self.banned.get(host)) is not None:  # session-wide, expiring
            return f"banned: {ban_reason}"
        limit = self.session.settings.network.max_peers_per_torrent
        if len(self.peers) >= limit:
            return "too many peers for this torrent"
        if not conn.outgoing and not self.session.can_accept_peer():
            return "too many peers in session"
        source = conn.state if isinstance(conn.state, str) else "incoming"
        now = time.monotonic()
        ps = PeerState(
            conn=conn,
            bitfield=Bitfield(self.info.num_pieces),
            source=source,
            connected_at=now,
            last_received=now,
            last_sent=now,
        )
        ps.down_bucket, ps.up_bucket = self.session.peer_buckets()
        self.peers[conn] = ps
        self.known_peers.add(conn.address)
        self._failures.pop(conn.address, None)
        self.guard.on_connected(host, now)
        self._send_greeting(ps)
        return None

    def _send_greeting(self, ps: PeerState) -> None:
        conn = ps.conn
        remote = conn.remote
        assert remote is not None
        parts: list[bytes] = []
        if remote.supports_extended:
            hs = self.extensions.handshake(
                client=self.session.client_name,
                listen_port=self.session.listen_port or None,
                reqq=MAX_UPLOAD_QUEUE,
                yourip=_compact_ip(conn.address[0]),
            )
            parts.append(wire.encode_extended(0, encode_extension_handshake(hs)))
        have = self.picker.have
        if ps.fast:
            if have.all():
                parts.append(wire.encode_have_all())
            elif not have.any():
                parts.append(wire.encode_have_none())
            else:
                parts.append(wire.encode_bitfield(have.to_bytes()))
            ps.allowed_fast_out = set(
                allowed_fast_set(conn.address[0], self.info_hash, self.info.num_pieces)
            )
            parts.extend(wire.encode_allowed_fast(i) for i in sorted(ps.allowed_fast_out))
        elif have.any():
            parts.append(wire.encode_bitfield(have.to_bytes()))
        if parts:
            conn.send(b"".join(parts))
        self._maybe_unchoke_new(ps)

    def _schedule_retry(
        self, address: tuple[str, int], source: str, *, productive: bool = False
    ) -> None:
        """Dial ``address`` again later, backing off; give up (and forget it) after a few tries.

        ``productive``: the connection that ended had delivered payload; its first retry comes
        after :data:`PRODUCTIVE_RETRY_DELAY` and the back-off starts over from there.
        """
        if address[0] in self.banned or self.session.is_blocked(address[0]):
            return
        if productive:
            self._failures[address] = 0
            self._retry_due[address] = (time.monotonic() + PRODUCTIVE_RETRY_DELAY, source)
            return
        failures = self._failures.get(address, 0) + 1
        if failures > RETRY_MAX_TRIES:
            self._failures.pop(address, None)
            self.known_peers.discard(address)  # a tracker or PEX may offer it again
            return
        self._failures[address] = failures
        delay = min(RETRY_BASE * 2 ** (failures - 1), RETRY_MAX_DELAY)
        self._retry_due[address] = (time.monotonic() + delay, source)

    def _requeue_due(self, now: float) -> None:
        due = [a for a, (when, _) in self._retry_due.items() if when <= now]
        live = {c.address for c in self.peers} | self.connecting
        for address in due:
            _, source = self._retry_due.pop(address)
            if address not in live:
                self.candidates.append((address[0], address[1], source))

    def on_peer_closed(self, conn: PeerConnection, reason: str) -> None:
        ps = self.peers.pop(conn, None)
        if ps is None:
            return
        if ps.pending_down:
            self._count_down(ps)
        self.guard.on_closed(conn.address[0], reason, time.monotonic())
        # only outgoing peers: an incoming peer's address has an ephemeral port
        retry = conn.outgoing and not reason.startswith(NO_RETRY_REASONS)
        if retry and not (ps.is_seed and self.picker.is_seed()):
            self._schedule_retry(conn.address, ps.source, productive=ps.down.total > 0)
        self.picker.peer_lost(conn)
        self.extensions.on_peer_closed(conn)
        ps.requests.clear()
        ps.upload_queue.clear()
        if ps.resume_timer is not None:
            ps.resume_timer.cancel()
        if ps.budget.timer is not None:
            ps.budget.timer.cancel()
        if ps.upload_task is not None:
            ps.upload_task.cancel()
        self.session.events.publish(
            ev.PeerDisconnected(
                info_hash=self.info_hash_hex, address=conn.address_text, reason=reason
            )
        )
        self._connect_more()

    def on_peer_writable(self, conn: PeerConnection) -> None:
        ps = self.peers.get(conn)
        if ps is not None:
            self._pump_uploads(ps)

    def on_peer_event(self, conn: PeerConnection, event: wire.Event) -> None:
        ps = self.peers.get(conn)
        if ps is None:
            return
        now = time.monotonic()
        ps.last_received = now
        match event:
            case wire.Piece():
                self._on_blocks(ps, [(event.index, event.begin, event.data)], now)
            case wire.Request():
                self._on_request(ps, event)
            case wire.Have():
                self._on_have(ps, event.index)
            case wire.Bitfield():
                try:
                    bf = Bitfield.from_bytes(event.data, self.info.num_pieces)
                except BitfieldError as exc:
                    raise ProtocolError(f"bad bitfield: {exc}") from exc
                self._on_bitfield(ps, bf)
            case wire.HaveAll():
                self._on_bitfield(ps, Bitfield.full(self.info.num_pieces))
            case wire.HaveNone():
                self._on_bitfield(ps, Bitfield(self.info.num_pieces))
            case wire.Choke():
                ps.peer_choking = True
                if not ps.fast:
                    # without the fast extension a choke silently drops our requests
                    self._abort_requests(ps)
            case wire.Unchoke():
                ps.peer_choking = False
                self._fill_requests(ps)
            case wire.Interested():
                ps.peer_interested = True
                self._maybe_unchoke_new(ps)
            case wire.NotInterested():
                ps.peer_interested = False
            case wire.Cancel():
                self._on_cancel(ps, event)
            case wire.RejectRequest():
                if ps.requests.pop((event.index, event.begin), None) is not None:
                    self.picker.abort_request(conn, event.index, event.begin)
                    self._fill_requests(ps)
            case wire.AllowedFast():
                if 0 <= event.index < self.info.num_pieces:
                    ps.allowed_fast_in.add(event.index)
                    if ps.peer_choking:
                        self._fill_requests(ps)
            case wire.SuggestPiece() | wire.KeepAlive() | wire.Port():
                pass
            case wire.Extended():
                self._on_extended(ps, event)
            case wire.HashTransfer():
                self.hash_server.on_message(conn, event)
            case _:
                pass

    def _on_extended(self, ps: PeerState, msg: wire.Extended) -> None:
        if msg.ext_id == 0:
            hs = decode_extension_handshake(msg.payload)
            ps.extensions = hs
            if hs.client:
                ps.client = hs.client[:64]
            if hs.yourip is not None and len(hs.yourip) in (4, 16):
                self.session.external_ip = ipaddress.ip_address(hs.yourip).compressed
            if hs.reqq:
                ps.reqq = max(1, min(hs.reqq, 2000))
            self.extensions.on_handshake(ps.conn, hs)
        else:
            self.extensions.on_message(ps.conn, msg.ext_id, msg.payload)

    # -- peers: availability and interest --------------------------------------------------------
    def _on_have(self, ps: PeerState, index: int) -> None:
        if not 0 <= index < self.info.num_pieces:
            raise ProtocolError(f"have for piece {index} out of range")
        if ps.bitfield[index]:
            return
        ps.bitfield.set(index)
        self.picker.peer_have(ps.conn, index)
        if self._seed_to_seed(ps):
            return
        if not ps.am_interested and self._wants(index):
            self._set_interested(ps, True)
        self._fill_requests(ps)

    def _on_bitfield(self, ps: PeerState, bf: Bitfield) -> None:
        if ps.conn.parser.bitfield_messages > 1:
            # a late bitfield/have-none (aria2 sends both) adds pieces, never takes them away
            merged = ps.bitfield.copy()
            for i in bf.iter_set():
                merged.set(i)
            bf = merged
        ps.bitfield = bf
        if bf.all():
            self.picker.peer_have_all(ps.conn)
        elif bf.any():
            self.picker.peer_bitfield(ps.conn, bf)
        else:
            self.picker.peer_have_none(ps.conn)
        if self._seed_to_seed(ps):
            return
        self._update_interest(ps)
        self._fill_requests(ps)

    def _seed_to_seed(self, ps: PeerState) -> bool:
        if ps.is_seed and self.picker.is_seed():
            ps.conn.close("both are seeds")
            return True
        return False

    def _wants(self, index: int) -> bool:
        return not self.picker.have[index] and self.picker.piece_priority(index) > 0

    def _update_interest(self, ps: PeerState) -> None:
        self._set_interested(ps, not self.picker.is_finished() and self.picker.interesting(ps.conn))

    def _set_interested(self, ps: PeerState, value: bool) -> None:
        if ps.am_interested != value:
            ps.am_interested = value
            ps.conn.send(wire.encode_interested() if value else wire.encode_not_interested())

    # -- downloading ---------------------------------------------------------------------
    def _queue_depth(self, ps: PeerState, now: float) -> int:
        rate = ps.down.rate(now)
        if rate > 0:
            depth = int(rate * REQUEST_QUEUE_TIME / BLOCK)
        else:
            # no rate measured yet (the first half second of data): slow start, one more
            # request per block received, so a fast peer is not held to MIN for that long
            depth = MIN_QUEUE_DEPTH + ps.down.total // BLOCK
        cap = self.session.settings.network.max_outstanding_requests  # the hard cap
        return max(min(MIN_QUEUE_DEPTH, cap), min(depth, ps.reqq, cap))

    def _fill_requests(self, ps: PeerState, *, top_up: bool = False) -> None:
        """Request blocks up to the peer's queue depth.

        ``top_up`` (after a read delivered blocks): wait until a quarter of the queue is free,
        so a fast peer gets one large batch of requests per several reads, not a small send
        (a syscall, and on loopback the peer's whole receive path) per read.

        Under a download limit the requests are paid from the token buckets as they are sent
        (``DownloadBudget``): only what the limit allows for the next moment is in flight, so
        the peer sends at the limited rate instead of delivering the whole pipeline at once.
        """
        if not ps.am_interested or ps.conn.closed or self.state != TorrentState.DOWNLOADING:
            return
        allowed: set[int] | None = None
        if ps.peer_choking:
            if not ps.allowed_fast_in:
                return
            allowed = ps.allowed_fast_in
        now = time.monotonic()
        depth = self._queue_depth(ps, now)
        want = depth - len(ps.requests)
        if want <= 0 or (top_up and want < depth >> 2 and ps.requests):
            return
        buckets = self._down_buckets(ps)
        if buckets is not None:
            want = self._budget_requests(ps, buckets, want)
            if want <= 0:
                return
        blocks = self.picker.pick(ps.conn, want, allowed_fast_only=allowed)
        if not blocks:
            if ps.haves:
                self._flush_haves(ps)
            if not ps.requests:
                self._update_interest(ps)
            return
        parts = [wire.encode_have(i) for i in ps.haves]
        ps.haves.clear()
        requests = ps.requests
        for b in blocks:
            requests[(b.piece, b.begin)] = (b.length, now)
        parts.append(wire.encode_requests(blocks))
        ps.conn.send(b"".join(parts))
        ps.last_sent = now
        if buckets is not None:
            self._charge_requests(ps, buckets, sum(b.length for b in blocks))

    def _down_buckets(self, ps: PeerState) -> tuple[TokenBucket, ...] | None:
        """The download buckets that apply to ``ps``, or None when none limits it."""
        if not TokenBucket.limited_count or (
            self.down_bucket.unlimited
            and ps.down_bucket.unlimited
            and self.session.down_bucket.unlimited
        ):
            return None
        return (self.down_bucket, self.session.down_bucket, ps.down_bucket)

    def _budget_requests(self, ps: PeerState, buckets: tuple[TokenBucket, ...], want: int) -> int:
        """``want`` cut to what the buckets allow now; if that is nothing, wake up later."""
        loop = asyncio.get_running_loop()
        now = loop.time()  # the clock RateLimiter uses for the same buckets
        outstanding = sum(length for length, _ in ps.requests.values())
        allowed = min(want, ps.budget.allowance(buckets, outstanding, BLOCK, now))
        if allowed <= 0:
            self._wake_for_budget(ps, buckets, now)
        return allowed

    def _charge_requests(self, ps: PeerState, buckets: tuple[TokenBucket, ...], size: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        ps.budget.charge(buckets, size, now)
        if min(b.available(now) for b in buckets) <= 0:
            self._wake_for_budget(ps, buckets, now)  # more wanted: ask again once repaid

    def _wake_for_budget(self, ps: PeerState, buckets: tuple[TokenBucket, ...], now: float) -> None:
        if ps.budget.timer is None:
            delay = ps.budget.wake_delay(buckets, now)
            ps.budget.timer = asyncio.get_running_loop().call_later(delay, self._budget_wake, ps)

    def _budget_wake(self, ps: PeerState) -> None:
        ps.budget.timer = None
        self._fill_requests(ps)

    def _flush_haves(self, ps: PeerState) -> None:
        ps.conn.send(b"".join(wire.encode_have(i) for i in ps.haves))
        ps.haves.clear()

    def _abort_requests(self, ps: PeerState) -> None:
        for piece, begin in ps.requests:
            self.picker.abort_request(ps.conn, piece, begin)
        ps.requests.clear()

    def on_peer_pieces(
        self, conn: PeerConnection, blocks: list[tuple[int, int, memoryview]]
    ) -> None:
        """A run of blocks from one read, as views of the receive buffer (no ``wire.Piece``)."""
        ps = self.peers.get(conn)
        if ps is not None:
            now = time.monotonic()
            ps.last_received = now
            self._on_blocks(ps, blocks, now)

    def _on_blocks(
        self, ps: PeerState, blocks: Sequence[tuple[int, int, bytes | memoryview]], now: float
    ) -> None:
        """Take a run of blocks from ``ps``: keep what we asked for and still need, waste the rest.

        A 1 MiB read carries ~64 blocks, and this loop runs 64 Ki times per GiB on the
        event-loop thread, the download's critical path: the per-read bookkeeping (metering,
        rate-limit backstop, request refill, ``storage.hash_ahead`` for each piece the run
        touched) is done once per run, and per block there is one picker call and one
        :meth:`store_block`.
        """
        ps.last_block = now
        ps.snubbed = False
        requests = ps.requests
        accept = self.picker.accept_block
        conn = ps.conn
        total = 0
        stored = False
        touched: list[int] = []
        last = -1
        try:
            for index, begin, data in blocks:
                size = len(data)
                total += size
                requested = requests.pop((index, begin), None)
                accepted = None
                if requested is not None and requested[0] == size:
                    accepted = accept(conn, index, begin)  # None: not new
                if accepted is None:
                    self.wasted += size
                    if requested is not None:
                        # a short or long answer used the request up: the block is free to
                        # ask again (the picker would otherwise wait for it from this peer)
                        self.picker.abort_request(conn, index, begin)
                    self._fill_requests(ps)
                    continue
                if index != last:
                    touched.append(index)
                    last = index
                self.store_block(index, begin, data, accepted)
                stored = True
        except StorageError:
            return  # the torrent is in error now: the rest of the run is moot
        finally:
            for index in touched:  # its new blocks are hot in this core's cache: see hash_ahead
                self.storage.hash_ahead(index)
            ps.pending_down += total  # metered once per read (on_peer_batch_end), not per block
            self._throttle_download(ps, total)  # wasted bytes used the bandwidth all the same
        if stored:
            ps.refill = True  # requests are topped up once per read, not once per block

    def store_block(
        self,
        index: int,
        begin: int,
        data: bytes | memoryview,
        accepted: tuple[bool, Sequence[tuple[Hashable, BlockRequest]]],
    ) -> asyncio.Task[None] | None:
        """What every accepted block goes through, from a peer or a web seed: cancel the
        copies requested from other peers, cache it, relieve the disk cache, and start hashing
        a piece it completed (that task is returned, so a web seed can learn the verdict).

        Raises :class:`StorageError` after putting the torrent in error (the block is lost).
        """
        complete, cancels = accepted
        for other, req in cancels:
            ops = self.peers.get(other)  # type: ignore[call-overload]
            if ops is not None and ops.requests.pop((req.piece, req.begin), None) is not None:
                ops.conn.send(wire.encode_cancel(req.piece, req.begin, req.length))
        try:
            crowded = self.storage.cache_block(index, begin, data)  # copies a view it is given
        except StorageError as exc:
            self.picker.piece_failed(index)
            self._fail(f"{exc} (torrent paused; resume to retry)")
            raise
        if crowded and not self._relieving:
            # disk back-pressure: nobody's blocks are read until the cache is within budget
            self._relieving = True
            for other in self.peers.values():
                other.conn.pause_reading("disk")
            self._spawn(self._relieve_cache())
        if not complete or index in self._hashing:
            return None
        self._hashing.add(index)
        task = self._spawn(self._verify(index))
        if task is not None:
            self._verify_tasks.add(task)
            task.add_done_callback(self._verify_tasks.discard)
        return task

    def on_peer_batch_end(self, conn: PeerConnection) -> None:
        """All messages of one read are handled: send the requests they made room for."""
        ps = self.peers.get(conn)
        if ps is None:
            return
        if ps.pending_down:
            self._count_down(ps)
        if ps.refill:
            ps.refill = False
            self._fill_requests(ps, top_up=True)

    def _count_down(self, ps: PeerState) -> None:
        """Add the current read's block bytes to the peer's, torrent's and session's meters."""
        size, ps.pending_down = ps.pending_down, 0
        now = time.monotonic()
        ps.down.add(size, now)
        self.down.add(size, now)
        self.session.down.add(size, now)

    def _throttle_download(self, ps: PeerState, size: int) -> None:
        """The backstop: bytes that arrive beyond what their requests prepaid pause reading."""
        # per block: one class attribute when no bucket in the process has a rate
        if not TokenBucket.limited_count or (
            self.down_bucket.unlimited
            and ps.down_bucket.unlimited
            and self.session.down_bucket.unlimited
        ):
            return
        buckets = (self.down_bucket, self.session.down_bucket, ps.down_bucket)
        loop = asyncio.get_running_loop()
        now = loop.time()  # the clock RateLimiter uses for the same buckets
        delay = ps.budget.on_block(buckets, size, now)
        if delay > 0.001:
            # one read can carry many blocks: keep a single timer, for the latest debt
            ps.conn.pause_reading()
            if ps.resume_timer is not None:
                ps.resume_timer.cancel()
            ps.resume_timer = loop.call_later(delay, ps.conn.resume_reading)

    async def _relieve_cache(self) -> None:
        """Bring the write cache within budget (storage.relieve_pressure), then read again.

        One such task at a time; every peer's reading is paused while it runs.
        """
        try:
            await self.storage.relieve_pressure()
        except StorageError as exc:
            self._fail(f"{exc} (torrent paused; resume to retry)")
        finally:
            self._relieving = False
            for ps in self.peers.values():
                ps.conn.resume_reading("disk")

    async def _verify(self, piece: int) -> None:
        evidence = self.guard.before_hash(piece)  # who sent which block, for smart ban
        try:
            ok = await self.storage.hash_piece(piece)
        except StorageError as exc:
            # the piece stays complete-but-unverified otherwise, and is never hashed again
            self.picker.piece_failed(piece)
            self._fail(f"{exc} (torrent paused; resume to retry)")
            return
        finally:
            self._hashing.discard(piece)
        if ok:
            self.picker.piece_passed(piece)
            self.guard.piece_passed(piece, evidence)
            have = wire.encode_have(piece)
            for ps in list(self.peers.values()):
                if ps.requests and ps.bitfield[piece]:
                    ps.haves.append(piece)
                else:
                    ps.conn.send(have)
                if ps.am_interested and not ps.requests:
                    self._fill_requests(ps)
            if self._done():
                self._on_finished()
            return
        self.hash_failures += 1
        self.wasted += self.info.piece_size(piece)
        contributors = self.picker.piece_failed(piece)
        addresses = []
        for conn in contributors:
            ps = self.peers.get(conn)  # type: ignore[call-overload]
            if ps is None:
                continue
            addresses.append(ps.conn.address_text)
            ps.hash_fails += 1
        # sole contributors are charged, shared pieces wait for smart ban (security/reputation.py)
        self.guard.piece_failed(piece, evidence)
        self.session.events.publish(
            ev.PieceHashFailed(info_hash=self.info_hash_hex, piece=piece, peers=tuple(addresses))
        )
        for ps in list(self.peers.values()):
            self._fill_requests(ps)

    def _ban(self, ps: PeerState, reason: str) -> None:
        """Ban the peer's address in every torrent of the session for security.ban_duration."""
        self.guard.ban(ps.conn.address[0], reason)

    def _on_finished(self) -> None:
        self._set_state(TorrentState.SEEDING)
        self._spawn(self.storage.create_empty_files())
        self._spawn(self.trackers.completed())
        self.session.events.publish(
            ev.TorrentFinished(info_hash=self.info_hash_hex, name=self.name)
        )
        self._spawn(self._flush_quietly())
        for ps in list(self.peers.values()):
            self._set_interested(ps, False)
            self._seed_to_seed(ps)

    async def _flush_quietly(self) -> None:
        try:
            await self.storage.flush()
        except StorageError as exc:
            self._fail(str(exc))

    # -- uploading ------------------------------------------------------------------------
    def on_peer_requests(self, conn: PeerConnection, requests: list[tuple[int, int, int]]) -> None:
        """A run of REQUEST messages from one read (the parser batches them; see wire.WireSink).

        The common case (a piece we have, the peer unchoked, room in its queue) is checked
        inline and queued, one upload pump for the whole run; anything else takes
        :meth:`_on_request`, the per-request path with the flood check and the rejects.
        """
        ps = self.peers.get(conn)
        if ps is None:
            return
        ps.last_received = time.monotonic()
        have = self.picker.have
        num_pieces = self.info.num_pieces
        piece_size = self.info.piece_size
        queue = ps.upload_queue
        on_request = self.guard.on_request
        host = conn.address[0]
        for index, begin, length in requests:
            if (
                index < num_pieces
                and have[index]
                and (not ps.am_choking or index in ps.allowed_fast_out)
                and len(queue) < MAX_UPLOAD_QUEUE
            ):
                on_request(host)
                if begin + length > piece_size(index):
                    raise ProtocolError(f"request outside piece {index}")
                queue.append(wire.Request(index, begin, length))
            else:
                self._on_request(ps, wire.Request(index, begin, length))
                if conn.closed:
                    return
        self._pump_uploads(ps)

    def _on_request(self, ps: PeerState, req: wire.Request) -> None:
        self.guard.on_request(ps.conn.address[0])
        flood = request_flood(ps, req, self.picker.have, MAX_UPLOAD_QUEUE, time.monotonic())
        if flood is not None:
            ps.conn.close(flood)
            return
        if not 0 <= req.index < self.info.num_pieces or not self.picker.have[req.index]:
            self._reject(ps, req)
            return
        if req.length <= 0 or req.begin + req.length > self.info.piece_size(req.index):
            raise ProtocolError(f"request outside piece {req.index}")
        if ps.am_choking and req.index not in ps.allowed_fast_out:
            self._reject(ps, req)
            return
        if len(ps.upload_queue) >= MAX_UPLOAD_QUEUE:
            self._reject(ps, req)
            return
        ps.upload_queue.append(req)
        self._pump_uploads(ps)

    def _reject(self, ps: PeerState, req: wire.Request) -> None:
        if ps.fast:
            ps.conn.send(wire.encode_reject(req.index, req.begin, req.length))

    def _on_cancel(self, ps: PeerState, msg: wire.Cancel) -> None:
        req = wire.Request(msg.index, msg.begin, msg.length)
        try:
            ps.upload_queue.remove(req)
        except ValueError:
            return
        self._reject(ps, req)

    def _pump_uploads(self, ps: PeerState) -> None:
        if ps.upload_task is None and ps.upload_queue and not ps.conn.write_paused:
            ps.upload_task = self._spawn(self._upload_loop(ps))

    async def _upload_loop(self, ps: PeerState) -> None:
        try:
            # serve queued requests in batches: one storage call (usually none: the chunk is
            # cached) and one write per batch, not an executor round trip per 16 KiB block
            buckets = (self.up_bucket, self.session.up_bucket, ps.up_bucket)
            while ps.upload_queue and not ps.conn.closed and not ps.conn.write_paused:
                limit = batch_bytes(buckets)
                batch = take_batch(ps.upload_queue, limit)
                reqs = [(r.index, r.begin, r.length) for r in batch]
                ahead = peek_batch(ps.upload_queue, limit * READ_AHEAD)
                self.storage.prefetch([(r.index, r.begin, r.length) for r in ahead])
                views = self.storage.cached_reads(reqs)
                if views is None:
                    try:
                        views = await self.storage.read_blocks(reqs)
                    except StorageError as exc:
                        self._fail(str(exc))
                        return
                size = sum(r.length for r in batch)
                await self.session.limiter.acquire(size, buckets)
                if ps.conn.closed:
                    return
                parts: list[bytes | memoryview] = []
                for r, view in zip(batch, views, strict=True):
                    if ps.am_choking and r.index not in ps.allowed_fast_out:
                        self._reject(ps, r)  # choked while we were reading: not sent
                        size -= r.length
                        continue
                    parts.append(wire.encode_piece_header(r.index, r.begin, r.length))
                    parts.append(view)
                if not parts:
                    continue
                now = time.monotonic()
                ps.conn.send_parts(parts)
                ps.last_sent = now
                ps.up.add(size, now)
                self.up.add(size, now)
                self.session.up.add(size, now)
        finally:
            ps.upload_task = None
        if ps.upload_queue and not ps.conn.write_paused:
            self._pump_uploads(ps)

    # -- choking --------------------------------------------------------------------------
    def _maybe_unchoke_new(self, ps: PeerState) -> None:
        """Give a newly interested peer a free upload slot now rather than at the next rechoke."""
        if not ps.peer_interested or not ps.am_choking:
            return
        unchoked = sum(1 for p in self.peers.values() if not p.am_choking)
        if unchoked < self.choker.slots:
            self._set_choke(ps, False)

    def _set_choke(self, ps: PeerState, choke: bool) -> None:
        if ps.am_choking == choke:
            return
        ps.am_choking = choke
        if choke:
            ps.conn.send(wire.encode_choke())
            kept = deque(r for r in ps.upload_queue if r.index in ps.allowed_fast_out)
            for req in ps.upload_queue:
                if req.index not in ps.allowed_fast_out:
                    self._reject(ps, req)
            ps.upload_queue = kept
        else:
            ps.conn.send(wire.encode_unchoke())

    def _rechoke(self, now: float) -> None:
        infos = [
            PeerChokeInfo(
                peer=conn,
                interested=ps.peer_interested,
                download_rate=ps.down.rate(now),
                upload_rate=ps.up.rate(now),
                snubbed=ps.snubbed,
                is_seed=ps.is_seed,
            )
            for conn, ps in self.peers.items()
        ]
        unchoke = self.choker.rechoke(infos, now, seeding=self.state == TorrentState.SEEDING)
        for conn, ps in self.peers.items():
            self._set_choke(ps, conn not in unchoke)

    # -- periodic work ------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self._tick(time.monotonic())
            except Exception:
                log.exception("%s: tick failed", self.name)

    def _tick(self, now: float) -> None:
        self._requeue_due(now)
        # disk.write_cache_mb and disk.write_mode apply live: read here, once a second
        disk = self.session.settings.disk
        self.storage.write_cache_bytes = disk.write_cache_mb * 1024 * 1024
        self.storage.write_mode = disk.write_mode
        keepalive = wire.encode_keepalive()
        idle_timeout = self.session.settings.network.peer_idle_timeout
        for ps in list(self.peers.values()):
            if now - ps.last_received > idle_timeout:
                ps.conn.close("idle timeout")
                continue
            if ps.haves:
                self._flush_haves(ps)
            if now - ps.last_sent > KEEPALIVE_INTERVAL:
                ps.conn.send(keepalive)
                ps.last_sent = now
            if ps.requests:
                oldest = min(t for _, t in ps.requests.values())
                if now - oldest > REQUEST_TIMEOUT:
                    ps.snubbed = True
                    self._abort_requests(ps)
            ps.snubbed = ps.snubbed or is_snubbed(
                ps.last_block or ps.connected_at, now, bool(ps.requests)
            )
            self._fill_requests(ps)
        if now - self._last_rechoke >= self.choker.rechoke_interval:
            self._last_rechoke = now
            self._rechoke(now)
        self.extensions.on_tick(now)
        self.guard.tick(now)
        self._connect_more()

    # -- status ---------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        total = self.wanted_bytes
        return 1.0 if total == 0 else 1.0 - self.picker.wanted_remaining() / total

    @property
    def wanted_bytes(self) -> int:
        """Bytes of the pieces we want (recomputed only when file priorities change)."""
        return self._wanted_bytes

    def time_active(self) -> float:
        running = time.monotonic() - self.active_since if self.active_since is not None else 0.0
        return self.active_seconds + running


def _compact_ip(host: str) -> bytes | None:
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        return None
