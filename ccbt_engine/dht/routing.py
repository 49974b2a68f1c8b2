"""DHT routing table (Kademlia k-buckets, BEP 5) and secure node ids (BEP 42).

Pure logic with the time passed in, so tests drive it without a clock or a socket.

The table is a list of buckets indexed by how many leading bits a node id shares with ours:
bucket ``i`` holds ids sharing exactly ``i`` bits, and the last bucket holds everything at least
that close. When the last bucket overflows it is split (Kademlia's "split the bucket that covers
our own id"), so the table resolves our neighbourhood finely and the far half of the space
coarsely, with at most ``K`` nodes per bucket.

A full bucket never evicts a node that still answers: a newcomer waits in the bucket's small
replacement cache and takes the place of a node once that node has failed to reply
``MAX_FAILS`` times (the node layer pings questionable nodes to find out). With
``prefer_secure`` (BEP 42's advice), a newcomer whose id matches its public IP may also take the
place of a stale node whose id does not.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "GOOD_SECONDS",
    "ID_BITS",
    "MAX_FAILS",
    "REFRESH_SECONDS",
    "Bucket",
    "Contact",
    "K",
    "RoutingTable",
    "crc32c",
    "distance",
    "generate_secure_id",
    "is_secure_id",
    "needs_secure_id",
    "random_id_in_bucket",
    "shared_prefix_bits",
]

K = 8
ID_BITS = 160
#: A node that answered within this many seconds is "good" (BEP 5: 15 minutes).
GOOD_SECONDS = 15 * 60
#: Buckets untouched this long get refreshed with a lookup of a random id inside them.
REFRESH_SECONDS = 15 * 60
#: Unanswered queries after which a node is "bad" and may be replaced.
MAX_FAILS = 2
_REPLACEMENTS = 8


# -- ids --------------------------------------------------------------------------------------
def distance(a: bytes, b: bytes) -> int:
    """XOR metric as an integer (smaller is closer)."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def shared_prefix_bits(a: bytes, b: bytes) -> int:
    return ID_BITS - distance(a, b).bit_length()


def random_id_in_bucket(own: bytes, index: int, rng: random.Random | None = None) -> bytes:
    """A random id sharing exactly ``index`` leading bits with ``own`` (at least, for the last)."""
    r = rng or random.SystemRandom()
    own_int = int.from_bytes(own, "big")
    rand = r.getrandbits(ID_BITS)
    if index >= ID_BITS:
        return own
    keep_mask = ((1 << index) - 1) << (ID_BITS - index)  # the shared prefix
    flip_bit = 1 << (ID_BITS - index - 1)  # the first differing bit
    low_mask = flip_bit - 1
    value = (own_int & keep_mask) | ((own_int ^ flip_bit) & flip_bit) | (rand & low_mask)
    return value.to_bytes(20, "big")


# -- BEP 42 -----------------------------------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum BEP 42 prescribes; inputs here are 4 or 8 bytes."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_V4_MASK = 0x030F3FFF
_V6_MASK = 0x0103070F1F3F7FFF


def _id_prefix_crc(ip: str, r: int) -> int:
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        value = (int(addr) & _V4_MASK) | (r << 29)
        return crc32c(value.to_bytes(4, "big"))
    value = ((int(addr) >> 64) & _V6_MASK) | (r << 61)
    return crc32c(value.to_bytes(8, "big"))


def needs_secure_id(ip: str) -> bool:
    """BEP 42 exempts local, private and loopback addresses (they are not unique)."""
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


def generate_secure_id(ip: str, rand: int | None = None) -> bytes:
    """A node id whose first 21 bits derive from ``ip`` (BEP 42); the rest is random."""
    rnd = os.urandom(20)
    last = rnd[19] if rand is None else rand & 0xFF
    crc = _id_prefix_crc(ip, last & 7)
    head = bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | (rnd[0] & 7)])
    return head + rnd[3:19] + bytes([last])


def is_secure_id(node_id: bytes, ip: str) -> bool:
    """True when ``node_id`` is valid for ``ip`` under BEP 42 (or ``ip`` is exempt)."""
    if not needs_secure_id(ip):
        return True
    if len(node_id) != 20:
        return False
    crc = _id_prefix_crc(ip, node_id[19] & 7)
    return (
        node_id[0] == (crc >> 24) & 0xFF
        and node_id[1] == (crc >> 16) & 0xFF
        and (node_id[2] & 0xF8) == ((crc >> 8) & 0xF8)
    )


# -- table ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Contact:
    """A node in the table. ``last_reply`` None means it has never answered us."""

    node_id: bytes
    host: str
    port: int
    last_seen: float
    last_reply: float | None = None
    fails: int = 0
    secure: bool = True

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def is_good(self, now: float) -> bool:
        return (
            self.fails == 0 and self.last_reply is not None and now - self.last_reply < GOOD_SECONDS
        )

    def is_bad(self) -> bool:
        return self.fails >= MAX_FAILS


@dataclass(slots=True)
class Bucket:
    nodes: list[Contact] = field(default_factory=list)
    replacements: list[Contact] = field(default_factory=list)
    last_changed: float = 0.0


class RoutingTable:
    """K-buckets around ``own_id``; one table per address family."""

    def __init__(self, own_id: bytes, *, prefer_secure: bool = True, enforce: bool = False):
        self.own_id = own_id
        self.prefer_secure = prefer_secure
        #: refuse, rather than just deprioritise, public-IP nodes whose id fails BEP 42
        self.enforce = enforce
        self.buckets: list[Bucket] = [Bucket()]

    def __len__(self) -> int:
        return sum(len(b.nodes) for b in self.buckets)

    def __iter__(self) -> Iterator[Contact]:
        for b in self.buckets:
            yield from b.nodes

    def bucket_index(self, node_id: bytes) -> int:
        return min(shared_prefix_bits(self.own_id, node_id), len(self.buckets) - 1)

    def find(self, node_id: bytes) -> Contact | None:
        for c in self.buckets[self.bucket_index(node_id)].nodes:
            if c.node_id == node_id:
                return c
        return None

    def find_addr(self, addr: tuple[str, int]) -> Contact | None:
        return next((c for c in self if c.addr == addr), None)

    def add(
        self, node_id: bytes, host: str, port: int, now: float, *, replied: bool = False
    ) -> bool:
        """Record that we heard from a node; ``replied`` when it answered one of our queries.

        Returns True when the node is (now) in the table proper.
        """
        if node_id == self.own_id or not 0 < port < 65536:
            return False
        secure = is_secure_id(node_id, host)
        if self.enforce and not secure:
            return False
        while True:
            index = self.bucket_index(node_id)
            bucket = self.buckets[index]
            for c in bucket.nodes:
                if c.node_id == node_id:
                    if c.addr != (host, port):
                        # Same id from another address: keep the one we know works.
                        if c.last_reply is not None and not replied:
                            return True
                        c.host, c.port = host, port
                    c.last_seen = now
                    if replied:
                        c.last_reply = now
                        c.fails = 0
                    bucket.last_changed = now
                    return True
            if any(c.addr == (host, port) for c in bucket.nodes):
                return False  # one slot per address: an id-hopping address gains nothing
            contact = Contact(node_id, host, port, now, now if replied else None, 0, secure)
            if len(bucket.nodes) < K:
                bucket.nodes.append(contact)
                bucket.last_changed = now
                return True
            if index == len(self.buckets) - 1 and len(self.buckets) < ID_BITS:
                self._split()
                continue
            return self._replace(bucket, contact, now)

    def _split(self) -> None:
        last = self.buckets[-1]
        new_index = len(self.buckets)
        near = Bucket(last_changed=last.last_changed)
        far = Bucket(last_changed=last.last_changed)
        for c in last.nodes:
            (near if shared_prefix_bits(self.own_id, c.node_id) >= new_index else far).nodes.append(
                c
            )
        for c in last.replacements:
            target = near if shared_prefix_bits(self.own_id, c.node_id) >= new_index else far
            target.replacements.append(c)
        self.buckets[-1] = far
        self.buckets.append(near)

    def _replace(self, bucket: Bucket, contact: Contact, now: float) -> bool:
        for i, c in enumerate(bucket.nodes):
            if c.is_bad():
                bucket.nodes[i] = contact
                bucket.last_changed = now
                return True
        if self.prefer_secure and contact.secure and contact.last_reply is not None:
            for i, c in enumerate(bucket.nodes):
                if not c.secure and not c.is_good(now):
                    bucket.nodes[i] = contact
                    bucket.last_changed = now
                    return True
        reps = bucket.replacements
        reps[:] = [r for r in reps if r.node_id != contact.node_id]
        reps.append(contact)
        del reps[:-_REPLACEMENTS]
        return False

    def failed(self, node_id: bytes) -> None:
        """A query to the node timed out; a bad node is swapped for a cached replacement."""
        bucket = self.buckets[self.bucket_index(node_id)]
        for i, c in enumerate(bucket.nodes):
            if c.node_id == node_id:
                c.fails += 1
                if c.is_bad() and bucket.replacements:
                    bucket.nodes[i] = bucket.replacements.pop()
                elif c.is_bad() and c.last_reply is None:
                    del bucket.nodes[i]  # never answered: it was never worth a slot
                return
        bucket.replacements[:] = [r for r in bucket.replacements if r.node_id != node_id]

    def remove(self, node_id: bytes) -> None:
        bucket = self.buckets[self.bucket_index(node_id)]
        bucket.nodes[:] = [c for c in bucket.nodes if c.node_id != node_id]

    def closest(self, target: bytes, count: int = K, *, include_bad: bool = False) -> list[Contact]:
        nodes = [c for c in self if include_bad or not c.is_bad()]
        nodes.sort(key=lambda c: distance(c.node_id, target))
        return nodes[:count]

    def questionable(self, now: float) -> list[Contact]:
        """Nodes worth a ping: not heard from in a while, or never answered, but not yet bad."""
        return [c for c in self if not c.is_good(now) and not c.is_bad()]

    def stale_buckets(self, now: float) -> list[int]:
        return [i for i, b in enumerate(self.buckets) if now - b.last_changed >= REFRESH_SECONDS]
