"""What a DHT node keeps for others: announced peers (bounded) and announce tokens.

Both are pure logic with ``now`` passed in. Everything here is filled by strangers, so every
collection has a hard cap and old entries are evicted first: a flood of announces for random
infohashes costs a bounded amount of memory, never an unbounded one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from collections import OrderedDict

__all__ = ["PEER_TTL", "PeerStore", "TokenManager"]

#: Announced peers are forgotten after this long (BEP 5 suggests 30 minutes).
PEER_TTL = 30 * 60
#: The token secret changes this often; tokens from the previous secret stay valid (BEP 5:
#: "tokens up to ten minutes old are accepted").
TOKEN_ROTATE = 5 * 60


class TokenManager:
    """Write tokens for ``announce_peer``: HMAC of the requester's IP under a rotating secret."""

    def __init__(self, now: float) -> None:
        self._secrets = [os.urandom(16), os.urandom(16)]
        self._rotated = now

    def _rotate(self, now: float) -> None:
        if now - self._rotated >= TOKEN_ROTATE:
            # Two rotations' worth of time may have passed; either way the old ones go.
            steps = 2 if now - self._rotated >= 2 * TOKEN_ROTATE else 1
            for _ in range(steps):
                self._secrets = [os.urandom(16), self._secrets[0]]
            self._rotated = now

    def token(self, ip: str, now: float) -> bytes:
        self._rotate(now)
        return self._make(self._secrets[0], ip)

    def valid(self, token: bytes, ip: str, now: float) -> bool:
        self._rotate(now)
        return any(hmac.compare_digest(token, self._make(s, ip)) for s in self._secrets)

    @staticmethod
    def _make(secret: bytes, ip: str) -> bytes:
        return hashlib.sha1(secret + ip.encode()).digest()[:8]


class PeerStore:
    """info_hash -> peers announced to us, capped in both dimensions."""

    def __init__(self, max_hashes: int = 2000, max_peers: int = 200) -> None:
        self.max_hashes = max_hashes
        self.max_peers = max_peers
        self._hashes: OrderedDict[bytes, OrderedDict[tuple[str, int], float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def peer_count(self) -> int:
        return sum(len(p) for p in self._hashes.values())

    def add(self, info_hash: bytes, host: str, port: int, now: float) -> None:
        peers = self._hashes.get(info_hash)
        if peers is None:
            if len(self._hashes) >= self.max_hashes:
                self._hashes.popitem(last=False)  # the least recently announced infohash
            peers = self._hashes[info_hash] = OrderedDict()
        else:
            self._hashes.move_to_end(info_hash)
        peers[(host, port)] = now
        peers.move_to_end((host, port))
        while len(peers) > self.max_peers:
            peers.popitem(last=False)

    def get(
        self, info_hash: bytes, now: float, *, ipv6: bool, count: int = 50
    ) -> list[tuple[str, int]]:
        """Up to ``count`` live peers of one address family, a random pick when there are more."""
        peers = self._hashes.get(info_hash)
        if not peers:
            return []
        live = [a for a, t in peers.items() if now - t < PEER_TTL and (":" in a[0]) == ipv6]
        if len(live) > count:
            live = random.sample(live, count)
        return live

    def sample(self, count: int) -> list[bytes]:
        """Random infohashes we hold (BEP 51)."""
        keys = list(self._hashes)
        return keys if len(keys) <= count else random.sample(keys, count)

    def expire(self, now: float) -> None:
        for info_hash in list(self._hashes):
            peers = self._hashes[info_hash]
            for addr in [a for a, t in peers.items() if now - t >= PEER_TTL]:
                del peers[addr]
            if not peers:
                del self._hashes[info_hash]
