"""Coefficient encodings for matrix x vector and the oblivious selection (spec/20-he.md §20.6).

A (d_out x d_in) matrix is cut into blocks of n_i input columns and n_o output rows with
n_i n_o <= N. Input block b is the polynomial x(X) = sum_j x_{b n_i + j} X^j; weight block
(b_o, b_i) is w(X) = sum_{i, j} W_{b_o n_o + i, b_i n_i + j} X^(i n_i + n_i - 1 - j); in x w the
coefficient i n_i + n_i - 1 is sum_j W_ij x_j (negacyclic wrap-around lands below n_i - 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he import rns
from secmoe.he.bfv import Ciphertext
from secmoe.he.params import HeParams

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class MatvecShape:
    """Block sizes of a d_out x d_in product at ring degree N."""

    d_in: int
    d_out: int
    n_i: int
    n_o: int

    @property
    def in_blocks(self) -> int:
        return math.ceil(self.d_in / self.n_i)

    @property
    def out_blocks(self) -> int:
        return math.ceil(self.d_out / self.n_o)


def matvec_shape(params: HeParams, d_in: int, d_out: int) -> MatvecShape:
    """Choose n_i among the powers of two up to min(d_in, N) and d_in itself (if <= N), with
    n_o = min(d_out, N // n_i), minimising in_blocks + out_blocks; ties go to the larger n_i.

    Implements spec §20.6.1 `matvec_shape` (spec/20-he.md#matvec_shape).
    """
    if d_in < 1 or d_out < 1:
        raise SpecError("matrix dimensions must be positive")
    n = params.n
    cands = sorted(
        {1 << k for k in range(n.bit_length()) if (1 << k) <= min(d_in, n)}
        | ({d_in} if d_in <= n else set())
    )
    best: tuple[int, int, int] | None = None
    for n_i in cands:
        n_o = min(d_out, n // n_i)
        cost = math.ceil(d_in / n_i) + math.ceil(d_out / n_o)
        if best is None or cost < best[0] or (cost == best[0] and n_i > best[1]):
            best = (cost, n_i, n_o)
    assert best is not None
    return MatvecShape(d_in, d_out, best[1], best[2])


def encode_input(params: HeParams, shape: MatvecShape, x: U64, block: int) -> U64:
    """Plaintext of input block ``block``: coefficient j = x_{block n_i + j} (uint64, mod 2^64)."""
    out = np.zeros(params.n, dtype=np.uint64)
    part = np.asarray(x, dtype=np.uint64)[block * shape.n_i : (block + 1) * shape.n_i]
    out[: part.size] = part
    return out


def encode_weights(params: HeParams, shape: MatvecShape, w: I64, b_out: int, b_in: int) -> I64:
    """Signed weight polynomial of block (b_out, b_in): coefficient i n_i + n_i - 1 - j = W_ij."""
    out = np.zeros(params.n, dtype=np.int64)
    rows = np.asarray(w, dtype=np.int64)[
        b_out * shape.n_o : (b_out + 1) * shape.n_o, b_in * shape.n_i : (b_in + 1) * shape.n_i
    ]
    for i in range(rows.shape[0]):
        base = i * shape.n_i + shape.n_i - 1
        out[base - np.arange(rows.shape[1])] = rows[i]
    return out


def decode_output(shape: MatvecShape, plain: U64, b_out: int) -> U64:
    """The outputs of block b_out: coefficients i n_i + n_i - 1."""
    count = min(shape.n_o, shape.d_out - b_out * shape.n_o)
    idx = np.arange(count) * shape.n_i + shape.n_i - 1
    out: U64 = np.asarray(plain, dtype=np.uint64)[idx]
    return out


def weights_ntt(params: HeParams, shape: MatvecShape, w: I64) -> U64:
    """Every weight block in evaluation (NTT) form, (out_blocks, in_blocks, L, N): computed
    once per matrix, so products with many ciphertexts never re-transform the weights."""
    t = rns.tables(params.n, params.q_primes)
    out = np.empty(
        (shape.out_blocks, shape.in_blocks, len(params.q_primes), params.n), dtype=np.uint64
    )
    for bo in range(shape.out_blocks):
        for bi in range(shape.in_blocks):
            poly = rns.from_signed(encode_weights(params, shape, w, bo, bi), params.q_primes)
            out[bo, bi] = rns.ntt_forward(poly, t)
    return out


def ntt_parts(ct: Ciphertext) -> U64:
    """A ciphertext's parts in evaluation form, (degree + 1, L, N)."""
    t = rns.tables(ct.params.n, ct.params.q_primes)
    return np.stack([rns.ntt_forward(p, t) for p in ct.parts])


def from_ntt_parts(params: HeParams, parts: U64) -> Ciphertext:
    t = rns.tables(params.n, params.q_primes)
    return Ciphertext(params, [rns.ntt_inverse(p, t) for p in parts])


def dot_ntt(params: HeParams, weights: U64, cts: U64) -> Ciphertext:
    """sum_k weights[k] * cts[k] in evaluation form, then one inverse transform per part.

    Implements spec §20.6.2 `dot_ntt` (spec/20-he.md#dot_ntt). ``weights`` is (K, L, N) and
    ``cts`` (K, parts, L, N). It serves both the matrix product (K = input blocks, weights a
    row of blocks) and the oblivious selection (K = experts, cts the encrypted one-hot entries,
    each the constant polynomial t_e): sum_e W_e [[t_e]] = [[W_r]].
    """
    p = np.array(params.q_primes, dtype=np.uint64).reshape(1, -1, 1)
    acc = np.zeros(cts.shape[1:], dtype=np.uint64)
    # Each product is < 2^62; reduce after every addition to stay below 2^63.
    for k in range(weights.shape[0]):
        acc = (acc + weights[k][None] * cts[k] % p) % p
    return from_ntt_parts(params, acc)
