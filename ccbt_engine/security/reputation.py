"""Per-IP peer reputation: decaying misbehaviour scores, expiring bans and smart-ban bookkeeping.

Pure logic (no clock, no I/O): every call takes ``now`` (``time.monotonic()`` in the engine).
One :class:`Reputation` lives on the session, so a ban covers every torrent.

**Score.** A host's score counts *failed-piece equivalents* and decays exponentially with the
half-life ``policy.half_life``: ``s(t) = s(t0) * 2 ** (-(t - t0) / half_life)``. It has three
parts, decayed together:

* ``sole``: +1 for every piece that failed with this host as the only contributor — it surely
  sent bad data (the data was hashed before it ever touched the disk);
* ``provisional``: +share (its fraction of the piece's blocks) for every failed piece it shared
  with other hosts — it *may* be guilty. Capped at half the ban level, so sharing pieces with a
  liar can never ban an honest peer on its own; smart ban removes the share when it is cleared;
* ``anomaly``: a fixed weight per statistical anomaly (``security/anomaly.py``), also capped at
  half the ban level: being unusual is a hint, not proof.

A host is banned when its score reaches ``ban_level = ban_after_hash_failures - 0.5``: the half
failure of slack lets N sole failures ban even after a little decay between them (N failures
within roughly ``half_life / (2 N)`` always ban), while N - 1 never do.

**Smart ban** (libtorrent's idea). When a piece fails, remember per block which host sent it and
a digest of what it sent. When the same piece later passes, compare: a host whose block differs
from the verified data sent corrupt data — banned at once, as proven; a host whose blocks all
match is innocent and gets its provisional share back.

**Bans** last ``policy.ban_duration`` seconds (0 = until the session ends); they expire lazily
when looked up. The score is not reset by the expiry: a repeat offender is banned again quickly.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

#: scores below this are forgotten by :meth:`Reputation.prune` (bounded memory)
NEGLIGIBLE = 0.01
#: failed pieces remembered for smart ban per torrent (oldest dropped first)
MAX_PENDING_PIECES = 512


@dataclass(frozen=True, slots=True)
class ReputationPolicy:
    """Tunables, built from ``security.*`` settings (see :func:`policy_from_settings`)."""

    #: seconds for a score to halve
    half_life: float = 1800.0
    #: seconds a ban lasts; 0 = until the session ends
    ban_duration: float = 3600.0
    #: sole failures that ban (the score's unit); 0 = never ban for bad data
    hash_fail_threshold: int = 3
    #: score added by one statistical anomaly
    anomaly_weight: float = 0.25
    #: compare blocks of failed pieces with the verified data (libtorrent's smart ban)
    smart_ban: bool = True

    @property
    def ban_level(self) -> float:
        """Score at which a host is banned (infinite when bans for bad data are off)."""
        return self.hash_fail_threshold - 0.5 if self.hash_fail_threshold > 0 else math.inf

    @property
    def partial_cap(self) -> float:
        """Most that provisional shares, or anomalies, may each add: half the ban level."""
        return 0.5 * self.ban_level if self.hash_fail_threshold > 0 else 0.5


@dataclass(frozen=True, slots=True)
class Ban:
    """A banned address, why, and until when (``until is None``: until the session ends)."""

    host: str
    reason: str
    since: float
    until: float | None

    def expired(self, now: float) -> bool:
        return self.until is not None and now >= self.until


@dataclass(frozen=True, slots=True)
class BannedPeer:
    """A ban as the facade shows it: clock-free, so it can cross a process boundary."""

    address: str
    reason: str
    #: seconds until the ban lifts; None = until the session ends
    expires_in: float | None


@dataclass(frozen=True, slots=True)
class BlockEvidence:
    """Who sent one block of a piece, and a digest of the bytes (None: data not available)."""

    host: str
    digest: bytes | None


@dataclass(frozen=True, slots=True)
class SmartBanVerdict:
    """What a passed piece proved about the hosts that had sent it bad data before."""

    #: host -> number of its blocks that differed from the verified data
    culprits: dict[str, int]
    #: host -> recorded blocks, for hosts whose every recorded block matched the verified data
    innocents: dict[str, int]
    #: bans this verdict created (a culprit already banned is not banned again)
    bans: tuple[Ban, ...]


@dataclass(slots=True)
class _Record:
    sole: float = 0.0
    provisional: float = 0.0
    anomaly: float = 0.0
    at: float = 0.0
    #: failed pieces attributed (sole or proven); not decayed, for the ban reason's wording
    hash_fails: int = 0

    @property
    def score(self) -> float:
        return self.sole + self.provisional + self.anomaly

    def decay(self, now: float, half_life: float) -> None:
        if now > self.at:
            factor = 0.5 ** ((now - self.at) / half_life) if half_life > 0 else 0.0
            self.sole *= factor
            self.provisional *= factor
            self.anomaly *= factor
        self.at = max(self.at, now)


@dataclass(slots=True)
class _FailedPiece:
    #: block -> {(host, digest)}: every distinct version of the block we received and rejected
    blocks: dict[int, set[tuple[str, bytes]]] = field(default_factory=dict)
    #: host -> provisional score it was charged for this piece (refunded if cleared)
    charged: dict[str, float] = field(default_factory=dict)


class Reputation:
    """Session-wide scores and bans by IP address (host string as the socket reports it)."""

    def __init__(self, policy: ReputationPolicy | None = None) -> None:
        self.policy = policy if policy is not None else ReputationPolicy()
        self._records: dict[str, _Record] = {}
        self._bans: dict[str, Ban] = {}
        #: torrent key -> piece -> what failed (insertion order = age)
        self._failed: dict[bytes, OrderedDict[int, _FailedPiece]] = {}

    # -- scores --------------------------------------------------------------------------
    def _record(self, host: str, now: float) -> _Record:
        rec = self._records.get(host)
        if rec is None:
            rec = self._records[host] = _Record(at=now)
        rec.decay(now, self.policy.half_life)
        return rec

    def score(self, host: str, now: float) -> float:
        """The host's decayed score in failed-piece equivalents (0 = nothing against it)."""
        rec = self._records.get(host)
        if rec is None:
            return 0.0
        rec.decay(now, self.policy.half_life)
        return rec.score

    def hash_fails(self, host: str) -> int:
        """Failed pieces attributed to the host (sole contributor or proven by smart ban)."""
        rec = self._records.get(host)
        return 0 if rec is None else rec.hash_fails

    def _maybe_ban(self, host: str, rec: _Record, reason: str, now: float) -> Ban | None:
        if rec.score >= self.policy.ban_level and not self.is_banned(host, now):
            return self.ban(host, reason, now)
        return None

    def note_anomaly(self, host: str, reason: str, now: float) -> Ban | None:
        """Lower the host's reputation for a statistical anomaly; returns a ban if it tipped over.

        Anomalies alone add at most :attr:`ReputationPolicy.partial_cap`, so they can only ban a
        host that also has bad data against it. (Extreme, repeated anomalies are banned by the
        caller with :meth:`ban`.)
        """
        rec = self._record(host, now)
        rec.anomaly = min(rec.anomaly + self.policy.anomaly_weight, self.policy.partial_cap)
        return self._maybe_ban(host, rec, f"{reason}, after earlier misbehaviour", now)

    # -- bans ----------------------------------------------------------------------------
    def ban(self, host: str, reason: str, now: float) -> Ban:
        """Ban ``host`` now; an existing ban keeps its reason and is extended."""
        duration = self.policy.ban_duration
        until = now + duration if duration > 0 else None
        old = self._bans.get(host)
        if old is not None and not old.expired(now):
            if old.until is None or (until is not None and until <= old.until):
                return old
            reason = old.reason
        ban = self._bans[host] = Ban(host, reason, now, until)
        return ban

    def unban(self, host: str) -> bool:
        """Lift a ban (the user's command); the score is forgotten too. True if it existed."""
        self._records.pop(host, None)
        return self._bans.pop(host, None) is not None

    def ban_of(self, host: str, now: float) -> Ban | None:
        """The host's ban if it is in force (an expired one is dropped here)."""
        ban = self._bans.get(host)
        if ban is not None and ban.expired(now):
            del self._bans[host]
            return None
        return ban

    def is_banned(self, host: str, now: float) -> bool:
        return self.ban_of(host, now) is not None

    def bans(self, now: float) -> list[Ban]:
        """Bans in force, oldest first."""
        for host in [h for h, b in self._bans.items() if b.expired(now)]:
            del self._bans[host]
        return sorted(self._bans.values(), key=lambda b: (b.since, b.host))

    def banned_peers(self, now: float) -> list[BannedPeer]:
        """Bans in force for the facade (oldest first)."""
        return [
            BannedPeer(b.host, b.reason, None if b.until is None else b.until - now)
            for b in self.bans(now)
        ]

    def prune(self, now: float) -> None:
        """Drop expired bans and negligible scores (call now and then)."""
        self.bans(now)
        for host in list(self._records):
            rec = self._records[host]
            rec.decay(now, self.policy.half_life)
            if rec.score < NEGLIGIBLE and host not in self._bans:
                del self._records[host]

    def __len__(self) -> int:
        """Hosts with a score or a ban (for memory checks)."""
        return len(self._records.keys() | self._bans.keys())

    # -- hash failures and smart ban ----------------------------------------------------------
    def piece_failed(
        self, torrent: bytes, piece: int, blocks: Mapping[int, BlockEvidence], now: float
    ) -> list[Ban]:
        """A piece failed its hash check; ``blocks`` says who sent each block.

        A sole contributor is charged a whole failure, others their share of the blocks
        (provisionally). With smart ban on, the digests are kept until the piece passes.
        Returns the bans this caused.
        """
        counts = Counter(e.host for e in blocks.values())
        total = sum(counts.values())
        if not total:
            return []
        record = self._pending(torrent, piece) if self.policy.smart_ban else None
        if record is not None:
            for block, e in blocks.items():
                if e.digest is not None:
                    record.blocks.setdefault(block, set()).add((e.host, e.digest))
        bans: list[Ban] = []
        for host, n in counts.items():
            rec = self._record(host, now)
            if len(counts) == 1:
                rec.sole += 1.0
                rec.hash_fails += 1
                reason = f"sent data failing the hash check {rec.hash_fails} times"
            else:
                before = rec.provisional
                rec.provisional = min(before + n / total, self.policy.partial_cap)
                if record is not None:
                    charged = record.charged.get(host, 0.0) + rec.provisional - before
                    record.charged[host] = charged
                reason = "contributed to pieces failing the hash check"
            ban = self._maybe_ban(host, rec, reason, now)
            if ban is not None:
                bans.append(ban)
        return bans

    def _pending(self, torrent: bytes, piece: int) -> _FailedPiece:
        pieces = self._failed.setdefault(torrent, OrderedDict())
        record = pieces.get(piece)
        if record is None:
            record = pieces[piece] = _FailedPiece()
            while len(pieces) > MAX_PENDING_PIECES:
                pieces.popitem(last=False)
        return record

    def has_pending(self, torrent: bytes, piece: int) -> bool:
        """Whether a failure of this piece waits for the verified data (digest it on pass)."""
        return piece in self._failed.get(torrent, ())

    def piece_passed(
        self, torrent: bytes, piece: int, good: Mapping[int, bytes], now: float
    ) -> SmartBanVerdict:
        """The piece passed: judge every host that sent a version of it that failed.

        ``good`` maps block index -> digest of the verified block (blocks missing from it are
        not judged). Culprits are banned if bans for bad data are on.
        """
        pieces = self._failed.get(torrent)
        record = pieces.pop(piece, None) if pieces is not None else None
        if pieces is not None and not pieces:
            del self._failed[torrent]
        if record is None:
            return SmartBanVerdict({}, {}, ())
        culprits: Counter[str] = Counter()
        judged: Counter[str] = Counter()
        for block, versions in record.blocks.items():
            digest = good.get(block)
            if digest is None:
                continue
            for host, sent in versions:
                judged[host] += 1
                if sent != digest:
                    culprits[host] += 1
        innocents = {h: n for h, n in judged.items() if h not in culprits}
        for host in judged:
            rec = self._record(host, now)
            refund = record.charged.get(host, 0.0)
            rec.provisional = max(0.0, rec.provisional - refund)
        bans: list[Ban] = []
        if self.policy.hash_fail_threshold > 0:
            for host, n in sorted(culprits.items()):
                rec = self._record(host, now)
                rec.hash_fails += 1
                if self.is_banned(host, now):
                    continue
                blocks = f"{n} corrupt block{'s' if n > 1 else ''}"
                reason = f"sent {blocks} of piece {piece}, which failed the hash check (smart ban)"
                bans.append(self.ban(host, reason, now))
        return SmartBanVerdict(dict(culprits), innocents, tuple(bans))

    def forget_torrent(self, torrent: bytes) -> None:
        """Drop the smart-ban records of a removed torrent (scores and bans stay)."""
        self._failed.pop(torrent, None)

    def pending_pieces(self, torrent: bytes) -> int:
        return len(self._failed.get(torrent, ()))
