"""BEP 40 canonical peer priority and the CRC-32C under it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.protocol.peer_priority import crc32c, peer_priority


def h(hex_bytes: str) -> int:
    return crc32c(bytes.fromhex(hex_bytes))


def test_crc32c_check_values() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of ones
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283  # continuation


def test_bep40_example_vectors() -> None:
    assert peer_priority(("123.213.32.10", 0), ("98.76.54.32", 0)) == 0xEC2D7224
    assert peer_priority(("123.213.32.10", 0), ("123.213.32.234", 0)) == 0x99568189
    # the BEP's worked form of the first: crc32-c(624C14007BD50000)
    assert h("624C14007BD50000") == 0xEC2D7224


@pytest.mark.parametrize(
    ("a", "b", "hashed"),
    [
        # identical IPs: the ports, 16-bit big-endian, lowest first
        (("230.12.123.3", 0x4D2), ("230.12.123.3", 0x12C), "012c04d2"),
        # same /24: whole addresses
        (("230.12.123.1", 0x4D2), ("230.12.123.3", 0x12C), "e60c7b01e60c7b03"),
        # same /16: FF.FF.FF.55
        (("230.12.23.1", 0x4D2), ("230.12.123.3", 0x12C), "e60c1701e60c7b01"),
        # different /16: FF.FF.55.55
        (("230.120.23.1", 0x4D2), ("230.12.123.3", 0x12C), "e60c5101e6781501"),
        # IPv6, different /48: FFFF:FFFF:FFFF:5555:...
        (
            ("2001:db8:1:ffff::ff", 1),
            ("2001:db8:2:ffff::ff", 2),
            "20010db8000155550000000000000055" + "20010db8000255550000000000000055",
        ),
        # IPv6, same /48: FFFF:FFFF:FFFF:FF55:...
        (
            ("2001:db8:1:ff00::ff", 1),
            ("2001:db8:1:f00::ff", 2),
            "20010db800010f000000000000000055" + "20010db80001ff000000000000000055",
        ),
        # IPv6, same /56: FFFF:FFFF:FFFF:FFFF:5555:...
        (
            ("2001:db8:1:ffff::ff", 1),
            ("2001:db8:1:ff0f::ff", 2),
            "20010db80001ff0f0000000000000055" + "20010db80001ffff0000000000000055",
        ),
        # IPv6, identical: ports
        (("2001:db8::1", 6881), ("2001:db8::1", 51413), "1ae1c8d5"),
    ],
)
def test_masking_rules(a: tuple[str, int], b: tuple[str, int], hashed: str) -> None:
    assert peer_priority(a, b) == h(hashed)
    assert peer_priority(b, a) == h(hashed)


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    assert peer_priority(("::ffff:123.213.32.10", 0), ("98.76.54.32", 0)) == 0xEC2D7224


def test_mixed_families_are_refused() -> None:
    with pytest.raises(ValueError, match="same family"):
        peer_priority(("10.0.0.1", 1), ("2001:db8::1", 1))


_v4 = st.ip_addresses(v=4).map(str)
# IPv4-mapped IPv6 addresses count as IPv4, so they are not "IPv6" for a same-family pair
_v6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
_port = st.integers(0, 65535)


@given(st.one_of(st.tuples(_v4, _v4), st.tuples(_v6, _v6)), _port, _port)
def test_symmetric_and_32_bit(ips: tuple[str, str], pa: int, pb: int) -> None:
    a, b = (ips[0], pa), (ips[1], pb)
    p = peer_priority(a, b)
    assert p == peer_priority(b, a)
    assert 0 <= p < 2**32
