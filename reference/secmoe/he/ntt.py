"""Negacyclic number-theoretic transform over several primes at once (spec/20-he.md#ntt_forward).

A polynomial in RNS form is an array (L, N) of residues, row i modulo prime i. The forward
transform evaluates a(X) at the odd powers psi^(2k+1) of a primitive 2N-th root psi, so that
pointwise products are products in Z_p[X]/(X^N + 1).

The transform is the merged Cooley-Tukey / Gentleman-Sande pair (psi folded into the twiddles,
spec §20.2) in Stockham order: every stage reads the two halves of the array as its butterfly
inputs and writes the outputs interleaved, so every numpy loop runs over N/2 elements per prime,
never over short blocks. Residues are reduced lazily (spec §20.2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from secmoe.he.kernels import forward_rows, inverse_rows
from secmoe.he.modp import BUFSIZE, Moduli, moduli, reduce_into

U64 = NDArray[np.uint64]


def _primitive_2n_root(p: int, n: int) -> int:
    """The smallest g^((p-1)/2N) of order exactly 2N, g = 2, 3, ... (spec §20.2)."""
    for g in range(2, p):
        psi = pow(g, (p - 1) // (2 * n), p)
        if pow(psi, n, p) == p - 1:
            return psi
    raise ValueError(f"no primitive 2N-th root modulo {p}")


def _bit_reverse(n: int) -> NDArray[np.int64]:
    bits = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev


def _powers(base: NDArray[np.uint64], count: int, m: Moduli) -> U64:
    """(L, count) array of base_i^j mod p_i, by doubling (products stay below 2^62)."""
    out = np.ones((len(m.primes), count), dtype=np.uint64)
    filled, step = 1, base.reshape(-1, 1).astype(np.uint64)
    while filled < count:
        take = min(filled, count - filled)
        out[:, filled : filled + take] = out[:, :take] * step % m.col
        step = step * step % m.col
        filled += take
    return out


@dataclass(frozen=True, eq=False)
class NttTables:
    """Twiddles for one (N, primes) pair.

    ``fwd[s]`` holds psi^rev(2^s + (j mod 2^s)) for the N/2 butterflies j of stage s, either as a
    full (L, N/2) array or, when 2^s >= 64, as its period (L, 1, 2^s); ``inv[s]`` the same with
    psi^-1, and for s = 0 also times N^-1.
    """

    n: int
    primes: U64  # (L, 1)
    mod: Moduli
    fwd: tuple[U64, ...]
    inv: tuple[U64, ...]
    n_inv: U64  # (L, 1): N^-1 mod p


_PERIODIC = 64  # stages with at least this many distinct twiddles broadcast their period


@cache
def ntt_tables(n: int, primes: tuple[int, ...]) -> NttTables:
    m = moduli(primes)
    count, log_n = len(primes), n.bit_length() - 1
    psi = np.array([_primitive_2n_root(p, n) for p in primes], dtype=np.uint64)
    psi_inv = np.array([pow(int(x), -1, p) for x, p in zip(psi, primes, strict=True)], np.uint64)
    rev = _bit_reverse(n)
    fwd_rev = _powers(psi, n, m)[:, rev]  # psi^rev(k)
    inv_rev = _powers(psi_inv, n, m)[:, rev]
    n_inv = np.array([pow(n, -1, p) for p in primes], dtype=np.uint64).reshape(-1, 1)
    inv_rev[:, 1] = inv_rev[:, 1] * n_inv[:, 0] % m.col[:, 0]  # stage 0's only twiddle
    fwd: list[U64] = []
    inv: list[U64] = []
    for s in range(log_n):
        k = 1 << s
        for table, out in ((fwd_rev, fwd), (inv_rev, inv)):
            period = table[:, k : 2 * k]
            if k >= _PERIODIC:
                out.append(period.reshape(count, 1, k).copy())
            else:
                out.append(np.tile(period, (1, n // (2 * k))))
    return NttTables(n, m.col, m, tuple(fwd), tuple(inv), n_inv)


@cache
def _batched(tables: NttTables, k: int) -> NttTables:
    """The tables of ``k`` stacked copies of the basis (one transform for k polynomials)."""
    if k == 1:
        return tables

    def tile(w: U64) -> U64:
        return np.tile(w, (k,) + (1,) * (w.ndim - 1))

    return NttTables(
        tables.n,
        tile(tables.primes),
        moduli(tables.mod.primes * k),
        tuple(tile(w) for w in tables.fwd),
        tuple(tile(w) for w in tables.inv),
        tile(tables.n_inv),
    )


def _twiddle_mul(x: U64, w: U64, out: U64) -> None:
    """out = x w (x, out of shape (L, N/2); w full or periodic)."""
    if w.ndim == 3:
        rows, period = w.shape[0], w.shape[2]
        np.multiply(x.reshape(rows, -1, period), w, out=out.reshape(rows, -1, period))
    else:
        np.multiply(x, w, out=out)


def _reduce_product(tmp: U64, p: U64, q: U64) -> None:
    """tmp = tmp mod p in place (q is scratch)."""
    np.floor_divide(tmp, p, out=q)
    np.multiply(q, p, out=q)
    np.subtract(tmp, q, out=tmp)


def _forward(a: U64, tables: NttTables) -> U64:
    n, rows = tables.n, a.shape[0]
    half = n // 2
    p = tables.primes
    p2 = p * np.uint64(2)
    work = (np.empty((rows, n), dtype=np.uint64), np.empty((rows, n), dtype=np.uint64))
    tmp = np.empty((rows, half), dtype=np.uint64)
    q = np.empty((rows, half), dtype=np.uint64)
    x, bound = a, 1  # every entry of x is below bound * p
    for s, w in enumerate(tables.fwd):
        y = work[s % 2].reshape(rows, half, 2)
        u, v = x[:, :half], x[:, half:]
        # Step 1: r = w v mod p (v < 4p, so w v < 4 p^2 < 2^64).
        _twiddle_mul(v, w, tmp)
        _reduce_product(tmp, p, q)
        # Step 2: fold u below 2p only when the outputs would otherwise reach 5p.
        if bound == 4:
            np.subtract(u, p2, out=q)
            np.minimum(u, q, out=q)
            u, bound = q, 2
        # Step 3: outputs u + r and u + p - r, interleaved: pair j goes to 2j and 2j + 1.
        np.add(u, tmp, out=y[:, :, 0])
        np.add(u, p, out=q)
        np.subtract(q, tmp, out=y[:, :, 1])
        x, bound = work[s % 2], bound + 1
    return reduce_into(np.asarray(x), tables.mod, axis=0)


def _inverse(a: U64, tables: NttTables) -> U64:
    n, rows = tables.n, a.shape[0]
    half = n // 2
    p = tables.primes
    work = (np.empty((rows, n), dtype=np.uint64), np.empty((rows, n), dtype=np.uint64))
    tmp = np.empty((rows, half), dtype=np.uint64)
    q = np.empty((rows, half), dtype=np.uint64)
    x, bound = a, 1
    for s in range(len(tables.inv) - 1, -1, -1):
        y = work[s % 2]
        pairs = x.reshape(rows, half, 2)
        u, v = pairs[:, :, 0], pairs[:, :, 1]
        lo, hi = y[:, :half], y[:, half:]
        # Step 1: d = u - v + bound p in (0, 2 bound p), s = u + v (inputs below bound p <= 2p).
        np.add(u, p * np.uint64(bound), out=tmp)
        np.subtract(tmp, v, out=tmp)
        np.add(u, v, out=lo)
        # Step 2: fold the sum below 2p (stage 0: multiply by N^-1, reduced to [0, p)).
        if s == 0:
            np.multiply(lo, tables.n_inv, out=lo)
            _reduce_product(lo, p, q)
        elif bound == 2:
            np.subtract(lo, p * np.uint64(2), out=q)
            np.minimum(lo, q, out=lo)
        # Step 3: the difference times the twiddle, reduced to [0, p).
        _twiddle_mul(tmp, tables.inv[s], tmp)
        np.floor_divide(tmp, p, out=q)
        np.multiply(q, p, out=q)
        np.subtract(tmp, q, out=hi)
        x, bound = work[s % 2], 2
    return np.asarray(x)


CHUNK_ENTRIES = 1 << 18  # entries (rows x N) transformed together: 2 MiB per working array


def _chunked(a: U64, tables: NttTables, run: Callable[[U64, NttTables], U64]) -> U64:
    """Apply ``run`` to blocks of rows: a block's four working arrays (input, two stage
    buffers, scratch) should stay in the core's cache, which one large batch would not."""
    flat = np.ascontiguousarray(a, dtype=np.uint64).reshape(-1, tables.n)
    count = tables.primes.shape[0]
    batched = _batched(tables, flat.shape[0] // count)
    step = max(1, CHUNK_ENTRIES // tables.n)
    if step >= flat.shape[0]:
        return run(flat, batched).reshape(a.shape)
    out = np.empty_like(flat)
    for lo in range(0, flat.shape[0], step):
        hi = min(lo + step, flat.shape[0])
        out[lo:hi] = run(flat[lo:hi], _rows_of(batched, lo, hi))
    return out.reshape(a.shape)


@cache
def _rows_of(tables: NttTables, lo: int, hi: int) -> NttTables:
    """The tables of rows lo .. hi - 1 of a (batched) basis."""
    return NttTables(
        tables.n,
        tables.primes[lo:hi],
        moduli(tables.mod.primes[lo:hi]),
        tuple(w[lo:hi] for w in tables.fwd),
        tuple(w[lo:hi] for w in tables.inv),
        tables.n_inv[lo:hi],
    )


@dataclass(frozen=True, eq=False)
class KernelTables:
    """The compiled transforms' twiddles for one (N, primes) pair, (L, N) each: psi^rev(k) and
    psi^-rev(k) with their Shoup companions floor(w 2^32 / p), and N^-1 with its companion."""

    primes: U64  # (L,)
    fwd: U64
    fwd_shoup: U64
    inv: U64
    inv_shoup: U64
    n_inv: U64  # (L,)
    n_inv_shoup: U64


def _shoup(w: U64, primes: U64) -> U64:
    out: U64 = (w << np.uint64(32)) // primes  # w < p < 2^31: w 2^32 < 2^63
    return out


@cache
def kernel_tables(n: int, primes: tuple[int, ...]) -> KernelTables:
    m = moduli(primes)
    psi = np.array([_primitive_2n_root(p, n) for p in primes], dtype=np.uint64)
    psi_inv = np.array([pow(int(x), -1, p) for x, p in zip(psi, primes, strict=True)], np.uint64)
    rev = _bit_reverse(n)
    fwd = np.ascontiguousarray(_powers(psi, n, m)[:, rev])
    inv = np.ascontiguousarray(_powers(psi_inv, n, m)[:, rev])
    col = m.col
    n_inv = np.array([pow(n, -1, p) for p in primes], dtype=np.uint64)
    flat = np.array(primes, dtype=np.uint64)
    return KernelTables(
        flat, fwd, _shoup(fwd, col), inv, _shoup(inv, col), n_inv, _shoup(n_inv, flat)
    )


def _rows(a: U64, n: int) -> U64:
    """A fresh C-contiguous uint64 copy of ``a`` as (rows, N): the kernels work in place."""
    return np.array(a, dtype=np.uint64, order="C", copy=True).reshape(-1, n)


def ntt_forward(a: U64, tables: NttTables) -> U64:
    """Evaluation form of each row, in bit-reversed order: entry rev(k) is a(psi^(2k+1)) =
    sum_j a_j psi^j omega^(jk).

    Implements spec §20.2.1 `ntt_forward` (spec/20-he.md#ntt_forward). ``a`` is (L, N) or
    (K, L, N) (K polynomials transformed together), canonical residues. Computed by the compiled
    loops of spec §20.2.3 (the same residues as :func:`ntt_forward_numpy`).
    """
    k = kernel_tables(tables.n, tables.mod.primes[: _basis_rows(tables)])
    out = _rows(a, tables.n)
    if out.shape[0] % k.primes.shape[0]:
        raise ValueError("the rows of a batch are whole copies of the basis")
    forward_rows(out, k.fwd, k.fwd_shoup, k.primes)
    return out.reshape(np.shape(a))


def ntt_inverse(a: U64, tables: NttTables) -> U64:
    """Inverse of :func:`ntt_forward`.

    Implements spec §20.2.2 `ntt_inverse` (spec/20-he.md#ntt_inverse).
    """
    k = kernel_tables(tables.n, tables.mod.primes[: _basis_rows(tables)])
    out = _rows(a, tables.n)
    if out.shape[0] % k.primes.shape[0]:
        raise ValueError("the rows of a batch are whole copies of the basis")
    inverse_rows(out, k.inv, k.inv_shoup, k.primes, k.n_inv, k.n_inv_shoup)
    return out.reshape(np.shape(a))


def _basis_rows(tables: NttTables) -> int:
    return int(tables.primes.shape[0])


def ntt_forward_numpy(a: U64, tables: NttTables) -> U64:
    """:func:`ntt_forward` in numpy operations only (the reference the kernels are tested
    against)."""
    # A small ufunc buffer keeps numpy on its unbuffered loops, where a per-prime divisor that
    # is constant along a row takes the vectorised division path.
    old = np.setbufsize(BUFSIZE)
    try:
        return _chunked(a, tables, _forward)
    finally:
        np.setbufsize(old)


def ntt_inverse_numpy(a: U64, tables: NttTables) -> U64:
    """:func:`ntt_inverse` in numpy operations only."""
    old = np.setbufsize(BUFSIZE)
    try:
        return _chunked(a, tables, _inverse)
    finally:
        np.setbufsize(old)
