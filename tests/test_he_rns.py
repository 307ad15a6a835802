"""The fast RNS paths of the HE engine equal their big-integer definitions (spec/20-he.md §20.2,
§20.12): NTT order and lazy reduction, modular helpers, base extension, the decryption rounding,
the ct x ct rescaling and modulus switching, including inputs on the rounding boundaries that
force the exact fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmoe.he import baseconv as bc
from secmoe.he import modp, rns
from secmoe.he.ntt import _bit_reverse, _primitive_2n_root, ntt_forward, ntt_inverse, ntt_tables
from secmoe.he.params import preset
from secmoe.randomness import Prg, dst

TOY = preset("toy")
SETS = [preset("toy"), preset("he8192"), preset("he16384")]
COLS = 48  # the conversions are per coefficient: a few columns of the real bases suffice


def prg(tag: str, seed: int = 0) -> Prg:
    return Prg(bytes([seed]) * 32, dst("test", tag))


def residues(src: Prg, primes: tuple[int, ...], cols: int) -> np.ndarray:
    return np.stack([src.next_below(cols, p) for p in primes])


def from_ints(values: list[int], primes: tuple[int, ...]) -> np.ndarray:
    return rns.from_int(np.array(values, dtype=object), primes)


def test_ntt_entries_are_evaluations_in_bit_reversed_order() -> None:
    n, primes = TOY.n, TOY.q_primes[:2]
    src = prg("ntt-order")
    a = residues(src, primes, n)
    got = ntt_forward(a, ntt_tables(n, primes))
    rev = _bit_reverse(n)
    for i, p in enumerate(primes):
        psi = _primitive_2n_root(p, n)
        coeffs = [int(x) for x in a[i]]
        for k in range(n):
            point = pow(psi, 2 * k + 1, p)
            want = sum(c * pow(point, j, p) for j, c in enumerate(coeffs)) % p
            assert int(got[i, rev[k]]) == want


@pytest.mark.parametrize("name", ["toy", "he8192"])
def test_ntt_lazy_reduction_holds_at_the_largest_residues(name: str) -> None:
    p = preset(name)
    primes = p.q_primes + p.aux_primes
    t = ntt_tables(p.n, primes)
    top = np.array(primes, dtype=np.uint64).reshape(-1, 1) - np.uint64(1)
    a = np.broadcast_to(top, (len(primes), p.n)).copy()
    fwd = ntt_forward(a, t)
    assert np.all(fwd < top + np.uint64(1))
    assert np.array_equal(ntt_inverse(fwd, t), a)
    # Two polynomials at once give the same as one at a time.
    src = prg("ntt-batch")
    b = residues(src, primes, p.n)
    both = ntt_forward(np.stack([a, b]), t)
    assert np.array_equal(both[1], ntt_forward(b, t))
    assert np.array_equal(ntt_inverse(both, t)[1], b)


@given(seed=st.integers(0, 255))
@settings(max_examples=10, deadline=None)
def test_modular_helpers_match_remainders(seed: int) -> None:
    primes = preset("he8192").q_primes
    m = modp.moduli(primes)
    src = prg("modp", seed)
    a, b = residues(src, primes, 64), residues(src, primes, 64)
    ps = np.array(primes, dtype=object).reshape(-1, 1)
    ao, bo = a.astype(object), b.astype(object)
    assert np.array_equal(modp.add(a, b, m), ((ao + bo) % ps).astype(np.uint64))
    assert np.array_equal(modp.sub(a, b, m), ((ao - bo) % ps).astype(np.uint64))
    assert np.array_equal(modp.neg(a, m), ((-ao) % ps).astype(np.uint64))
    assert np.array_equal(modp.mul(a, b, m), ((ao * bo) % ps).astype(np.uint64))
    wide = src.next_u64(7 * 64).reshape(7, 64)
    assert np.array_equal(modp.reduce(wide, m), (wide.astype(object) % ps).astype(np.uint64))
    stack = np.stack([residues(src, primes, 64) for _ in range(9)])
    want = sum(stack[k].astype(object) * bo for k in range(9)) % ps
    assert np.array_equal(modp.dot(stack, np.stack([b] * 9), m), want.astype(np.uint64))
    signed = src.next_u64(64).view(np.int64)
    assert np.array_equal(
        rns.from_signed(signed, primes), rns.from_int(signed.astype(object), primes)
    )


@given(seed=st.integers(0, 255), index=st.integers(0, 2))
@settings(max_examples=9, deadline=None)
def test_conversions_equal_their_big_integer_definitions(seed: int, index: int) -> None:
    p = SETS[index]
    qs, aux = p.q_primes, p.aux_primes
    src = prg("convert", seed)
    x = residues(src, qs, COLS)
    for centered in (False, True):
        assert np.array_equal(
            bc.base_extend(x, qs, aux, centered), bc.base_extend_exact(x, qs, aux, centered)
        )
    assert np.array_equal(bc.scale_round_t(x, qs), bc.scale_round_t_exact(x, qs))
    for keep in (1, len(qs) // 2, len(qs) - 1):
        assert np.array_equal(bc.divide_round(x, qs, keep), bc.divide_round_exact(x, qs, keep))
    d = residues(src, qs + aux, COLS)  # arbitrary D in (-qP/2, qP/2)
    assert np.array_equal(bc.tensor_scale(d, qs, aux), bc.tensor_scale_exact(d, qs, aux))
    # The tensor products ct_mul forms: |D| < N q^2 / 2, signed.
    bound = p.n * p.q * p.q // 2
    vals = [int.from_bytes(src.next_bytes(64), "little") % (2 * bound) - bound for _ in range(COLS)]
    d = from_ints(vals, qs + aux)
    assert np.array_equal(bc.tensor_scale(d, qs, aux), bc.tensor_scale_exact(d, qs, aux))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_boundary_inputs_take_the_exact_path(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    for name in ("base_extend_exact", "scale_round_t_exact", "tensor_scale_exact"):
        real = getattr(bc, name)

        def counted(*args: object, _real: object = real, _name: str = name) -> np.ndarray:
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args)  # type: ignore[operator,no-any-return]

        monkeypatch.setattr(bc, name, counted)
    p = SETS[index]
    qs, aux = p.q_primes, p.aux_primes
    q, t = p.q, 1 << 64
    # X = 0, X near q/2 (the centering point), X near q, and t X / q within 1/q of a half.
    near_half = (q + 1) // 2 * pow(t, -1, q) % q
    vals = [0, 1, 2, q // 2 - 1, q // 2, q // 2 + 1, q - 2, q - 1, near_half, q - near_half]
    x = from_ints(vals, qs)
    _, s = bc._split(x, bc._basis(qs))
    assert bc._ambiguous(s - np.floor(s), 0.0).size and bc._ambiguous(s - np.floor(s), 0.5).size
    for centered in (False, True):
        assert np.array_equal(
            bc.base_extend(x, qs, aux, centered), bc.base_extend_exact(x, qs, aux, centered)
        )
    assert np.array_equal(bc.scale_round_t(x, qs), bc.scale_round_t_exact(x, qs))
    for keep in (1, len(qs) - 1):
        dropped = math.prod(qs[keep:])
        # c + floor(q''/2) = 0 or -1 mod q'': [c + h]_{q''} at the ends of its range.
        ends = [k * dropped - dropped // 2 + e for k in (1, 2, 5) for e in (-1, 0, 1)]
        xs = from_ints(vals + ends, qs)
        assert np.array_equal(bc.divide_round(xs, qs, keep), bc.divide_round_exact(xs, qs, keep))
    qp = q * math.prod(aux)
    # t D / q within 1/q of a half: D = (q + 1) / 2 * t^-1 mod q (plus multiples of q).
    d_vals = [0, 1, -1, qp // 2, -(qp // 2), near_half, near_half - q, -near_half]
    d = from_ints(d_vals, qs + aux)
    before = calls.get("tensor_scale_exact", 0)
    got = bc.tensor_scale(d, qs, aux)
    assert calls["tensor_scale_exact"] == before + 1  # the fallback ran
    assert np.array_equal(got, bc.tensor_scale_exact(d, qs, aux))
    # Every fast path fell back to its exact definition for some of these inputs.
    assert set(calls) == {"base_extend_exact", "scale_round_t_exact", "tensor_scale_exact"}


def test_flood_residues_equal_the_big_integer_draw() -> None:
    for bits in (40, 64, 131, 348):
        a, b = prg("flood-res", bits % 256), prg("flood-res", bits % 256)
        got = rns.wide_uniform_residues(a, TOY.n, bits, TOY.q_primes)
        assert np.array_equal(got, rns.from_int(rns.wide_uniform(b, TOY.n, bits), TOY.q_primes))
        assert a.next_bytes(8) == b.next_bytes(8)  # the same stream consumed
