"""BEP 6 allowed-fast set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.protocol.fast import allowed_fast_set

BEP6_HASH = b"\xaa" * 20


def test_bep6_example_vectors() -> None:
    assert allowed_fast_set("80.4.4.200", BEP6_HASH, 1313, k=7) == [
        1059, 431, 808, 1217, 287, 376, 1188,
    ]  # fmt: skip
    assert allowed_fast_set("80.4.4.200", BEP6_HASH, 1313, k=9) == [
        1059, 431, 808, 1217, 287, 376, 1188, 353, 508,
    ]  # fmt: skip


def test_default_k_is_ten_and_extends_the_same_sequence() -> None:
    ten = allowed_fast_set("80.4.4.200", BEP6_HASH, 1313)
    assert len(ten) == 10
    assert ten[:9] == allowed_fast_set("80.4.4.200", BEP6_HASH, 1313, k=9)


def test_the_whole_slash_24_shares_one_set() -> None:
    ours = allowed_fast_set("80.4.4.200", BEP6_HASH, 1313)
    assert allowed_fast_set("80.4.4.1", BEP6_HASH, 1313) == ours
    assert allowed_fast_set("::ffff:80.4.4.7", BEP6_HASH, 1313) == ours  # dual-stack form
    assert allowed_fast_set("80.4.5.200", BEP6_HASH, 1313) != ours
    assert allowed_fast_set("80.4.4.200", b"\xab" * 20, 1313) != ours


def test_ipv6_peers_share_a_set_per_slash_48() -> None:
    a = allowed_fast_set("2001:db8:1:2::1", BEP6_HASH, 1313)
    assert allowed_fast_set("2001:db8:1:ffff::99", BEP6_HASH, 1313) == a
    assert allowed_fast_set("2001:db8:2::1", BEP6_HASH, 1313) != a


def test_k_is_capped_by_the_piece_count() -> None:
    assert sorted(allowed_fast_set("10.0.0.1", BEP6_HASH, 3, k=10)) == [0, 1, 2]
    assert allowed_fast_set("10.0.0.1", BEP6_HASH, 0) == []
    assert allowed_fast_set("10.0.0.1", BEP6_HASH, 100, k=0) == []


@pytest.mark.parametrize(
    ("ip", "info_hash", "n", "k"),
    [
        ("10.0.0.1", b"short", 10, 1),
        ("10.0.0.1", BEP6_HASH, -1, 1),
        ("10.0.0.1", BEP6_HASH, 10, -1),
        ("not an ip", BEP6_HASH, 10, 1),
    ],
)
def test_bad_arguments(ip: str, info_hash: bytes, n: int, k: int) -> None:
    with pytest.raises(ValueError):
        allowed_fast_set(ip, info_hash, n, k)


@given(
    ip=st.ip_addresses().map(str),
    info_hash=st.binary(min_size=20, max_size=20),
    n=st.integers(1, 5000),
    k=st.integers(0, 20),
)
def test_indices_are_distinct_and_in_range(ip: str, info_hash: bytes, n: int, k: int) -> None:
    got = allowed_fast_set(ip, info_hash, n, k)
    assert len(got) == min(k, n)
    assert len(set(got)) == len(got)
    assert all(0 <= i < n for i in got)
