"""Coefficient encodings for matrix products and the oblivious selection (spec/20-he.md §20.6).

X (tokens x d_in) and W (d_out x d_in) are cut into blocks of n_t tokens, n_i input columns and
n_o output rows with n_t n_i n_o <= N. Input block (b_t, b_i) is the polynomial
sum_{t, j} X_{t, j} X^(t n_i n_o + j); weight block (b_o, b_i) is
sum_{i, j} W_{i, j} X^(i n_i + n_i - 1 - j); in their product the coefficient
t n_i n_o + i n_i + n_i - 1 is sum_j X_{t, j} W_{i, j}: no other term reaches an output position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he import modp, noise, respack, rns
from secmoe.he.bfv import Ciphertext
from secmoe.he.params import HeParams

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class MatmulShape:
    """Block sizes of X W^T for X (tokens x d_in) and W (d_out x d_in) at ring degree N."""

    tokens: int
    d_in: int
    d_out: int
    n_t: int
    n_i: int
    n_o: int

    @property
    def token_blocks(self) -> int:
        return math.ceil(self.tokens / self.n_t)

    @property
    def in_blocks(self) -> int:
        return math.ceil(self.d_in / self.n_i)

    @property
    def out_blocks(self) -> int:
        return math.ceil(self.d_out / self.n_o)

    @property
    def stride(self) -> int:
        """Coefficients one token occupies in a block: n_i n_o."""
        return self.n_i * self.n_o


def _powers(limit: int, n: int) -> list[int]:
    return [1 << k for k in range(n.bit_length()) if (1 << k) <= min(limit, n)]


def circuit_bits(n_i: int, n_o: int, in_blocks: int) -> float:
    """Noise bound of one output block of a packed product before re-randomisation: an
    encrypted share plus the server's share, times weight blocks of |w| <= 2^DIGIT_BITS
    (||w||_1 <= n_i n_o 2^DIGIT_BITS), summed over the input blocks."""
    fresh = noise.add_bits(noise.fresh_sk_bits(), 0)
    w_l1 = float(n_i * n_o) * 2.0**respack.DIGIT_BITS
    return noise.mul_plain_bits(fresh, w_l1) + math.log2(in_blocks)


def pack_plan_for(params: HeParams, shape: MatmulShape) -> respack.PackPlan:
    """The packing plan of a product of this shape (spec §20.13.1)."""
    if shape.n_i & (shape.n_i - 1):
        raise SpecError(f"a packed product needs n_i a power of two, got {shape.n_i}")
    bits = circuit_bits(shape.n_i, shape.n_o, shape.in_blocks)
    return respack.pack_plan(params, shape.n_i.bit_length() - 1, bits)


def matmul_shape(params: HeParams, tokens: int, d_in: int, d_out: int) -> MatmulShape:
    """Choose (n_t, n_i, n_o) with n_t n_i n_o <= N: the fewest ciphertexts each way, then the
    fewest products.

    Implements spec §20.6.1 `matmul_shape` (spec/20-he.md#matmul_shape): n_i ranges over the
    powers of two up to N (the smallest one >= d_in included), n_t over the powers of two up
    to min(tokens, N) and tokens itself, n_o = min(d_out, N // (n_t n_i)) (skipped if 0); the
    cost is (token_blocks in_blocks + ceil(K / 2^l_max), K) with K = token_blocks out_blocks
    products and l_max from ``pack_plan``; ties go to the larger n_i, then the larger n_t.
    """
    if min(tokens, d_in, d_out) < 1:
        raise SpecError("matrix dimensions must be positive")
    n = params.n
    best: tuple[tuple[int, int, int, int], MatmulShape] | None = None
    for n_i in _powers(1 << (d_in - 1).bit_length(), n):
        for n_t in sorted({*_powers(tokens, n), *([tokens] if tokens <= n else [])}):
            n_o = min(d_out, n // (n_t * n_i))
            if n_o < 1:
                continue
            shape = MatmulShape(tokens, d_in, d_out, n_t, n_i, n_o)
            products = shape.token_blocks * shape.out_blocks
            plan = pack_plan_for(params, shape)
            cts = shape.token_blocks * shape.in_blocks + len(plan.groups(products))
            key = (cts, products, -n_i, -n_t)
            if best is None or key < best[0]:
                best = (key, shape)
    assert best is not None
    return best[1]


def unpacked_shape(params: HeParams, tokens: int, d_in: int, d_out: int) -> MatmulShape:
    """Choose (n_t, n_i, n_o) for products whose every output block travels on its own.

    Implements spec §20.6.3 `unpacked_shape` (spec/20-he.md#unpacked_shape): n_i ranges over
    the powers of two up to min(d_in, N) and d_in itself if d_in <= N, n_t likewise over the
    powers of two up to min(tokens, N) and tokens itself; n_o = min(d_out, N // (n_t n_i))
    (skipped if 0). Choose the pair minimising token_blocks (in_blocks + out_blocks), ties to
    the larger n_i, then the larger n_t.
    """
    if min(tokens, d_in, d_out) < 1:
        raise SpecError("matrix dimensions must be positive")
    n = params.n
    best: tuple[tuple[int, int, int], MatmulShape] | None = None
    for n_i in sorted({*_powers(d_in, n), *([d_in] if d_in <= n else [])}):
        for n_t in sorted({*_powers(tokens, n), *([tokens] if tokens <= n else [])}):
            n_o = min(d_out, n // (n_t * n_i))
            if n_o < 1:
                continue
            shape = MatmulShape(tokens, d_in, d_out, n_t, n_i, n_o)
            key = (shape.token_blocks * (shape.in_blocks + shape.out_blocks), -n_i, -n_t)
            if best is None or key < best[0]:
                best = (key, shape)
    assert best is not None
    return best[1]


def encode_input(params: HeParams, shape: MatmulShape, x: U64, b_tok: int, b_in: int) -> U64:
    """Plaintext of input block (b_tok, b_in): coefficient t n_i n_o + j = X_{b_tok n_t + t, b_in n_i + j}."""
    out = np.zeros(params.n, dtype=np.uint64)
    rows = np.asarray(x, dtype=np.uint64).reshape(shape.tokens, shape.d_in)[
        b_tok * shape.n_t : (b_tok + 1) * shape.n_t, b_in * shape.n_i : (b_in + 1) * shape.n_i
    ]
    for t in range(rows.shape[0]):
        out[t * shape.stride : t * shape.stride + rows.shape[1]] = rows[t]
    return out


def encode_weights(params: HeParams, shape: MatmulShape, w: I64, b_out: int, b_in: int) -> I64:
    """Signed weight polynomial of block (b_out, b_in): coefficient i n_i + n_i - 1 - j = W_ij."""
    out = np.zeros(params.n, dtype=np.int64)
    rows = np.asarray(w, dtype=np.int64)[
        b_out * shape.n_o : (b_out + 1) * shape.n_o, b_in * shape.n_i : (b_in + 1) * shape.n_i
    ]
    for i in range(rows.shape[0]):
        base = i * shape.n_i + shape.n_i - 1
        out[base - np.arange(rows.shape[1])] = rows[i]
    return out


def decode_output(shape: MatmulShape, plain: U64, b_tok: int, b_out: int) -> U64:
    """The outputs of block (b_tok, b_out), (tokens in block, outputs in block): coefficient
    t n_i n_o + i n_i + n_i - 1."""
    count_t = min(shape.n_t, shape.tokens - b_tok * shape.n_t)
    count_o = min(shape.n_o, shape.d_out - b_out * shape.n_o)
    idx = (
        np.arange(count_t)[:, None] * shape.stride
        + np.arange(count_o)[None, :] * shape.n_i
        + shape.n_i
        - 1
    )
    out: U64 = np.asarray(plain, dtype=np.uint64)[idx]
    return out


def weights_ntt(params: HeParams, shape: MatmulShape, w: I64) -> U64:
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
    return rns.ntt_forward(np.stack(ct.parts), t)


def from_ntt_parts(params: HeParams, parts: U64) -> Ciphertext:
    t = rns.tables(params.n, params.q_primes)
    return Ciphertext(params, list(rns.ntt_inverse(parts, t)))


def dot_ntt(params: HeParams, weights: U64, cts: U64) -> Ciphertext:
    """sum_k weights[k] * cts[k] in evaluation form, then one inverse transform per part.

    Implements spec §20.6.2 `dot_ntt` (spec/20-he.md#dot_ntt). ``weights`` is (K, L, N) and
    ``cts`` (K, parts, L, N). It serves both the matrix product (K = input blocks, weights a
    row of blocks) and the oblivious selection (K = experts, cts the encrypted one-hot entries,
    each the constant polynomial t_e): sum_e W_e [[t_e]] = [[W_r]].
    """
    # Weights broadcast over the parts: (K, 1, L, N) against (K, parts, L, N).
    acc = modp.dot(weights[:, None], cts, modp.moduli(params.q_primes))
    return from_ntt_parts(params, acc)
