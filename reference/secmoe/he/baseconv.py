"""Exact RNS base conversions and scaled roundings without big integers (spec/20-he.md §20.12).

Every function here returns exactly what the big-integer formula of its spec section returns.
The integer X behind residues x_i modulo a basis p_0..p_{L-1} (product Q) is
X = sum_i y_i (Q / p_i) - v Q with y_i = x_i (Q / p_i)^-1 mod p_i, and sum_i y_i / p_i = X / Q + v.
The integer v is read off a float64 estimate of that sum; the estimate's error is below
L^2 2^-53, so v is certain unless the fraction lies within ``EPS`` of the rounding point; those
few coefficients are recomputed with Python integers (``*_exact``), so the result is exact for
every input. The split into the y_i and the sums of residue products run as compiled loops
(``secmoe.he.kernels``) in 64-bit words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from secmoe.he import modp, rns
from secmoe.he.kernels import matmul_mod_rows, shoup_rows
from secmoe.he.modp import Moduli

U64 = NDArray[np.uint64]
F64 = NDArray[np.float64]
Obj = NDArray[np.object_]

EPS = 2.0**-32  # a fraction this close to a rounding point is recomputed exactly
T = 1 << 64


@dataclass(frozen=True)
class _Basis:
    primes: tuple[int, ...]
    mod: Moduli
    q: int
    theta: U64  # (L, 1): (Q / p_i)^-1 mod p_i
    inv_p: F64  # (L, 1): 1 / p_i
    flat: U64  # (L,): the primes
    theta_shoup: U64  # (L,): floor(theta_i 2^32 / p_i), Shoup's companion


@cache
def _basis(primes: tuple[int, ...]) -> _Basis:
    q = math.prod(primes)
    theta = [pow(q // p % p, -1, p) for p in primes]
    return _Basis(
        primes,
        modp.moduli(primes),
        q,
        np.array(theta, dtype=np.uint64).reshape(-1, 1),
        1.0 / np.array(primes, dtype=np.float64).reshape(-1, 1),
        np.array(primes, dtype=np.uint64),
        np.array([(t << 32) // p for t, p in zip(theta, primes, strict=True)], dtype=np.uint64),
    )


def _split(x: U64, b: _Basis) -> tuple[U64, F64]:
    """y_i = x_i (Q/p_i)^-1 mod p_i and the float estimate of sum_i y_i / p_i (canonical x)."""
    y, _, s = _shoup(x, b.flat, b.theta.reshape(-1), b.theta_shoup, b.inv_p.reshape(-1))
    return y, s


def _shoup(x: U64, primes: U64, w: U64, w_shoup: U64, inv_p: F64) -> tuple[U64, U64, F64]:
    """x w = a p + b per row (``shoup_rows``): (b, sum_i a, sum_i b / p_i)."""
    xc = np.ascontiguousarray(x, dtype=np.uint64)
    r = np.empty_like(xc)
    whole = np.empty(xc.shape[1], dtype=np.uint64)
    frac = np.empty(xc.shape[1], dtype=np.float64)
    shoup_rows(xc, primes, w, w_shoup, inv_p, r, whole, frac)
    return r, whole, frac


@dataclass(frozen=True)
class _Matrix:
    """A constant matrix M (rows: output primes, entries canonical mod their row's prime) for
    exact products M z mod p_out."""

    ints: U64
    out: Moduli
    primes: U64  # (rows,): the output primes


def _matrix(rows: list[list[int]], out: tuple[int, ...]) -> _Matrix:
    return _Matrix(np.array(rows, dtype=np.uint64), modp.moduli(out), np.array(out, np.uint64))


def _matmul_mod(mat: _Matrix, z: U64) -> U64:
    """(M z) mod p_out exactly, for products M_di z_i of at most (2^31 - 1)^2 (a compiled loop:
    sums in 64-bit words with folds between them, spec §20.12)."""
    zc = np.ascontiguousarray(z, dtype=np.uint64)
    out = np.empty((mat.ints.shape[0], zc.shape[1]), dtype=np.uint64)
    matmul_mod_rows(mat.ints, zc, mat.primes, out)
    return out


def _ambiguous(frac: F64, point: float) -> NDArray[np.intp]:
    """Columns whose estimated fraction lies within EPS of ``point`` (mod 1)."""
    dist = np.abs(frac - point)
    dist = np.minimum(dist, 1.0 - dist)
    return np.flatnonzero(dist < EPS)


def crt_int(x: U64, primes: tuple[int, ...]) -> Obj:
    """The integers in [0, Q) of the columns of x (Python integers)."""
    return rns.to_int(x, primes, centered=False)


_residues = rns.from_int


# --- exact base extension ---------------------------------------------------------------------


@cache
def _extend_matrix(src: tuple[int, ...], dst: tuple[int, ...]) -> _Matrix:
    q = math.prod(src)
    return _matrix([[q // p % d for p in src] + [(d - q % d) % d] for d in dst], dst)


def base_extend_exact(x: U64, src: tuple[int, ...], dst: tuple[int, ...], centered: bool) -> U64:
    """Reference: the residues mod ``dst`` of X in [0, Q) or in (-Q/2, Q/2), by big integers."""
    vals = crt_int(x, src)
    if centered:
        q = math.prod(src)
        vals = np.where(vals > q // 2, vals - q, vals)
    return _residues(vals, dst)


def base_extend(x: U64, src: tuple[int, ...], dst: tuple[int, ...], centered: bool) -> U64:
    """Residues modulo ``dst`` of the integer X with residues x modulo ``src``: X in [0, Q) or,
    if ``centered``, X in (-Q/2, Q/2) (Q is odd). Exactly ``base_extend_exact``.

    Implements spec §20.12.1 `base_extend` (spec/20-he.md#base_extend).
    """
    b = _basis(src)
    y, s = _split(x, b)
    # Step 1: v = floor(s) (or floor(s + 1/2)); s = X/Q + v with X/Q in [0, 1).
    shift = 0.5 if centered else 0.0
    v = np.floor(s + shift)
    # Step 2: X mod d = sum_i y_i [Q/p_i]_d + v [-Q]_d.
    z = np.concatenate([y, v.astype(np.uint64).reshape(1, -1)])
    out = _matmul_mod(_extend_matrix(src, dst), z)
    # Step 3: recompute exactly where the fraction is too close to the rounding point.
    bad = _ambiguous(s - np.floor(s), 0.5 if centered else 0.0)
    if bad.size:
        out[:, bad] = base_extend_exact(x[:, bad], src, dst, centered)
    return out


# --- decryption: round(t X / q) mod t -------------------------------------------------------------


@dataclass(frozen=True)
class _DecryptConsts:
    whole: U64  # (L, 1): floor(2^64 / p_i)
    rem: U64  # (L, 1): 2^64 mod p_i


@cache
def _decrypt_consts(primes: tuple[int, ...]) -> _DecryptConsts:
    return _DecryptConsts(
        np.array([T // p for p in primes], dtype=np.uint64).reshape(-1, 1),
        np.array([T % p for p in primes], dtype=np.uint64).reshape(-1, 1),
    )


def scale_round_t_exact(x: U64, primes: tuple[int, ...]) -> U64:
    """Reference: floor((t X + floor(q/2)) / q) mod t for X in [0, q), by big integers."""
    q = math.prod(primes)
    vals = crt_int(x, primes)
    return np.array([((T * int(v) + q // 2) // q) % T for v in vals], dtype=np.uint64)


def scale_round_t(x: U64, primes: tuple[int, ...]) -> U64:
    """round(t X / q) mod t (t = 2^64) for X in [0, q) given by its residues: exactly
    ``scale_round_t_exact``.

    Implements spec §20.12.2 `scale_round_t` (spec/20-he.md#scale_round_t). Since
    t X / q = sum_i y_i t / p_i - v t, the term v t vanishes mod t; with t = I_i p_i + r_i and
    y_i r_i = a_i p_i + b_i the sum is the integer sum_i (y_i I_i + a_i) plus
    F = sum_i b_i / p_i, so only F is rounded.
    """
    b = _basis(primes)
    c = _decrypt_consts(primes)
    # Step 1: y_i; the multiple v t of t is dropped.
    y = modp.mul(x, b.theta, b.mod)
    # Step 2: a_i = floor(y_i r_i / p_i), b_i = y_i r_i - a_i p_i.
    yr = y * c.rem
    a = np.empty_like(yr)
    for i, p in enumerate(b.mod.scalars):
        np.floor_divide(yr[i], p, out=a[i])
    rest = yr - a * b.mod.col
    # Step 3: the integer part mod 2^64 (uint64 products and sums wrap exactly mod 2^64), plus
    # the rounded F; ambiguous coefficients exactly.
    whole = (y * c.whole + a).sum(axis=0, dtype=np.uint64)
    f = (rest * b.inv_p).sum(axis=0)
    rounded = np.floor(f + 0.5)
    out: U64 = whole + rounded.astype(np.uint64)
    bad = _ambiguous(f - np.floor(f), 0.5)
    if bad.size:
        out[bad] = scale_round_t_exact(x[:, bad], primes)
    return out


# --- ct x ct: round(t D / q) mod q for D over q * P ---------------------------------------------


@dataclass(frozen=True)
class _TensorConsts:
    whole: _Matrix  # columns: y over all primes, v, then step 2's integer part in two halves
    rem: U64  # (L_q,): t P mod p_i for the primes of q
    rem_shoup: U64  # (L_q,): floor(rem_i 2^32 / p_i)


@cache
def _tensor_consts(qs: tuple[int, ...], aux: tuple[int, ...]) -> _TensorConsts:
    big_p = math.prod(aux)
    tp = T * big_p
    rows = []
    for d in qs:
        row = [tp // p % d for p in qs] + [tp // p % d for p in aux] + [(d - tp % d) % d]
        row += [1, (1 << 32) % d]  # the 32-bit halves of step 2's integer part
        rows.append(row)
    rem = [tp % p for p in qs]
    shoup = [(r << 32) // p for r, p in zip(rem, qs, strict=True)]
    return _TensorConsts(
        _matrix(rows, qs), np.array(rem, dtype=np.uint64), np.array(shoup, dtype=np.uint64)
    )


def tensor_scale_exact(x: U64, qs: tuple[int, ...], aux: tuple[int, ...]) -> U64:
    """Reference: floor((t D + floor(q/2)) / q) mod q for D centered over q P, by big integers."""
    big = qs + aux
    q, qp = math.prod(qs), math.prod(big)
    vals = crt_int(x, big)
    vals = np.where(vals > qp // 2, vals - qp, vals)
    scaled = np.array([(T * int(v) + q // 2) // q for v in vals], dtype=object)
    return _residues(scaled, qs)


def tensor_scale(x: U64, qs: tuple[int, ...], aux: tuple[int, ...]) -> U64:
    """round(t D / q) mod q for D in (-qP/2, qP/2) given by its residues over q and P (the
    primes of q first): exactly ``tensor_scale_exact``.

    Implements spec §20.12.3 `tensor_scale` (spec/20-he.md#tensor_scale). With
    D = sum_i y_i qP/p_i - v qP over all primes, t D / q = sum_{i in q} y_i t P / p_i +
    sum_{k in P} y_k t P / p_k - v t P, where only the terms of q's primes are fractional:
    t P = I_i p_i + r_i, y_i r_i = a_i p_i + b_i.
    """
    n_q = len(qs)
    b = _basis(qs + aux)
    c = _tensor_consts(qs, aux)
    y, s = _split(x, b)
    # Step 1: v = round(sum y_i / p_i) (D centered).
    v = np.floor(s + 0.5)
    bad = _ambiguous(s - np.floor(s), 0.5)
    # Step 2: the fractional terms of q's primes: a_i = floor(y_i r_i / p_i), F = sum b_i / p_i.
    _, whole, f = _shoup(y[:n_q], b.flat[:n_q], c.rem, c.rem_shoup, b.inv_p[:n_q, 0])
    extra = whole + np.floor(f + 0.5).astype(np.uint64)  # below 2^36
    bad = np.union1d(bad, _ambiguous(f - np.floor(f), 0.5))
    # Step 3: every integer term at once, mod each prime of q (extra as two 32-bit halves,
    # since the loop multiplies 32-bit words).
    halves = [extra & np.uint64(0xFFFFFFFF), extra >> np.uint64(32)]
    z = np.concatenate([y, v.astype(np.uint64).reshape(1, -1), *(h.reshape(1, -1) for h in halves)])
    out = _matmul_mod(c.whole, z)
    if bad.size:
        out[:, bad] = tensor_scale_exact(x[:, bad], qs, aux)
    return out


# --- modulus switching: round(q' c / q) mod q' -------------------------------------------------


@dataclass(frozen=True)
class _SwitchConsts:
    half: U64  # (L, 1): floor(q''/2) mod p_i
    inv: U64  # (k, 1): q''^-1 mod p_j


@cache
def _switch_consts(primes: tuple[int, ...], keep: int) -> _SwitchConsts:
    dropped = math.prod(primes[keep:])
    return _SwitchConsts(
        np.array([dropped // 2 % p for p in primes], dtype=np.uint64).reshape(-1, 1),
        np.array([pow(dropped, -1, p) for p in primes[:keep]], dtype=np.uint64).reshape(-1, 1),
    )


def divide_round_exact(x: U64, primes: tuple[int, ...], keep: int) -> U64:
    """Reference: floor((q' c + floor(q/2)) / q) mod q' for c in [0, q), by big integers."""
    q, q_small = math.prod(primes), math.prod(primes[:keep])
    vals = crt_int(x, primes)
    scaled = np.array([(q_small * int(v) + q // 2) // q for v in vals], dtype=object)
    return _residues(scaled, primes[:keep])


def divide_round(x: U64, primes: tuple[int, ...], keep: int) -> U64:
    """round(q' c / q) mod q' with q' the product of the first ``keep`` primes and c in [0, q):
    exactly ``divide_round_exact``.

    Implements spec §20.12.4 `divide_round` (spec/20-he.md#divide_round). With q'' = q / q'
    and h = floor(q''/2), the rounding is floor((c + h) / q'') = (c + h - R) / q'',
    R = (c + h) mod q''.
    """
    full = modp.moduli(primes)
    c = _switch_consts(primes, keep)
    # Step 2: the residues of c + h, and R modulo the kept primes by an exact base extension.
    shifted = modp.add(x, c.half, full)
    small = modp.moduli(primes[:keep])
    low = base_extend(shifted[keep:], primes[keep:], primes[:keep], centered=False)
    # Step 3: (c + h - R) / q'' modulo each kept prime.
    return modp.mul(modp.sub(shifted[:keep], low, small), c.inv, small)
