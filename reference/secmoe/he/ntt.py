"""Negacyclic number-theoretic transform over several primes at once (spec/20-he.md#ntt_forward).

A polynomial in RNS form is an array (L, N) of residues, row i modulo prime i. The forward
transform evaluates a(X) at the odd powers psi^(2k+1) of a primitive 2N-th root psi, so that
pointwise products are products in Z_p[X]/(X^N + 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

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


@dataclass(frozen=True)
class NttTables:
    """Twiddles for one (N, primes) pair."""

    n: int
    primes: U64  # (L, 1)
    psi_pow: U64  # (L, N): psi^j
    psi_inv_pow_n_inv: U64  # (L, N): psi^-j * N^-1
    stage_w: tuple[U64, ...]  # per stage: (L, 1, half) powers of omega
    stage_w_inv: tuple[U64, ...]
    rev: NDArray[np.int64]


@cache
def ntt_tables(n: int, primes: tuple[int, ...]) -> NttTables:
    ps = np.array(primes, dtype=np.uint64).reshape(-1, 1)
    psi_pow, psi_inv_n, ws, ws_inv = [], [], [], []
    for p in primes:
        psi = _primitive_2n_root(p, n)
        psi_inv = pow(psi, p - 2, p)
        n_inv = pow(n, p - 2, p)
        psi_pow.append([pow(psi, j, p) for j in range(n)])
        psi_inv_n.append([pow(psi_inv, j, p) * n_inv % p for j in range(n)])
    for half in (1 << s for s in range(n.bit_length() - 1)):
        length = 2 * half
        w_rows, wi_rows = [], []
        for p, row in zip(primes, psi_pow, strict=True):
            omega = row[2] if n > 1 else 1  # psi^2 has order N
            w_len = pow(omega, n // length, p)
            w_len_inv = pow(w_len, p - 2, p)
            w_rows.append([pow(w_len, j, p) for j in range(half)])
            wi_rows.append([pow(w_len_inv, j, p) for j in range(half)])
        ws.append(np.array(w_rows, dtype=np.uint64).reshape(len(primes), 1, half))
        ws_inv.append(np.array(wi_rows, dtype=np.uint64).reshape(len(primes), 1, half))
    return NttTables(
        n,
        ps,
        np.array(psi_pow, dtype=np.uint64),
        np.array(psi_inv_n, dtype=np.uint64),
        tuple(ws),
        tuple(ws_inv),
        _bit_reverse(n),
    )


def _cyclic(a: U64, tables: NttTables, inverse: bool) -> U64:
    p3 = tables.primes.reshape(-1, 1, 1)
    x = a[:, tables.rev]
    n = tables.n
    stages = tables.stage_w_inv if inverse else tables.stage_w
    for w in stages:
        half = w.shape[2]
        blocks = x.reshape(x.shape[0], n // (2 * half), 2 * half)
        u = blocks[:, :, :half]
        v = blocks[:, :, half:] * w % p3
        x = np.concatenate([(u + v) % p3, (u + p3 - v) % p3], axis=2).reshape(x.shape[0], n)
    return x


def ntt_forward(a: U64, tables: NttTables) -> U64:
    """Evaluation form of each row: a_j psi^j, then a cyclic NTT with omega = psi^2.

    Implements spec §20.2.1 `ntt_forward` (spec/20-he.md#ntt_forward).
    """
    return _cyclic(a * tables.psi_pow % tables.primes, tables, inverse=False)


def ntt_inverse(a: U64, tables: NttTables) -> U64:
    """Inverse of :func:`ntt_forward`.

    Implements spec §20.2.2 `ntt_inverse` (spec/20-he.md#ntt_inverse).
    """
    return _cyclic(a, tables, inverse=True) * tables.psi_inv_pow_n_inv % tables.primes
