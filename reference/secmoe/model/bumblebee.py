"""BumbleBee's GeLU, the compute-then-select baseline: its pieces, the float evaluation and the
bit-exact fixed-point oracle (spec/34-baselines.md#gelu_bumblebee_fixed)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError

Floats = NDArray[np.float64]

# The published pieces (Lu et al., BumbleBee, NDSS 2025), lowest degree first: 0 below -5,
# P3 on [-5, -1.97), P6 on [-1.97, 3], x above 3.
BREAKPOINTS = (-5.0, -1.97, 3.0)
P3 = (-0.5054031199708174, -0.42226581151983866, -0.11807612951181953, -0.011034134030615728)
P6 = (
    0.008526321541038084,
    0.5,
    0.3603292692789629,
    0.0,
    -0.037688200365904236,
    0.0,
    0.0018067462606141187,
)
POWERS = (2, 3, 4, 6)  # the powers the pieces need (P6 has no odd terms above x)


def check_params(fxp: FixedPoint) -> None:
    """The largest product on a used path is x3 * x3 at |x| <= 3, below 2^10 2^(2f), which the
    exact truncation needs below 2^(l-2)."""
    if 2 * fxp.frac_bits + 12 > fxp.ring.bits:
        raise SpecError(
            f"gelu_bumblebee needs 2 f + 12 <= l, got l = {fxp.ring.bits}, f = {fxp.frac_bits}"
        )


def gelu_bumblebee_float(x: ArrayLike) -> Floats:
    """The pieces evaluated in float64 with BumbleBee's segment convention."""
    arr = np.asarray(x, dtype=np.float64)
    p3 = sum(c * arr**k for k, c in enumerate(P3))
    p6 = sum(c * arr**k for k, c in enumerate(P6))
    out: Floats = np.where(
        arr < BREAKPOINTS[0],
        0.0,
        np.where(arr < BREAKPOINTS[1], p3, np.where(arr <= BREAKPOINTS[2], p6, arr)),
    )
    return out


def encoded_pieces(fxp: FixedPoint) -> tuple[RingVec, RingVec]:
    """enc of every coefficient of P3 (4) and P6 (7), lowest degree first."""
    return fxp_encode(fxp, list(P3)), fxp_encode(fxp, list(P6))


def gelu_bumblebee_fixed(fxp: FixedPoint, x: RingVec) -> RingVec:
    """BumbleBee's GeLU in Z_2^l with f fractional bits, exactly as the secure protocol computes it.

    Implements spec §34.1.1 `gelu_bumblebee_fixed` (spec/34-baselines.md#gelu_bumblebee_fixed).
    """
    check_params(fxp)
    ring = fxp.ring
    x = ring.check(np.asarray(x), "x")
    sx = ring.to_signed(x)
    # Step 1: the segment bits against the encoded breakpoints.
    lo, mid, hi = (int(v) for v in ring.to_signed(fxp_encode(fxp, list(BREAKPOINTS))))
    in_p3, in_p6, above = (sx >= lo) & (sx < mid), (sx >= mid) & (sx <= hi), sx > hi
    # Step 2: the powers, level by level: x2; then x3 = x2 x and x4 = x2 x2; then x6 = x3 x3.
    x2 = fxp_trunc(fxp, ring.mul(x, x))
    x3 = fxp_trunc(fxp, ring.mul(x2, x))
    x4 = fxp_trunc(fxp, ring.mul(x2, x2))
    x6 = fxp_trunc(fxp, ring.mul(x3, x3))
    # Step 3: each piece, the products with the encoded coefficients summed before one truncation.
    a, b = encoded_pieces(fxp)
    power = {1: x, 2: x2, 3: x3, 4: x4, 6: x6}

    def piece(coef: RingVec) -> RingVec:
        acc = np.zeros_like(x)
        for k in range(1, coef.size):
            if coef[k]:
                acc = ring.add(acc, ring.mul(np.full_like(x, coef[k]), power[k]))
        return ring.add(fxp_trunc(fxp, acc), np.full_like(x, coef[0]))

    p3, p6 = piece(a), piece(b)
    # Step 4: the selected piece (0 below -5).
    zero = np.zeros_like(x)
    out: RingVec = np.where(in_p3, p3, np.where(in_p6, p6, np.where(above, x, zero)))
    return out
