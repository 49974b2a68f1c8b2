"""Choking: which peers we upload to (BEP 3 tit-for-tat).

Pure logic; the torrent calls :meth:`Choker.rechoke` every ``rechoke_interval`` seconds (see
:meth:`Choker.due`) with a snapshot of its peers and sends CHOKE/UNCHOKE for the difference.

* **Leeching**: the ``slots`` interested, non-snubbed peers that give us the most data are
  unchoked (reciprocation), plus one **optimistic unchoke** rotated every
  ``optimistic_interval`` seconds among the other interested peers, so newcomers get a chance to
  prove themselves and we discover better partners. Peers we have known for less than
  :data:`NEW_PEER_WINDOW` seconds are three times as likely to be picked (as in the original
  client): they have nothing to offer yet, and the optimistic slot is their only way in.
* **Seeding**: there is no download rate to reciprocate, so we serve the peers we upload to
  fastest (libtorrent's "fastest upload" seed choking): it maximises what the swarm gets from us
  per slot and favours peers that can pass pieces on quickly. The optimistic slot still rotates so
  slow or new peers are not starved forever.

Peers that are not interested are never unchoked: an unchoke they cannot use would only waste a
slot. Ties in rate are broken randomly so equal peers take turns across rechokes.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

__all__ = [
    "NEW_PEER_WINDOW",
    "SNUB_TIMEOUT",
    "Choker",
    "PeerChokeInfo",
    "is_snubbed",
]

#: A peer that has sent no block for this long while we wait on requests is snubbing us.
SNUB_TIMEOUT = 60.0
#: Peers first seen less than this many seconds ago get triple weight for the optimistic slot.
NEW_PEER_WINDOW = 60.0
_NEW_PEER_WEIGHT = 3


def is_snubbed(
    last_block_time: float, now: float, has_outstanding: bool, timeout: float = SNUB_TIMEOUT
) -> bool:
    """True when we wait on requests and the peer sent nothing for ``timeout`` seconds.

    ``last_block_time`` is when the last block arrived, or when the first request was sent if
    none ever did (so a silent new peer is judged from when it had something to answer).
    """
    return has_outstanding and now - last_block_time >= timeout


@dataclass
class PeerChokeInfo:
    """What the choker needs to know about one connected peer."""

    peer: Hashable
    interested: bool  # the peer is interested in us
    download_rate: float  # bytes/s we receive from the peer
    upload_rate: float  # bytes/s we send to the peer
    snubbed: bool
    is_seed: bool


class Choker:
    """Tit-for-tat unchoke selection with one rotating optimistic slot."""

    def __init__(
        self,
        slots: int = 4,
        optimistic_interval: float = 30.0,
        rechoke_interval: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if slots < 0 or optimistic_interval <= 0 or rechoke_interval <= 0:
            raise ValueError("slots must be >= 0 and intervals > 0")
        self.slots = slots
        self.optimistic_interval = optimistic_interval
        self.rechoke_interval = rechoke_interval
        self._rng = rng if rng is not None else random.Random()
        self._optimistic: Hashable | None = None
        self._optimistic_since = 0.0
        self._first_seen: dict[Hashable, float] = {}
        self._last_rechoke: float | None = None

    @property
    def optimistic(self) -> Hashable | None:
        """The peer currently holding the optimistic unchoke, if any."""
        return self._optimistic

    def due(self, now: float) -> bool:
        """Whether ``rechoke_interval`` has passed since the last :meth:`rechoke`."""
        return self._last_rechoke is None or now - self._last_rechoke >= self.rechoke_interval

    def rechoke(
        self, peers: Sequence[PeerChokeInfo], now: float, *, seeding: bool
    ) -> set[Hashable]:
        """The peers to have unchoked from now on; every other peer is choked.

        O(p log p) for p peers.
        """
        self._last_rechoke = now
        present = {info.peer for info in peers}
        for peer in list(self._first_seen):
            if peer not in present:
                del self._first_seen[peer]
        for peer in present:
            self._first_seen.setdefault(peer, now)

        # Seeds want nothing from us; when seeding, nobody's download rate matters.
        candidates = [p for p in peers if p.interested and not p.is_seed]
        self._rng.shuffle(candidates)  # random tie-break, then a stable sort by rate
        if seeding:
            candidates.sort(key=lambda p: p.upload_rate, reverse=True)
            regular = candidates[: self.slots]
        else:
            ranked = [p for p in candidates if not p.snubbed]
            ranked.sort(key=lambda p: p.download_rate, reverse=True)
            regular = ranked[: self.slots]
        unchoked = {p.peer for p in regular}

        eligible = [p.peer for p in candidates if p.peer not in unchoked]
        keep = (
            self._optimistic in eligible and now - self._optimistic_since < self.optimistic_interval
        )
        if not keep:
            self._optimistic = self._choose_optimistic(eligible, now)
            self._optimistic_since = now
        if self._optimistic is not None:
            unchoked.add(self._optimistic)
        return unchoked

    def _choose_optimistic(self, eligible: list[Hashable], now: float) -> Hashable | None:
        """Weighted random choice; prefers a peer other than the outgoing one."""
        if not eligible:
            return None
        pool = [p for p in eligible if p != self._optimistic] or eligible
        weights = [
            _NEW_PEER_WEIGHT if now - self._first_seen.get(p, now) < NEW_PEER_WINDOW else 1
            for p in pool
        ]
        return self._rng.choices(pool, weights=weights, k=1)[0]
