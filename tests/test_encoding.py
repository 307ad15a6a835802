"""Ring, fixed-point and byte encodings (spec/01-encoding.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import (
    FixedPoint,
    Ring,
    bit_vec_decode,
    bit_vec_encode,
    fxp_decode,
    fxp_encode,
    fxp_trunc,
    ring_vec_decode,
    ring_vec_encode,
)
from secmoe.errors import ProtocolError, SpecError

bits_st = st.integers(min_value=1, max_value=64)


def ints_mod(bits: int, n: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=(1 << bits) - 1), min_size=n, max_size=n)


@given(bits=bits_st, data=st.data())
def test_ring_identities(bits: int, data: st.DataObject) -> None:
    ring = Ring(bits)
    xs = data.draw(ints_mod(bits, 6))
    ys = data.draw(ints_mod(bits, 6))
    a, b = ring.from_int(xs), ring.from_int(ys)
    m = 1 << bits
    assert [int(v) for v in ring.add(a, b)] == [(x + y) % m for x, y in zip(xs, ys, strict=True)]
    assert [int(v) for v in ring.sub(a, b)] == [(x - y) % m for x, y in zip(xs, ys, strict=True)]
    assert [int(v) for v in ring.mul(a, b)] == [(x * y) % m for x, y in zip(xs, ys, strict=True)]
    assert [int(v) for v in ring.neg(a)] == [(-x) % m for x in xs]
    signed = [x - m if x >= m // 2 else x for x in xs]
    assert [int(v) for v in ring.to_signed(a)] == signed
    assert np.array_equal(ring.from_int(signed), a)
    assert [int(v) for v in ring.msb(a)] == [x >> (bits - 1) for x in xs]


@given(
    bits=st.integers(min_value=8, max_value=64),
    s=st.integers(min_value=0, max_value=7),
    data=st.data(),
)
def test_trunc_is_floor_division(bits: int, s: int, data: st.DataObject) -> None:
    ring = Ring(bits)
    fxp = FixedPoint(ring, min(s, bits - 2))
    xs = data.draw(ints_mod(bits, 5))
    a = ring.from_int(xs)
    m = 1 << bits
    signed = [x - m if x >= m // 2 else x for x in xs]
    assert [int(v) for v in fxp_trunc(fxp, a, s)] == [(x >> s) % m for x in signed]


@given(
    frac=st.integers(min_value=0, max_value=30),
    xs=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=8),
)
def test_fxp_round_trip_within_half_ulp(frac: int, xs: list[float]) -> None:
    fxp = FixedPoint(Ring(64), frac)
    back = fxp_decode(fxp, fxp_encode(fxp, xs))
    assert np.all(np.abs(back - np.asarray(xs)) <= 2.0 ** -(frac + 1))


def test_fxp_rounding_rule_is_half_up() -> None:
    fxp = FixedPoint(Ring(64), 2)
    # x * 4 = 0.5 -> 1, -0.5 -> 0, 1.5 -> 2, -1.5 -> -1: floor(y + 1/2).
    got = fxp.ring.to_signed(fxp_encode(fxp, [0.125, -0.125, 0.375, -0.375]))
    assert [int(v) for v in got] == [1, 0, 2, -1]


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -float("inf"), 2.0**45, -(2.0**45) - 1]
)
def test_fxp_encode_rejects(bad: float) -> None:
    with pytest.raises(SpecError):
        fxp_encode(FixedPoint(), [1.0, bad])


def test_fxp_encode_range_edges() -> None:
    fxp = FixedPoint(Ring(16), 4)  # range [-2^11, 2^11)
    assert int(fxp.ring.to_signed(fxp_encode(fxp, [2048 - 1 / 16]))[0]) == 2**15 - 1
    assert int(fxp.ring.to_signed(fxp_encode(fxp, [-2048.0]))[0]) == -(2**15)
    with pytest.raises(SpecError):
        fxp_encode(fxp, [2048 - 1 / 32])  # rounds up to 2^15
    with pytest.raises(SpecError):
        FixedPoint(Ring(16), 16)
    with pytest.raises(SpecError):
        Ring(65)


@given(bits=bits_st, data=st.data())
def test_ring_vec_round_trip(bits: int, data: st.DataObject) -> None:
    ring = Ring(bits)
    n = data.draw(st.integers(min_value=0, max_value=9))
    a = ring.from_int(data.draw(ints_mod(bits, n)))
    enc = ring_vec_encode(ring, a)
    assert len(enc) == n * ((bits + 7) // 8)
    assert np.array_equal(ring_vec_decode(ring, enc, n), a)
    if n:
        with pytest.raises(ProtocolError) as e:
            ring_vec_decode(ring, enc[:-1], n)
        assert e.value.kind == "wrong_length"


def test_ring_vec_rejects_high_bits_and_bad_input() -> None:
    ring = Ring(12)
    with pytest.raises(ProtocolError) as e:
        ring_vec_decode(ring, bytes([0, 0x10]), 1)
    assert e.value.kind == "out_of_range"
    with pytest.raises(SpecError):
        ring_vec_encode(ring, np.array([4096], dtype=np.uint64))
    with pytest.raises(SpecError):
        ring_vec_encode(ring, np.array([1], dtype=np.int64))  # type: ignore[arg-type]


@given(bits=st.lists(st.integers(min_value=0, max_value=1), max_size=40))
def test_bit_vec_round_trip(bits: list[int]) -> None:
    b = np.array(bits, dtype=np.uint8)
    enc = bit_vec_encode(b)
    assert len(enc) == (len(bits) + 7) // 8
    assert np.array_equal(bit_vec_decode(enc, len(bits)), b)
    # bit i is bit i mod 8 of byte i div 8
    for i, v in enumerate(bits):
        assert (enc[i // 8] >> (i % 8)) & 1 == v


def test_bit_vec_rejects() -> None:
    with pytest.raises(ProtocolError) as e:
        bit_vec_decode(bytes([0x80]), 7)
    assert e.value.kind == "out_of_range"
    with pytest.raises(ProtocolError) as e:
        bit_vec_decode(bytes(2), 7)
    assert e.value.kind == "wrong_length"
    with pytest.raises(SpecError):
        bit_vec_encode(np.array([0, 2], dtype=np.uint8))
