"""Compiled loops for the NTT, the selection's multiply-accumulate, the flood's residues and the
exact RNS conversions (spec/20-he.md §20.2.3, §20.12).

numpy runs one pass over memory per operation; a butterfly is about eight operations, so a
transform reads and writes its array some eight times per stage. These kernels, compiled by
numba (a runtime dependency, pinned in pyproject.toml), run each butterfly in registers. They
compute the same canonical residues as the numpy transforms of ``secmoe.he.ntt`` (tested equal on
every parameter set, and against galois over GF(p)): a fixed linear map has one result whatever
the order of its operations. They release the GIL, so threads run them on several cores.

Modular products use Shoup's precomputed quotients with 32-bit words: for a twiddle ``w < p`` its
companion ``w' = floor(w 2^32 / p)``; for ``v < 2^32``, ``q = (w' v) >> 32`` and ``w v - q p`` is
``w v mod p`` or that plus ``p`` (all products below 2^64 since ``p < 2^31``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]
F = TypeVar("F", bound=Callable[..., Any])


def _jit(fn: F) -> F:
    """numba's njit (no GIL, cached on disk), typed as the function it compiles."""
    return cast(F, numba.njit(nogil=True, cache=True)(fn))


LOW32 = np.uint64(0xFFFFFFFF)
SHIFT = np.uint64(32)


def _inline(fn: F) -> F:
    """A helper compiled into its callers (numba inlines it at the IR level)."""
    return cast(F, numba.njit(nogil=True, cache=True, inline="always")(fn))


@_inline
def _ct_butterflies(lo: U64, hi: U64, wt: np.uint64, wq: np.uint64, p: np.uint64) -> None:
    """lo, hi = u + w v, u - w v (lazily: inputs below 4p, outputs below 4p). ``lo`` and ``hi``
    are separate views and the operands are masked to 32 bits, which lets the compiler use
    vector 32 x 32 -> 64-bit products."""
    p2 = p + p
    for j in range(lo.shape[0]):
        u = lo[j]
        u = u - p2 if u >= p2 else u
        v = hi[j]
        v = (v - p2 if v >= p2 else v) & LOW32
        r = wt * v - ((wq * v) >> SHIFT) * p  # w v mod p, or that plus p
        lo[j] = u + r
        hi[j] = u + p2 - r


@_inline
def _gs_butterflies(lo: U64, hi: U64, wt: np.uint64, wq: np.uint64, p: np.uint64) -> None:
    """lo, hi = u + v, (u - v) w (inputs below 2p, outputs below 2p)."""
    p2 = p + p
    for j in range(lo.shape[0]):
        u = lo[j]
        v = hi[j]
        s = u + v
        d = u + p2 - v
        d = (d - p2 if d >= p2 else d) & LOW32
        lo[j] = s - p2 if s >= p2 else s
        hi[j] = wt * d - ((wq * d) >> SHIFT) * p


@_jit
def forward_rows(a: U64, w: U64, ws: U64, primes: U64) -> None:
    """In place: row r of ``a`` (canonical) becomes its evaluation form mod primes[r % L].

    Cooley-Tukey with psi folded in (``w[i, k] = psi_i^rev(k)``, ``ws`` its Shoup companions);
    entries stay below 4p between stages (Harvey's lazy butterflies), then one reduction."""
    rows, n = a.shape
    count = primes.shape[0]
    for r in range(rows):
        li = r % count
        p = primes[li] & LOW32
        x = a[r]
        t = n
        m = 1
        while m < n:
            t >>= 1
            for i in range(m):
                j1 = 2 * i * t
                wt = w[li, m + i] & LOW32
                wq = ws[li, m + i] & LOW32
                _ct_butterflies(x[j1 : j1 + t], x[j1 + t : j1 + 2 * t], wt, wq, p)
            m <<= 1
        p2 = p + p
        for j in range(n):
            u = x[j]
            u = u - p2 if u >= p2 else u
            x[j] = u - p if u >= p else u


@_jit
def inverse_rows(a: U64, w: U64, ws: U64, primes: U64, n_inv: U64, n_inv_s: U64) -> None:
    """In place: the inverse of :func:`forward_rows` (Gentleman-Sande, ``w[i, k] =
    psi_i^-rev(k)``), entries below 2p between stages, then times N^-1 and reduced."""
    rows, n = a.shape
    count = primes.shape[0]
    for r in range(rows):
        li = r % count
        p = primes[li] & LOW32
        x = a[r]
        t = 1
        m = n
        while m > 1:
            h = m >> 1
            for i in range(h):
                j1 = 2 * i * t
                wt = w[li, h + i] & LOW32
                wq = ws[li, h + i] & LOW32
                _gs_butterflies(x[j1 : j1 + t], x[j1 + t : j1 + 2 * t], wt, wq, p)
            t <<= 1
            m = h
        ni = n_inv[li] & LOW32
        nq = n_inv_s[li] & LOW32
        for j in range(n):
            v = x[j] & LOW32
            u = ni * v - ((nq * v) >> SHIFT) * p
            x[j] = u - p if u >= p else u


@_inline
def _mul_add(acc: U64, w: Any, s: Any) -> None:
    """acc += w s for residues below 2^32 (32 x 32 -> 64-bit products; either word width)."""
    for j in range(acc.shape[0]):
        acc[j] += (np.uint64(w[j]) & LOW32) * (np.uint64(s[j]) & LOW32)


@_inline
def _fold(acc: U64, c: np.uint64) -> None:
    """acc = acc mod p up to a multiple of p, below 2^62 + 2^33, with c = 2^32 mod p: twice
    x -> (x >> 32) c + (x mod 2^32), which keeps x mod p (each product is below 2^63)."""
    for j in range(acc.shape[0]):
        x = acc[j]
        x = (x >> SHIFT) * c + (x & LOW32)
        acc[j] = (x >> SHIFT) * c + (x & LOW32)


@_jit
def mac_rows(ws: Any, s: Any, primes: U64, acc: U64, lo: int, hi: int) -> None:
    """acc[b, k, i] = sum_e ws[b][e, i] s[e, k, i] mod primes[i] for each block ``ws[b]`` (a
    tuple of (E, L, N) arrays) and the primes lo .. hi - 1, all inputs canonical. Each product is
    below (p - 1)^2 <= 2^62 - 2^33 + 4: four are summed from zero, then the sum is folded
    (:func:`_fold`) and three more fit below 2^64 each time. The blocks share one pass over the
    selectors ``s``, which are most of the memory traffic (§40.7.3)."""
    blocks = len(ws)
    experts = s.shape[0]
    parts = s.shape[1]
    n = s.shape[3]
    chunk = 2048
    run = np.empty((blocks, parts, chunk), dtype=np.uint64)
    for i in range(lo, hi):
        p = primes[i]
        c = np.uint64((1 << 32) % p)
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            width = c1 - c0
            run[:, :, :width] = 0
            pending, limit = 0, 4
            for e in range(experts):
                if pending == limit:
                    for b in range(blocks):
                        for k in range(parts):
                            _fold(run[b, k, :width], c)
                    pending, limit = 0, 3
                for k in range(parts):
                    sel = s[e, k, i, c0:c1]
                    for b in range(blocks):
                        _mul_add(run[b, k, :width], ws[b][e, i, c0:c1], sel)
                pending += 1
            for b in range(blocks):
                for k in range(parts):
                    for j in range(width):
                        acc[b, k, i, c0 + j] = run[b, k, j] % p


@_jit
def digit_residues(digits: U64, consts: U64, shoup: U64, primes: U64, start: U64, out: U64) -> None:
    """out[i, j] = (start[i] + sum_m digits[j, m] consts[i, m]) mod primes[i]: the residues of
    integers given by their 32-bit digits (``consts[i, m] = 2^(32 m) mod p_i``, with Shoup
    companions), plus a canonical constant. Each Shoup product lies in [0, 2p), below 2^32, so
    the sum stays far below 2^64 until its one reduction."""
    n, count = digits.shape
    for i in range(primes.shape[0]):
        p = primes[i] & LOW32
        for j in range(n):
            acc = start[i] & LOW32
            for m in range(count):
                v = digits[j, m] & LOW32
                acc += consts[i, m] * v - ((shoup[i, m] * v) >> SHIFT) * p
            out[i, j] = acc % p


@_jit
def matmul_mod_rows(mat: U64, z: U64, primes: U64, out: U64) -> None:
    """out[d, j] = sum_i mat[d, i] z[i, j] mod primes[d], for entries below 2^32 (only their
    low 32 bits are read) whose products are at most (2^31 - 1)^2 (as when both are below 2^31):
    four products are summed from zero, then the sum is folded (:func:`_fold`) and three more
    fit below 2^64 each time."""
    rows, terms = mat.shape
    n = z.shape[1]
    chunk = 2048
    run = np.empty(chunk, dtype=np.uint64)
    for d in range(rows):
        p = primes[d] & LOW32
        c = np.uint64((1 << 32) % p)
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            width = c1 - c0
            run[:width] = 0
            pending, limit = 0, 4
            for i in range(terms):
                if pending == limit:
                    _fold(run[:width], c)
                    pending, limit = 0, 3
                m = mat[d, i] & LOW32
                zi = z[i, c0:c1]
                for j in range(width):
                    run[j] += m * (zi[j] & LOW32)
                pending += 1
            for j in range(width):
                out[d, c0 + j] = run[j] % p


@_jit
def shoup_rows(
    x: U64, primes: U64, w: U64, w_shoup: U64, inv_p: Any, r: U64, whole: U64, frac: Any
) -> None:
    """For x[i, j] < p_i and constants w[i] < p_i: x w = a p + b with b in [0, p) (Shoup's
    quotient, corrected once); r[i, j] = b, whole[j] = sum_i a[i, j] (wrapping) and
    frac[j] = sum_i b[i, j] / p_i in float64 (``inv_p`` the rounded 1 / p_i)."""
    rows, n = x.shape
    for j in range(n):
        whole[j] = 0
        frac[j] = 0.0
    for i in range(rows):
        p = primes[i] & LOW32
        c = w[i] & LOW32
        cq = w_shoup[i] & LOW32
        ip = inv_p[i]
        for j in range(n):
            v = x[i, j] & LOW32
            q = (cq * v) >> SHIFT
            b = c * v - q * p
            if b >= p:
                b -= p
                q += 1
            r[i, j] = b
            whole[j] += q
            frac[j] += np.float64(b) * ip
