"""BEP 6 fast extension: the allowed-fast set we grant a peer.

The allowed-fast set lets a choked peer still download a few pieces, so a newcomer with nothing
to trade can get its first pieces quickly. The set depends only on the peer's address (masked so
that hopping addresses inside one network does not earn more pieces), the info hash and the piece
count, so it is stable across reconnects and cannot be farmed.
"""

from __future__ import annotations

import hashlib
import ipaddress

__all__ = ["allowed_fast_set"]


def _address_bytes(ip: str) -> bytes:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they are IPv4 peers.
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        # BEP 6: the /24 the peer is in.
        return (int(addr) & 0xFFFFFF00).to_bytes(4, "big")
    # BEP 6 defines the set for IPv4 only. For IPv6 we hash the /48, the smallest prefix a site
    # is commonly given, so one user cannot earn extra pieces by rotating addresses inside it.
    return addr.packed[:6] + bytes(10)


def allowed_fast_set(ip: str, info_hash: bytes, num_pieces: int, k: int = 10) -> list[int]:
    """The first ``k`` allowed-fast piece indices for a peer at ``ip``, in the BEP 6 order.

    Exactly the BEP 6 algorithm for IPv4: SHA-1 over (masked IP + info hash), then repeatedly
    over the previous digest, taking each 32-bit big-endian word modulo ``num_pieces`` and
    skipping duplicates. ``k`` is capped at ``num_pieces`` (otherwise the loop could not end).
    """
    if len(info_hash) != 20:
        raise ValueError("info_hash must be the 20-byte wire info hash")
    if num_pieces < 0 or k < 0:
        raise ValueError("num_pieces and k must be >= 0")
    k = min(k, num_pieces)
    out: list[int] = []
    seen: set[int] = set()
    x = _address_bytes(ip) + bytes(info_hash)
    while len(out) < k:
        x = hashlib.sha1(x).digest()
        for i in range(0, 20, 4):
            if len(out) >= k:
                break
            index = int.from_bytes(x[i : i + 4], "big") % num_pieces
            if index not in seen:
                seen.add(index)
                out.append(index)
    return out
