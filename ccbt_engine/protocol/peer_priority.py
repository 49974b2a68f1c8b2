"""BEP 40 canonical peer priority.

When connection slots run out, every client should agree on which connections matter most, so
that a swarm neither locks newcomers out nor can be monopolised by one attacker holding many
connections. BEP 40 gives each (our address, peer address) pair a priority both ends compute
identically: CRC32-C over the two addresses, masked so that addresses far apart weigh their
network prefix and only close ones their host part, ordered lowest first.

The masking rule (from the BEP, generalised the way libtorrent implements it): the first 2 bytes
of an IPv4 (6 of an IPv6) address are always kept; each further byte is kept only up to and
including the first byte in which the two addresses differ; the rest is ANDed with ``0x55``.
So IPv4 uses FF.FF.55.55, FF.FF.FF.55 within a /16 and the whole address within a /24; IPv6 uses
FFFF:FFFF:FFFF:5555:…, FFFF:FFFF:FFFF:FF55:… within a /48, and so on. Identical addresses hash
the two ports (16-bit big-endian) instead.
"""

from __future__ import annotations

import ipaddress

__all__ = ["crc32c", "peer_priority"]


def _make_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # Castagnoli polynomial 0x1EDC6F41, bit-reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as used by BEP 40 and BEP 42. Pass ``crc`` to continue a checksum.

    Pure Python and byte-at-a-time: BEP 40 hashes at most 32 bytes, so a table is plenty.
    """
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(host)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; they are IPv4 peers.
        return addr.ipv4_mapped
    return addr


def _mask(a: bytes, b: bytes, always: int) -> tuple[bytes, bytes]:
    common = 0
    while common < len(a) and a[common] == b[common]:
        common += 1
    keep = max(always, common + 1)
    return (
        a[:keep] + bytes(x & 0x55 for x in a[keep:]),
        b[:keep] + bytes(x & 0x55 for x in b[keep:]),
    )


def peer_priority(a: tuple[str, int], b: tuple[str, int]) -> int:
    """The BEP 40 priority (unsigned 32-bit; higher connects first) of the pair ``a``, ``b``.

    Symmetric: ``peer_priority(a, b) == peer_priority(b, a)``. Both endpoints must be of the
    same address family (IPv4-mapped IPv6 counts as IPv4); otherwise :class:`ValueError`.
    """
    ip_a, ip_b = _ip(a[0]), _ip(b[0])
    if ip_a.version != ip_b.version:
        raise ValueError("peer_priority needs two addresses of the same family")
    if ip_a == ip_b:
        lo, hi = sorted((a[1], b[1]))
        return crc32c(lo.to_bytes(2, "big") + hi.to_bytes(2, "big"))
    always = 2 if ip_a.version == 4 else 6
    ma, mb = _mask(ip_a.packed, ip_b.packed, always)
    lo_b, hi_b = sorted((ma, mb))
    return crc32c(lo_b + hi_b)
