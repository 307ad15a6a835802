"""Fixed-point oracles for the inverse square root and the normalisations, with their float
references (spec/33-functions.md §33.4-33.5), and the power-of-two normalisation that the
reciprocal (spec/06-models.md#reciprocal_fixed) shares with the inverse square root.

Both functions are computed as ``scale * g(x / scale')`` with a public power of two selected per
element from the segment ``x`` falls in (Select-Then-Compute), so that the polynomial start and
the Newton steps always see an argument in a fixed interval where f fractional bits are plenty.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Coeffs = tuple[float, float, float]

# fit_table's least-squares quadratic of 1/sqrt(u) on [1/4, 1] (spec §6.2.2 steps 1-3), each a
# multiple of 2^-32; tests refit it. Relative error at most 0.0371 on the interval.
RSQRT_COEFFS: Coeffs = (1.5802567899227142, -3.160510617075488, 2.617290308699012)
RSQRT_NEWTON = 2  # Newton steps y <- y (3 - u y^2) / 2
NORM_BOUND = 1 << 16  # layernorm / rmsnorm: var + eps (mean square + eps) must not exceed this


def check_fxp(fxp: FixedPoint, what: str) -> None:
    """The ring must hold the products of two values below 2^7 (spec §6.1: l >= 2f + 8)."""
    if fxp.ring.bits < 2 * fxp.frac_bits + 8 or fxp.frac_bits < 2:
        raise SpecError(
            f"{what} needs 2 <= f and l >= 2f + 8, got l = {fxp.ring.bits}, f = {fxp.frac_bits}"
        )


def check_bound(bound: int, what: str) -> None:
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise SpecError(f"{what}: bound must be an integer >= 1, got {bound!r}")


def segment_breakpoints(width: int, first: int, count: int) -> tuple[float, ...]:
    """The breakpoints 2^(width e) for e = first .. first + count - 2 (count segments)."""
    return tuple(2.0 ** (width * e) for e in range(first, first + count - 1))


def segment_exponent(fxp: FixedPoint, x: RingVec, width: int, first: int, count: int) -> Ints:
    """e = first + #{i : signed(x) > enc(b_i)}: the segment of x (right-closed), as an exponent."""
    bounds = fxp.ring.to_signed(fxp_encode(fxp, list(segment_breakpoints(width, first, count))))
    above = (fxp.ring.to_signed(x)[..., None] > bounds).sum(axis=-1)
    out: Ints = (first + above).astype(np.int64)
    return out


def pow2_fixed(fxp: FixedPoint, exps: Ints) -> RingVec:
    """enc(2^e) for integer e >= -f: exactly the integer 2^(f + e)."""
    if np.any(exps < -fxp.frac_bits) or np.any(exps > fxp.ring.bits - 2 - fxp.frac_bits):
        raise SpecError("a normalisation scale is outside the fixed-point range")
    return fxp.ring.from_int([1 << (fxp.frac_bits + int(e)) for e in exps.reshape(-1)]).reshape(
        exps.shape
    )


def quadratic_fixed(fxp: FixedPoint, coeffs: Coeffs, u: RingVec) -> RingVec:
    """trunc(C2 trunc(u u) + C1 u) + C0 with C = enc(coeffs): one truncation for both public
    products, since the coefficients are public."""
    ring = fxp.ring
    c2, c1, c0 = (fxp_encode(fxp, c) for c in coeffs)
    u2 = fxp_trunc(fxp, ring.mul(u, u))
    lin = ring.add(ring.mul(u2, np.full_like(u, c2)), ring.mul(u, np.full_like(u, c1)))
    return ring.add(fxp_trunc(fxp, lin), np.full_like(u, c0))


def rsqrt_segments(fxp: FixedPoint, bound: int) -> tuple[int, int]:
    """(first, count): powers-of-four segments covering [2^-f, bound].

    first = 1 - ceil(f / 2), so 4^(first - 1) <= 2^-f; the last exponent is the least e with
    4^e >= bound (at least ``first``)."""
    first = 1 - (fxp.frac_bits + 1) // 2
    last = max(first, ((bound - 1).bit_length() + 1) // 2)
    return first, last - first + 1


def rsqrt_fixed(fxp: FixedPoint, v: RingVec, bound: int) -> RingVec:
    """1 / sqrt(v) in fixed point for 2^-f <= v <= bound, as the secure protocol computes it.

    Implements spec §33.4.1 `rsqrt_fixed` (spec/33-functions.md#rsqrt_fixed).
    """
    ring = fxp.ring
    check_fxp(fxp, "rsqrt_fixed")
    check_bound(bound, "rsqrt_fixed")
    v = ring.check(np.asarray(v), "v")
    signed = ring.to_signed(v)
    if np.any(signed < 1) or np.any(signed > bound << fxp.frac_bits):
        raise SpecError(f"rsqrt_fixed needs 2^-f <= v <= {bound}")
    first, count = rsqrt_segments(fxp, bound)
    if 2 * (first + count - 1) > fxp.frac_bits:
        raise SpecError(f"rsqrt_fixed needs bound <= 2^(2 floor(f / 2)), got {bound}")
    # Step 1: the segment 4^(e-1) < v <= 4^e (segment 0 open to the left).
    e = segment_exponent(fxp, v, 2, first, count)
    # Step 2: u = trunc(v enc(4^-e)), in [1/4, 1].
    u = fxp_trunc(fxp, ring.mul(v, pow2_fixed(fxp, -2 * e)))
    # Step 3: the quadratic start.
    y = quadratic_fixed(fxp, RSQRT_COEFFS, u)
    # Step 4: Newton, y <- trunc_{f+1}(y (enc(3) - trunc(u trunc(y y)))).
    three = np.full_like(u, fxp_encode(fxp, 3.0))
    for _ in range(RSQRT_NEWTON):
        b = fxp_trunc(fxp, ring.mul(u, fxp_trunc(fxp, ring.mul(y, y))))
        y = fxp_trunc(fxp, ring.mul(y, ring.sub(three, b)), fxp.frac_bits + 1)
    # Step 5: r = trunc(y enc(2^-e)).
    return fxp_trunc(fxp, ring.mul(y, pow2_fixed(fxp, -e)))


def mean_constant(fxp: FixedPoint, d: int) -> tuple[int, int]:
    """(m, s): 1/d with s = f + ceil(log2 d) fractional bits, m = floor(2^s / d + 1/2)."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise SpecError(f"the dimension must be an integer >= 1, got {d!r}")
    s = fxp.frac_bits + (d - 1).bit_length()
    return ((1 << (s + 1)) + d) // (2 * d), s


def eps_fixed(fxp: FixedPoint, eps: float) -> int:
    """enc(eps), at least one unit, so that var + eps is never 0."""
    if not (isinstance(eps, float | int) and np.isfinite(eps) and eps >= 0):
        raise SpecError(f"eps must be a finite number >= 0, got {eps!r}")
    return max(int(fxp.ring.to_signed(fxp_encode(fxp, float(eps)))), 1)


def _check_rows(fxp: FixedPoint, x: RingVec, *params: RingVec) -> RingVec:
    x = fxp.ring.check(np.asarray(x), "x")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise SpecError(f"x must have shape (tokens >= 1, d >= 1), got {x.shape}")
    for p in params:
        fxp.ring.check(np.asarray(p), "gamma / beta")
        if np.asarray(p).shape != (x.shape[1],):
            raise SpecError(f"gamma and beta must have shape ({x.shape[1]},)")
    return x


def _mean_fixed(fxp: FixedPoint, total: RingVec, d: int) -> RingVec:
    """trunc_s(total m): the division by d with the constant of ``mean_constant``."""
    m, s = mean_constant(fxp, d)
    return fxp_trunc(fxp, fxp.ring.mul(total, np.full_like(total, m)), s)


def _normalise_fixed(fxp: FixedPoint, xc: RingVec, gamma: RingVec, eps: float) -> RingVec:
    """Shared tail of both norms: v = mean(xc^2) + eps, r = rsqrt(v), trunc(trunc(xc gamma) r)."""
    ring = fxp.ring
    d = xc.shape[1]
    # The squares summed before their one truncation; the products with gamma beside them.
    q = fxp_trunc(fxp, ring.reduce(np.sum(ring.mul(xc, xc), axis=1, dtype=np.uint64)))
    xg = fxp_trunc(fxp, ring.mul(xc, np.broadcast_to(gamma, xc.shape)))
    v = ring.add(_mean_fixed(fxp, q, d), ring.from_int(eps_fixed(fxp, eps)))
    r = rsqrt_fixed(fxp, v, NORM_BOUND)
    return fxp_trunc(fxp, ring.mul(xg, r[:, None]))


def layernorm_fixed(
    fxp: FixedPoint, x: RingVec, gamma: RingVec, beta: RingVec, eps: float = 1e-5
) -> RingVec:
    """LayerNorm of each row of x (T, d) in fixed point, as the secure protocol computes it.

    Implements spec §33.5.1 `layernorm_fixed` (spec/33-functions.md#layernorm_fixed).
    """
    ring = fxp.ring
    x = _check_rows(fxp, x, gamma, beta)
    # Step 1: mu = trunc_s(sum_i x_i m).
    mu = _mean_fixed(fxp, ring.reduce(np.sum(x, axis=1, dtype=np.uint64)), x.shape[1])
    # Step 2: centre.
    xc = ring.sub(x, mu[:, None])
    # Steps 3-6: variance, rsqrt, scale and gamma.
    y = _normalise_fixed(fxp, xc, gamma, eps)
    # Step 7: + beta.
    return ring.add(y, np.broadcast_to(beta, y.shape))


def rmsnorm_fixed(fxp: FixedPoint, x: RingVec, gamma: RingVec, eps: float = 1e-6) -> RingVec:
    """RMSNorm of each row of x (T, d) in fixed point, as the secure protocol computes it.

    Implements spec §33.5.3 `rmsnorm_fixed` (spec/33-functions.md#rmsnorm_fixed).
    """
    x = _check_rows(fxp, x, gamma)
    # Steps 1-4: as layernorm_fixed's steps 3-6 on x itself (no mean, no beta).
    return _normalise_fixed(fxp, x, gamma, eps)


def layernorm_float(x: Floats, gamma: Floats, beta: Floats, eps: float = 1e-5) -> Floats:
    """(x - mean) / sqrt(var + eps) gamma + beta per row, the biased variance, in binary64."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    out: Floats = (x - mu) / np.sqrt(var + eps) * gamma + beta
    return out


def rmsnorm_float(x: Floats, gamma: Floats, eps: float = 1e-6) -> Floats:
    """x / sqrt(mean(x^2) + eps) gamma per row, in binary64."""
    out: Floats = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * gamma
    return out
