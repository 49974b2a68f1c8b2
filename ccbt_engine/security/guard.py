"""One torrent's link to the session's :class:`Reputation` and its own :class:`AnomalyDetector`.

``reputation`` and ``anomaly`` are pure; this is the thin asyncio side the torrent calls from a
few hooks: it gathers hash-failure evidence (who sent which block, and a digest of the bytes,
computed on the disk pool, never on the loop), applies bans session-wide (every torrent drops
the host's connections) and publishes :class:`~ccbt_engine.events.PeerBanned`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccbt_engine import events as ev
from ccbt_engine.security.anomaly import AnomalyDetector, AnomalyPolicy
from ccbt_engine.security.reputation import (
    Ban,
    BlockEvidence,
    Reputation,
    ReputationPolicy,
)
from ccbt_engine.storage.errors import StorageError

if TYPE_CHECKING:
    from ccbt_engine.config.model import SecuritySettings
    from ccbt_engine.torrent import Torrent

log = logging.getLogger(__name__)

#: seconds between prunes of the session's reputation table
PRUNE_INTERVAL = 60.0
#: close reasons (net/peer.py, security/peer_limits.py) that count as protocol violations
VIOLATION_REASONS = ("protocol error", "request flood")


def reputation_policy(sec: SecuritySettings) -> ReputationPolicy:
    return ReputationPolicy(
        half_life=float(sec.reputation_half_life),
        ban_duration=float(sec.ban_duration),
        hash_fail_threshold=sec.ban_after_hash_failures,
        smart_ban=sec.smart_ban,
    )


def anomaly_policy(sec: SecuritySettings) -> AnomalyPolicy:
    return AnomalyPolicy(z_threshold=float(sec.anomaly_z_threshold))


class ActiveBans(MutableMapping[str, str]):
    """host -> reason of the bans in force, read live from the session's reputation.

    A torrent's ``banned`` is this view, so every ``host in self.banned`` check sees session-wide
    bans and their expiry without more code in the torrent. Assigning bans the host session-wide
    for ``security.ban_duration`` (without closing connections); deleting lifts the ban.
    """

    def __init__(self, reputation: Reputation, clock: Callable[[], float] = time.monotonic) -> None:
        self._reputation = reputation
        self._clock = clock

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and self._reputation.is_banned(host, self._clock())

    def __getitem__(self, host: str) -> str:
        ban = self._reputation.ban_of(host, self._clock())
        if ban is None:
            raise KeyError(host)
        return ban.reason

    def __setitem__(self, host: str, reason: str) -> None:
        self._reputation.ban(host, reason, self._clock())

    def __delitem__(self, host: str) -> None:
        if not self._reputation.unban(host):
            raise KeyError(host)

    def __iter__(self) -> Iterator[str]:
        return iter([b.host for b in self._reputation.bans(self._clock())])

    def __len__(self) -> int:
        return len(self._reputation.bans(self._clock()))


@dataclass(frozen=True, slots=True)
class Evidence:
    """Taken just before a piece is hashed: who sent each block and the cached bytes."""

    #: block index -> connection whose data was kept
    senders: dict[int, Hashable]
    #: offset in the piece -> block bytes still in the write cache (references, not copies)
    blocks: dict[int, bytes | memoryview]

    def hosts(self) -> dict[int, str]:
        """Block index -> sender's host (for attributing a failed piece block by block)."""
        out: dict[int, str] = {}
        for block, conn in self.senders.items():
            host = _host_of(conn)
            if host is not None:
                out[block] = host
        return out

    def host_counts(self) -> dict[str, int]:
        """Host -> how many of the piece's blocks it sent.

        Runs on the event loop for every verified piece, so it resolves each *connection* once
        rather than each block (64 per MiB): usually one peer sent the whole piece.
        """
        senders = self.senders
        conns = set(senders.values())
        per_conn: dict[Hashable, int] = (
            {conns.pop(): len(senders)} if len(conns) == 1 else Counter(senders.values())
        )
        out: dict[str, int] = {}
        for conn, n in per_conn.items():
            host = _host_of(conn)
            if host is not None:
                out[host] = out.get(host, 0) + n
        return out


def _host_of(conn: Hashable) -> str | None:
    """The host part of a connection's address (None for anything without one)."""
    address = getattr(conn, "address", None)
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None


def _digests(blocks: dict[int, bytes | memoryview], block_size: int) -> dict[int, bytes]:
    """Block index -> SHA-1 of the block (runs on the disk pool)."""
    return {begin // block_size: hashlib.sha1(data).digest() for begin, data in blocks.items()}


class PeerGuard:
    """Reputation and anomaly hooks of one torrent."""

    def __init__(self, torrent: Torrent) -> None:
        self.torrent = torrent
        self.session = torrent.session
        self.reputation: Reputation = torrent.session.reputation
        self.anomaly = AnomalyDetector(anomaly_policy(self.session.settings.security))
        self._last_prune = 0.0

    def _sync_policy(self) -> None:
        """Settings are read where used: pick up live changes (cheap, frozen dataclasses)."""
        sec = self.session.settings.security
        policy = reputation_policy(sec)
        if policy != self.reputation.policy:
            self.reputation.policy = policy
        apolicy = anomaly_policy(sec)
        if apolicy != self.anomaly.policy:
            self.anomaly.policy = apolicy

    # -- connection events -------------------------------------------------------------------
    def on_request(self, host: str) -> None:
        self.anomaly.on_request(host)

    def on_connected(self, host: str, now: float) -> None:
        self.anomaly.on_connect(host, now)

    def on_closed(self, host: str, reason: str, now: float) -> None:
        self.anomaly.on_disconnect(host, now, violation=reason.startswith(VIOLATION_REASONS))

    # -- hashing -------------------------------------------------------------------------------
    def before_hash(self, piece: int) -> Evidence:
        t = self.torrent
        return Evidence(t.picker.block_senders(piece), t.storage.cached_blocks(piece))

    def piece_passed(self, piece: int, evidence: Evidence) -> None:
        now = time.monotonic()
        for host, n in evidence.host_counts().items():
            self.anomaly.on_blocks(host, n, 0, now)
        if self.reputation.has_pending(self.torrent.info_hash, piece):
            self.torrent._spawn(self._judge(piece, evidence))

    def piece_failed(self, piece: int, evidence: Evidence) -> None:
        now = time.monotonic()
        for host, n in evidence.host_counts().items():
            self.anomaly.on_blocks(host, 0, n, now)
        self.torrent._spawn(self._attribute(piece, evidence))

    async def _digest(self, blocks: dict[int, bytes | memoryview]) -> dict[int, bytes]:
        loop = asyncio.get_running_loop()
        size = self.torrent.picker.block_size
        return await loop.run_in_executor(self.session.executor, _digests, blocks, size)

    async def _attribute(self, piece: int, evidence: Evidence) -> None:
        self._sync_policy()
        digests: dict[int, bytes] = {}
        if self.reputation.policy.smart_ban and evidence.blocks:
            digests = await self._digest(evidence.blocks)
        blocks = {
            block: BlockEvidence(host, digests.get(block))
            for block, host in evidence.hosts().items()
        }
        for ban in self.reputation.piece_failed(
            self.torrent.info_hash, piece, blocks, time.monotonic()
        ):
            self.apply(ban)

    async def _judge(self, piece: int, evidence: Evidence) -> None:
        """Smart ban: digest the verified piece and compare with what failed before."""
        t = self.torrent
        size = t.picker.block_size
        blocks = dict(evidence.blocks)
        for block in range(t.picker.num_blocks(piece)):
            begin = block * size
            if begin not in blocks:
                try:
                    blocks[begin] = await t.storage.read_block(
                        piece, begin, t.picker.block_length(piece, begin)
                    )
                except StorageError:
                    continue  # that block is simply not judged
        good = await self._digest(blocks)
        self._sync_policy()
        now = time.monotonic()
        verdict = self.reputation.piece_passed(t.info_hash, piece, good, now)
        for host, n in verdict.innocents.items():
            self.anomaly.forgive(host, n, now)
        if verdict.culprits:
            log.info("%s: piece %d smart ban culprits %s", t.name, piece, verdict.culprits)
        for ban in verdict.bans:
            self.apply(ban)

    # -- bans --------------------------------------------------------------------------------
    def ban(self, host: str, reason: str) -> None:
        """Ban ``host`` session-wide now (an explicit decision of the torrent)."""
        self._sync_policy()
        self.apply(self.reputation.ban(host, reason, time.monotonic()))

    def apply(self, ban: Ban) -> None:
        """Close the host's connections in every torrent and publish :class:`PeerBanned`."""
        log.warning("banned %s: %s", ban.host, ban.reason)
        address = ban.host
        for torrent in list(self.session.torrents.values()):
            for conn in list(torrent.peers):
                if conn.address[0] == ban.host:
                    if torrent is self.torrent:
                        address = conn.address_text
                    conn.close(f"banned: {ban.reason}")
        self.session.events.publish(
            ev.PeerBanned(info_hash=self.torrent.info_hash_hex, address=address, reason=ban.reason)
        )

    # -- periodic ----------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Score anomalies (the detector limits itself to one evaluation per interval)."""
        self._sync_policy()
        for anomaly in self.anomaly.evaluate(now):
            reason = anomaly.describe()
            if self.reputation.is_banned(anomaly.host, now):
                continue
            log.info("%s: %s from %s", self.torrent.name, reason, anomaly.host)
            if anomaly.repeated:
                self.apply(self.reputation.ban(anomaly.host, f"repeatedly {reason}", now))
                continue
            ban = self.reputation.note_anomaly(anomaly.host, reason, now)
            if ban is not None:
                self.apply(ban)
        if now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            self.reputation.prune(now)
