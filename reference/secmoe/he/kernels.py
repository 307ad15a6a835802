"""Compiled loops for the NTT and the selection's multiply-accumulate (spec/20-he.md §20.2.3).

numpy runs one pass over memory per operation; a butterfly is about eight operations, so a
transform reads and writes its array some eight times per stage. These kernels, compiled by
numba (a dependency of galois, named in pyproject.toml), run each butterfly in registers. They
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


@_jit
def forward_rows(a: U64, w: U64, ws: U64, primes: U64) -> None:
    """In place: row r of ``a`` (canonical) becomes its evaluation form mod primes[r % L].

    Cooley-Tukey with psi folded in (``w[i, k] = psi_i^rev(k)``, ``ws`` its Shoup companions);
    entries stay below 4p between stages (Harvey's lazy butterflies), then one reduction."""
    rows, n = a.shape
    count = primes.shape[0]
    for r in range(rows):
        li = r % count
        p = primes[li]
        p2 = p + p
        x = a[r]
        t = n
        m = 1
        while m < n:
            t >>= 1
            for i in range(m):
                wt = w[li, m + i]
                wq = ws[li, m + i]
                j1 = 2 * i * t
                for j in range(j1, j1 + t):
                    u = x[j]
                    if u >= p2:
                        u -= p2
                    v = x[j + t]
                    if v >= p2:
                        v -= p2
                    q = (wq * v) >> np.uint64(32)
                    s = wt * v - q * p
                    x[j] = u + s
                    x[j + t] = u + p2 - s
            m <<= 1
        for j in range(n):
            u = x[j]
            if u >= p2:
                u -= p2
            if u >= p:
                u -= p
            x[j] = u


@_jit
def inverse_rows(a: U64, w: U64, ws: U64, primes: U64, n_inv: U64, n_inv_s: U64) -> None:
    """In place: the inverse of :func:`forward_rows` (Gentleman-Sande, ``w[i, k] =
    psi_i^-rev(k)``), entries below 2p between stages, then times N^-1 and reduced."""
    rows, n = a.shape
    count = primes.shape[0]
    for r in range(rows):
        li = r % count
        p = primes[li]
        p2 = p + p
        x = a[r]
        t = 1
        m = n
        while m > 1:
            h = m >> 1
            j1 = 0
            for i in range(h):
                wt = w[li, h + i]
                wq = ws[li, h + i]
                for j in range(j1, j1 + t):
                    u = x[j]
                    v = x[j + t]
                    s = u + v
                    if s >= p2:
                        s -= p2
                    d = u + p2 - v
                    if d >= p2:
                        d -= p2
                    q = (wq * d) >> np.uint64(32)
                    x[j] = s
                    x[j + t] = wt * d - q * p
                j1 += 2 * t
            t <<= 1
            m = h
        ni = n_inv[li]
        nq = n_inv_s[li]
        for j in range(n):
            v = x[j]
            q = (nq * v) >> np.uint64(32)
            u = ni * v - q * p
            if u >= p:
                u -= p
            x[j] = u


@_jit
def mac_rows(w: Any, s: U64, primes: U64, acc: U64, lo: int, hi: int) -> None:
    """acc[k, i] = sum_e w[e, i] s[e, k, i] mod primes[i] for the primes lo .. hi - 1, all
    inputs canonical: four products (each below 2^62) are summed between reductions."""
    experts = w.shape[0]
    parts = s.shape[1]
    n = w.shape[2]
    chunk = 1024
    run = np.empty((parts, chunk), dtype=np.uint64)
    for i in range(lo, hi):
        p = primes[i]
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            width = c1 - c0
            run[:, :width] = 0
            pending = 0
            for e in range(experts):
                if pending == 4:
                    for k in range(parts):
                        for j in range(width):
                            run[k, j] = run[k, j] % p
                    pending = 0
                for k in range(parts):
                    for j in range(width):
                        run[k, j] += np.uint64(w[e, i, c0 + j]) * s[e, k, i, c0 + j]
                pending += 1
            for k in range(parts):
                for j in range(width):
                    acc[k, i, c0 + j] = run[k, j] % p
