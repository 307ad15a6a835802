"""Arithmetic modulo the RNS primes without numpy's `%` (spec/20-he.md §20.2).

numpy's uint64 `%` runs a hardware division per element (about 2 ns); `//` by a divisor that is
constant along the inner loop runs a vectorised multiply-shift (about 0.2 ns). A reduction is
then `x - p * (x // p)`, and sums and differences of canonical residues need one conditional
subtraction, written `min(s, s - p)` (the subtraction wraps around when `s < p`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]


@dataclass(frozen=True)
class Moduli:
    """The primes of one RNS basis as a column, as scalars, and doubled."""

    primes: tuple[int, ...]
    col: U64  # (L, 1)
    scalars: tuple[np.uint64, ...]

    def shaped(self, ndim: int, axis: int = 0, factor: int = 1) -> U64:
        """``factor * p`` shaped to broadcast along the prime axis of an ``ndim`` array."""
        shape = [1] * ndim
        shape[axis] = len(self.primes)
        out: U64 = (self.col * np.uint64(factor)).reshape(shape)
        return out


@cache
def moduli(primes: tuple[int, ...]) -> Moduli:
    col = np.array(primes, dtype=np.uint64).reshape(-1, 1)
    return Moduli(primes, col, tuple(np.uint64(p) for p in primes))


BUFSIZE = 1024  # numpy's ufunc buffer (elements) inside these functions, see reduce_into


def reduce_into(x: U64, m: Moduli, axis: int = -2, scratch: U64 | None = None) -> U64:
    """x mod p in place, for any uint64 x; the prime axis is ``axis``."""
    p = m.shaped(x.ndim, axis % x.ndim)
    q = np.empty_like(x) if scratch is None else scratch
    # With numpy's default 8192-element buffer, rows shorter than that are buffered, and the
    # per-prime divisor then loses the vectorised division-by-a-constant path (10x slower).
    old = np.setbufsize(BUFSIZE)
    try:
        np.floor_divide(x, p, out=q)
    finally:
        np.setbufsize(old)
    np.multiply(q, p, out=q)
    np.subtract(x, q, out=x)
    return x


def reduce(x: U64, m: Moduli, axis: int = -2) -> U64:
    """x mod p (a new array)."""
    return reduce_into(np.array(x, dtype=np.uint64), m, axis)


def mul(a: U64, b: U64, m: Moduli, axis: int = -2) -> U64:
    """a b mod p for residues whose product stays below 2^64 (canonical ones always do)."""
    return reduce_into(np.multiply(a, b, dtype=np.uint64), m, axis)


def add(a: U64, b: U64, m: Moduli, axis: int = -2) -> U64:
    """a + b mod p for canonical residues."""
    s = np.add(a, b, dtype=np.uint64)
    return np.minimum(s, s - m.shaped(s.ndim, axis % s.ndim), out=s)


def sub(a: U64, b: U64, m: Moduli, axis: int = -2) -> U64:
    """a - b mod p for canonical residues."""
    d = np.add(a, m.shaped(np.ndim(a), axis % max(np.ndim(a), 1)), dtype=np.uint64)
    d -= b
    return np.minimum(d, d - m.shaped(d.ndim, axis % d.ndim), out=d)


def neg(a: U64, m: Moduli, axis: int = -2) -> U64:
    """-a mod p for canonical residues (0 stays 0)."""
    d = np.subtract(m.shaped(a.ndim, axis % a.ndim), a, dtype=np.uint64)
    return np.minimum(d, d - m.shaped(d.ndim, axis % d.ndim), out=d)


def dot(a: U64, b: U64, m: Moduli, axis: int = -2) -> U64:
    """sum_k a[k] b[k] mod p over the first axis, for canonical residues: products are below
    p^2 < 2^62, so four of them and a reduced sum stay below 4 p^2 < 2^64 between reductions."""
    acc = np.multiply(a[0], b[0], dtype=np.uint64)
    scratch = np.empty_like(acc)
    pending = 1
    for k in range(1, a.shape[0]):
        if pending == 4:
            reduce_into(acc, m, axis, scratch)
            pending = 1
        np.multiply(a[k], b[k], out=scratch)
        acc += scratch
        pending += 1
    return reduce_into(acc, m, axis, scratch)
