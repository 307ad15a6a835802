"""Polynomials in RNS form and conversions to and from exact integers (spec/20-he.md §20.2)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from numpy.typing import NDArray

from secmoe.he import modp
from secmoe.he.kernels import digit_residues
from secmoe.he.ntt import NttTables, ntt_forward, ntt_inverse, ntt_tables
from secmoe.randomness import Prg

__all__ = ["ntt_forward", "ntt_inverse"]

U64 = NDArray[np.uint64]
Obj = NDArray[np.object_]


def primes_col(primes: tuple[int, ...]) -> U64:
    return np.array(primes, dtype=np.uint64).reshape(-1, 1)


def from_signed(values: NDArray[np.int64], primes: tuple[int, ...]) -> U64:
    """Small signed integer coefficients (|v| < 2^62) to residues, one row per prime."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    out = np.empty((len(primes), v.size), dtype=np.int64)
    for i, p in enumerate(primes):
        np.floor_divide(v, np.int64(p), out=out[i])  # floor: the remainder is in [0, p)
    out *= np.array(primes, dtype=np.int64).reshape(-1, 1)
    np.subtract(v, out, out=out)
    return out.view(np.uint64)


def from_int(values: Obj | list[int], primes: tuple[int, ...]) -> U64:
    """Exact Python integers (any size, any sign) to residues."""
    vals = np.asarray(values, dtype=object).reshape(-1)
    return np.stack([(vals % p).astype(np.uint64) for p in primes])


_LOW32 = np.uint64(0xFFFFFFFF)
_HALF64 = np.uint64(1 << 63)


def mulhi_round(a: np.uint64, b: U64) -> U64:
    """floor((a b + 2^63) / 2^64) for 64-bit a and b, with 32-bit limbs (no 128-bit type)."""
    a0, a1 = a & _LOW32, a >> np.uint64(32)
    b0, b1 = b & _LOW32, b >> np.uint64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & _LOW32) + (p10 & _LOW32)
    hi = p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))
    lo = (mid << np.uint64(32)) | (p00 & _LOW32)
    carry = ((lo + _HALF64) < lo).astype(np.uint64)
    out: U64 = hi + carry
    return out


@cache
def _crt_weights(primes: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    q = math.prod(primes)
    weights = []
    for p in primes:
        m = q // p
        weights.append(m * pow(m % p, -1, p))
    return q, tuple(weights)


def to_int(residues: U64, primes: tuple[int, ...], centered: bool = True) -> Obj:
    """Exact integers from residues by the CRT, in (-Q/2, Q/2] (centered) or [0, Q)."""
    q, weights = _crt_weights(primes)
    acc: Obj = np.zeros(residues.shape[1], dtype=object)
    for row, w in zip(residues, weights, strict=True):
        acc = acc + row.astype(object) * w
    acc = acc % q
    if centered:
        acc = np.where(acc > q // 2, acc - q, acc)
    return acc


def add(a: U64, b: U64, primes: tuple[int, ...]) -> U64:
    """a + b for canonical residues (every entry below its prime)."""
    return modp.add(a, b, modp.moduli(primes))


def sub(a: U64, b: U64, primes: tuple[int, ...]) -> U64:
    return modp.sub(a, b, modp.moduli(primes))


def neg(a: U64, primes: tuple[int, ...]) -> U64:
    return modp.neg(a, modp.moduli(primes))


def mul_eval(a: U64, b: U64, primes: tuple[int, ...]) -> U64:
    """Pointwise product of canonical residues (evaluation form), rows ``primes``."""
    return modp.mul(a, b, modp.moduli(primes))


def mul(a: U64, b: U64, primes: tuple[int, ...]) -> U64:
    """Negacyclic product of two RNS polynomials in coefficient form."""
    t = tables(a.shape[1], primes)
    return ntt_inverse(mul_eval(ntt_forward(a, t), ntt_forward(b, t), primes), t)


def tables(n: int, primes: tuple[int, ...]) -> NttTables:
    return ntt_tables(n, primes)


def uniform(prg_for_prime: list[Prg], n: int, primes: tuple[int, ...]) -> U64:
    """A uniform polynomial mod q: row i = next_below(N, p_i) of the i-th PRG."""
    return np.stack([g.next_below(n, p) for g, p in zip(prg_for_prime, primes, strict=True)])


def ternary(prg: Prg, n: int) -> NDArray[np.int64]:
    """Coefficients uniform in {-1, 0, 1}: next_below(N, 3) - 1."""
    out: NDArray[np.int64] = prg.next_below(n, 3).astype(np.int64) - 1
    return out


def cbd(prg: Prg, n: int, eta: int) -> NDArray[np.int64]:
    """Centered binomial noise: per coefficient 6 stream bytes (a 48-bit little-endian word w),
    e = popcount(bits 0..eta-1 of w) - popcount(bits eta..2 eta-1 of w); eta <= 24."""
    words = np.zeros((n, 8), dtype=np.uint8)  # each 48-bit word widened to a uint64
    words[:, :6] = np.frombuffer(prg.next_bytes(6 * n), dtype=np.uint8).reshape(n, 6)
    w = words.view("<u8").reshape(n)
    mask = np.uint64((1 << eta) - 1)
    low = np.bitwise_count(w & mask).astype(np.int64)
    high = np.bitwise_count((w >> np.uint64(eta)) & mask).astype(np.int64)
    out: NDArray[np.int64] = low - high
    return out


def wide_uniform_residues(prg: Prg, n: int, bits: int, primes: tuple[int, ...]) -> U64:
    """``from_int(wide_uniform(prg, n, bits), primes)`` without big integers: the same stream
    words, split into 32-bit digits d_m, each contributing d_m (2^(32 m) mod p) (a compiled
    loop, spec §20.2.3)."""
    words = (bits + 63) // 64
    raw = prg.next_u64(n * words).reshape(n, words).copy()
    top = bits - 64 * (words - 1)  # bits kept of the last word
    if top < 64:
        raw[:, -1] &= np.uint64((1 << top) - 1)
    digits = np.empty((n, 2 * words), dtype=np.uint64)
    digits[:, 0::2] = raw & np.uint64(0xFFFFFFFF)
    digits[:, 1::2] = raw >> np.uint64(32)
    consts, shoup = _digit_consts(primes, 2 * words)
    start = np.array([(-(1 << (bits - 1))) % p for p in primes], dtype=np.uint64)
    out = np.empty((len(primes), n), dtype=np.uint64)
    digit_residues(digits, consts, shoup, np.array(primes, dtype=np.uint64), start, out)
    return out


@cache
def _digit_consts(primes: tuple[int, ...], count: int) -> tuple[U64, U64]:
    """2^(32 m) mod p for m < count, per prime, and their Shoup companions floor(c 2^32 / p)."""
    consts = [[pow(2, 32 * m, p) for m in range(count)] for p in primes]
    shoup = [[(c << 32) // p for c in row] for row, p in zip(consts, primes, strict=True)]
    return np.array(consts, dtype=np.uint64), np.array(shoup, dtype=np.uint64)


def wide_uniform(prg: Prg, n: int, bits: int) -> Obj:
    """Integers uniform in [-2^(bits-1), 2^(bits-1)): ceil(bits/64) words per coefficient,
    little-endian word order, masked to ``bits`` bits, minus 2^(bits-1)."""
    words = (bits + 63) // 64
    raw = prg.next_u64(n * words).reshape(n, words)
    out = np.zeros(n, dtype=object)
    for k in range(words):
        out = out + (raw[:, k].astype(object) << (64 * k))
    mask = (1 << bits) - 1
    half = 1 << (bits - 1)
    result: Obj = np.array([(int(v) & mask) - half for v in out], dtype=object)
    return result
