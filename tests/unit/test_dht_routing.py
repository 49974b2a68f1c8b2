"""Routing table (k-buckets, splitting, replacement) and BEP 42 secure ids; store and tokens."""

from __future__ import annotations

import os
import random

import pytest

from ccbt_engine.dht import routing
from ccbt_engine.dht.routing import MAX_FAILS, K, RoutingTable, distance, shared_prefix_bits
from ccbt_engine.dht.store import PEER_TTL, TOKEN_ROTATE, PeerStore, TokenManager

OWN = bytes(20)


def _id_with_prefix(bits: int, rng: random.Random) -> bytes:
    """An id sharing exactly ``bits`` leading bits with OWN (all zeros)."""
    return routing.random_id_in_bucket(OWN, bits, rng)


# -- BEP 42 -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ip", "rand", "prefix"),
    [  # the test vectors of BEP 42 (first 21 bits of the id are fixed by the IP)
        ("124.31.75.21", 1, "5fbfbf"),
        ("21.75.31.124", 86, "5a3ce9"),
        ("65.23.51.170", 22, "a5d432"),
        ("84.124.73.14", 65, "1b0321"),
        ("43.213.53.83", 90, "e56f6c"),
    ],
)
def test_bep42_vectors(ip: str, rand: int, prefix: str) -> None:
    node_id = routing.generate_secure_id(ip, rand)
    expected = bytes.fromhex(prefix)
    assert node_id[:2] == expected[:2]
    assert node_id[2] & 0xF8 == expected[2] & 0xF8
    assert node_id[19] == rand
    assert routing.is_secure_id(node_id, ip)


def test_bep42_rejects_wrong_ids_and_exempts_local_addresses() -> None:
    good = routing.generate_secure_id("65.23.51.170")
    assert routing.is_secure_id(good, "65.23.51.170")
    assert not routing.is_secure_id(good, "65.23.51.171") or not routing.is_secure_id(
        good, "8.8.8.8"
    )
    bad = bytes([good[0] ^ 0xFF]) + good[1:]
    assert not routing.is_secure_id(bad, "65.23.51.170")
    for local in ("127.0.0.1", "10.1.2.3", "192.168.0.7", "::1", "fe80::1"):
        assert routing.is_secure_id(os.urandom(20), local)
    v6 = routing.generate_secure_id("2001:4860:4860::8888")
    assert routing.is_secure_id(v6, "2001:4860:4860::8888")


def test_crc32c_known_value() -> None:
    assert routing.crc32c(b"123456789") == 0xE3069283


# -- ids --------------------------------------------------------------------------------------
def test_random_id_in_bucket_has_exact_prefix() -> None:
    rng = random.Random(1)
    own = os.urandom(20)
    for index in (0, 1, 7, 8, 63, 159):
        nid = routing.random_id_in_bucket(own, index, rng)
        assert shared_prefix_bits(own, nid) == index


# -- table ------------------------------------------------------------------------------------
def test_table_splits_towards_own_id_and_caps_far_buckets() -> None:
    rng = random.Random(2)
    table = RoutingTable(OWN)
    # 20 nodes that all differ in the first bit: only K of them fit.
    far = [_id_with_prefix(0, rng) for _ in range(20)]
    for i, nid in enumerate(far):
        table.add(nid, "10.0.0.1", 1000 + i, now=0.0, replied=True)
    assert len(table) == K
    # Close nodes keep splitting the own bucket and are all kept.
    for bits in range(1, 30):
        table.add(_id_with_prefix(bits, rng), "10.0.1.1", 2000 + bits, now=0.0, replied=True)
    assert len(table) == K + 29
    assert len(table.buckets) > 20
    for i, b in enumerate(table.buckets[:-1]):
        assert all(shared_prefix_bits(OWN, c.node_id) == i for c in b.nodes)
        assert len(b.nodes) <= K
    assert len(table.buckets[0].replacements) == 8  # the overflow waits, bounded


def test_full_bucket_keeps_good_nodes_and_swaps_in_replacement_when_one_fails() -> None:
    rng = random.Random(3)
    table = RoutingTable(OWN)
    # First split so that bucket 0 is a far bucket.
    table.add(_id_with_prefix(5, rng), "10.9.9.9", 9, 0.0, replied=True)
    ids = [_id_with_prefix(0, rng) for _ in range(K)]
    for i, nid in enumerate(ids):
        table.add(nid, "10.0.0.2", 100 + i, 0.0, replied=True)
    newcomer = _id_with_prefix(0, rng)
    assert not table.add(newcomer, "10.0.0.3", 1, 1.0, replied=True)
    assert table.find(newcomer) is None
    for _ in range(MAX_FAILS):
        table.failed(ids[3])
    assert table.find(ids[3]) is None
    assert table.find(newcomer) is not None


def test_node_that_never_replied_is_dropped_on_failure() -> None:
    table = RoutingTable(OWN)
    nid = os.urandom(20)
    table.add(nid, "10.0.0.1", 5, 0.0)
    for _ in range(MAX_FAILS):
        table.failed(nid)
    assert len(table) == 0


def test_one_slot_per_address_and_own_id_refused() -> None:
    table = RoutingTable(OWN)
    assert not table.add(OWN, "10.0.0.1", 5, 0.0)
    assert table.add(b"\x80" + bytes(19), "10.0.0.1", 5, 0.0)
    assert not table.add(b"\x81" + bytes(19), "10.0.0.1", 5, 0.0)  # id-hopping address


def test_closest_orders_by_xor_distance() -> None:
    rng = random.Random(4)
    table = RoutingTable(OWN)
    ids = [rng.randbytes(20) for _ in range(60)]
    for i, nid in enumerate(ids):
        table.add(nid, "10.0.0.1", 1 + i, 0.0, replied=True)
    target = rng.randbytes(20)
    got = [c.node_id for c in table.closest(target, K)]
    kept = [c.node_id for c in table]
    assert got == sorted(kept, key=lambda n: distance(n, target))[:K]


def test_enforce_refuses_insecure_public_nodes_and_prefer_secure_replaces_them() -> None:
    ip = "65.23.51.170"
    strict = RoutingTable(OWN, enforce=True)
    assert not strict.add(b"\xff" * 20, ip, 1, 0.0, replied=True)
    assert strict.add(routing.generate_secure_id(ip), ip, 1, 0.0, replied=True)
    assert strict.add(b"\xff" * 20, "127.0.0.1", 2, 0.0)  # loopback is exempt

    rng = random.Random(5)
    table = RoutingTable(OWN)
    table.add(_id_with_prefix(9, rng), "10.9.9.9", 9, 0.0, replied=True)  # split once
    insecure = []
    for i in range(K):
        nid = b"\x80" + rng.randbytes(19)
        insecure.append(nid)
        table.add(nid, f"8.8.{i}.1", 1, 0.0, replied=True)
    # A verified newcomer from a public IP, landing in the same (far) bucket.
    ip, secure = next(
        (ip, nid)
        for ip in (f"9.9.9.{i}" for i in range(1, 255))
        if (nid := routing.generate_secure_id(ip))[0] & 0x80
    )
    assert not table.add(secure, ip, 1, 10.0, replied=True)  # insecure ones still good
    # An hour later the insecure ones are stale: the verified newcomer takes a slot.
    assert table.add(secure, ip, 1, 3600.0, replied=True)
    assert sum(1 for c in table.buckets[0].nodes if c.node_id in insecure) == K - 1


def test_stale_buckets_and_questionable_nodes() -> None:
    table = RoutingTable(OWN)
    nid = os.urandom(20)
    table.add(nid, "10.0.0.1", 5, 0.0, replied=True)
    assert table.stale_buckets(10.0) == []
    assert table.questionable(10.0) == []
    later = routing.REFRESH_SECONDS + 1
    assert table.stale_buckets(later) == [0]
    assert [c.node_id for c in table.questionable(later)] == [nid]


# -- store and tokens -------------------------------------------------------------------------
def test_tokens_valid_for_two_rotations_and_bound_to_ip() -> None:
    tm = TokenManager(0.0)
    tok = tm.token("1.2.3.4", 0.0)
    assert tm.valid(tok, "1.2.3.4", 10.0)
    assert not tm.valid(tok, "1.2.3.5", 10.0)
    assert tm.valid(tok, "1.2.3.4", TOKEN_ROTATE + 1)
    assert not tm.valid(tok, "1.2.3.4", 2 * TOKEN_ROTATE + 2)


def test_peer_store_is_bounded_and_expires() -> None:
    store = PeerStore(max_hashes=10, max_peers=5)
    for i in range(100):
        store.add(i.to_bytes(20, "big"), "10.0.0.1", 1 + i, 0.0)
    assert len(store) == 10
    ih = b"h" * 20
    for i in range(50):
        store.add(ih, f"10.0.0.{i}", 6881, 1.0)
    store.add(ih, "::1", 7, 1.0)
    assert len(store.get(ih, 2.0, ipv6=False)) == 4
    assert store.get(ih, 2.0, ipv6=True) == [("::1", 7)]
    assert store.peer_count() <= 10 * 5
    assert len(store.sample(3)) == 3
    store.expire(PEER_TTL + 10)
    assert len(store) == 0
