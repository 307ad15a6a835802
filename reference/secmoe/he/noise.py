"""Worst-case noise bounds of every operation, and the flooding width (spec/20-he.md §20.5).

Noise is absolute: a ciphertext of m has c_0 + c_1 s + ... = round(q m / t) + v (mod q) with
|v_j| <= B for every coefficient. Bounds are carried as log2 values.
"""

from __future__ import annotations

import math

from secmoe.he.params import CBD_ETA, HeParams

STAT_SECURITY = 40  # flooding: statistical distance <= 2^-40
MARGIN = 20  # bits of decryption margin kept after flooding


def _lg(x: float) -> float:
    return math.log2(max(x, 1.0))


def fresh_sk_bits() -> float:
    """Secret-key encryption: v = e, |e| <= eta."""
    return _lg(CBD_ETA)


def fresh_pk_bits(params: HeParams) -> float:
    """Public-key encryption: v = e u + e_0 + e_1 s, |v| <= eta (2N + 1)."""
    return _lg(CBD_ETA * (2 * params.n + 1))


def add_bits(a: float, b: float) -> float:
    """v_a + v_b plus 1 for the two roundings of the encodings."""
    return _lg(2.0**a + 2.0**b + 1)


def mul_plain_bits(v: float, w_l1: float) -> float:
    """(v + 1/2) ||w||_1 + 1/2, with ||w||_1 the sum of |w_j| of the plaintext multiplier."""
    return _lg((2.0**v + 0.5) * w_l1 + 0.5)


def mul_bits(params: HeParams, va: float, vb: float, ma: float, mb: float) -> float:
    """ct x ct: N (M_a B_b + M_b B_a) + t N ||r|| (B_a + B_b) + (t/q) N B_a B_b + (1 + N + N^2)/2,
    with M the largest |message coefficient| (centered) and ||r|| <= (N + 2) / 2."""
    n, t, q = params.n, float(params.t), float(params.q)
    ba, bb, m_a, m_b = 2.0**va, 2.0**vb, 2.0**ma, 2.0**mb
    r = (n + 2) / 2
    return _lg(
        n * (m_a * bb + m_b * ba)
        + t * n * r * (ba + bb)
        + (t / q) * n * ba * bb
        + (1 + n + n * n) / 2
    )


def capacity_bits(params: HeParams) -> float:
    """log2(q / 2t): decryption is correct while the noise stays below this."""
    return math.log2(params.q / (2 * params.t))


def flood_bits(params: HeParams) -> int:
    """Width of the flooding noise: uniform in [-2^(F-1), 2^(F-1)) with F = floor(capacity) - MARGIN - 1."""
    return math.floor(capacity_bits(params)) - MARGIN - 1


def max_floodable_bits(params: HeParams) -> int:
    """The largest noise bound (bits) flooding hides within 2^-41 statistical distance per
    ciphertext: 2^-41 / N per coefficient, the N coefficients' distances adding up (§20.5.1)."""
    return flood_bits(params) - 1 - STAT_SECURITY - (params.n.bit_length() - 1)


def key_switch_bits(params: HeParams) -> float:
    """Noise a Galois key switch adds: sum_G d_G e_G with |d_G| <= P_G / 2 (P_G the product of
    the digit group's primes, spec §20.10.2), |e_G| <= eta: at most N eta sum_G P_G / 2."""
    ps = params.q_primes
    products = [math.prod(ps[i : i + 2]) for i in range(0, len(ps), 2)]
    return _lg(params.n * CBD_ETA * sum(products) / 2)


def expand_bits(
    params: HeParams, v: float, levels: int, applications: list[int] | None = None
) -> float:
    """After expand_selector: level j maps B to 2 B + m_j B_ks + 1, m_j the key switches of its
    substitution (``applications``; 1 each by default, which gives
    B_l = 2^l B_0 + (2^l - 1)(B_ks + 1))."""
    ks = 2.0 ** key_switch_bits(params)
    b = 2.0**v
    for m in applications if applications is not None else [1] * levels:
        b = 2 * b + m * ks + 1
    return _lg(b)
