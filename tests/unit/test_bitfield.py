"""Bitfield: wire order, strict parsing, running count, iteration against a reference model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.bitfield import Bitfield, BitfieldError


def test_wire_order_high_bit_first() -> None:
    bf = Bitfield(10)
    bf.set(0)
    bf.set(9)
    assert bf.to_bytes() == bytes([0b1000_0000, 0b0100_0000])
    assert bf[0] and bf[9] and not bf[1]
    assert list(bf.iter_set()) == [0, 9]
    assert list(bf.iter_clear()) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_count_is_running_and_idempotent() -> None:
    bf = Bitfield(20)
    assert bf.count() == 0 and not bf.any() and not bf.all()
    bf.set(3)
    bf.set(3)
    assert bf.count() == 1
    bf.clear(3)
    bf.clear(3)
    assert bf.count() == 0
    for i in range(20):
        bf.set(i)
    assert bf.all() and bf.any() and bf.count() == 20 == len(bf)


def test_full_has_no_spare_bits() -> None:
    bf = Bitfield.full(13)
    assert bf.count() == 13 and bf.all()
    assert bf.to_bytes() == b"\xff\xf8"
    assert Bitfield.from_bytes(bf.to_bytes(), 13) == bf
    assert list(bf.iter_clear()) == []


def test_full_and_empty_edge_sizes() -> None:
    assert Bitfield.full(0).to_bytes() == b"" and Bitfield.full(0).all()
    assert Bitfield.full(8).to_bytes() == b"\xff"
    assert Bitfield.from_bytes(b"", 0).count() == 0


@pytest.mark.parametrize(
    ("data", "num_bits"),
    [
        (b"\x00", 9),  # too short
        (b"\x00\x00\x00", 9),  # too long
        (b"\x00\x40", 9),  # spare bit set
        (b"\x01", 7),  # last spare bit set
    ],
)
def test_from_bytes_rejects(data: bytes, num_bits: int) -> None:
    with pytest.raises(BitfieldError):
        Bitfield.from_bytes(data, num_bits)


def test_bitfield_error_is_value_error() -> None:
    assert issubclass(BitfieldError, ValueError)


def test_index_out_of_range() -> None:
    bf = Bitfield(8)
    for bad in (-1, 8):
        with pytest.raises(IndexError):
            bf[bad]
        with pytest.raises(IndexError):
            bf.set(bad)
        with pytest.raises(IndexError):
            bf.clear(bad)


def test_copy_is_independent() -> None:
    bf = Bitfield(16)
    bf.set(5)
    other = bf.copy()
    other.set(6)
    assert not bf[6] and other[5] and other.count() == 2 and bf.count() == 1
    assert bf != other


def test_large_sparse_iteration() -> None:
    bf = Bitfield(200_000)
    for i in (0, 7, 8, 99_999, 199_999):
        bf.set(i)
    assert list(bf.iter_set()) == [0, 7, 8, 99_999, 199_999]
    assert sum(1 for _ in bf.iter_clear()) == 200_000 - 5


@given(
    st.integers(min_value=0, max_value=200).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(min_value=0, max_value=max(n - 1, 0))))
    )
)
def test_matches_set_model(case: tuple[int, list[int]]) -> None:
    num_bits, indices = case
    bf = Bitfield(num_bits)
    model: set[int] = set()
    for i in indices if num_bits else []:
        if i in model:
            bf.clear(i)
            model.discard(i)
        else:
            bf.set(i)
            model.add(i)
    assert bf.count() == len(model)
    assert list(bf.iter_set()) == sorted(model)
    assert list(bf.iter_clear()) == sorted(set(range(num_bits)) - model)
    again = Bitfield.from_bytes(bf.to_bytes(), num_bits)
    assert again == bf and again.count() == bf.count()


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=330))
def test_from_bytes_only_raises_bitfield_error(data: bytes, num_bits: int) -> None:
    try:
        bf = Bitfield.from_bytes(data, num_bits)
    except BitfieldError:
        return
    assert bf.to_bytes() == data
    assert bf.count() == sum(bin(b).count("1") for b in data)
