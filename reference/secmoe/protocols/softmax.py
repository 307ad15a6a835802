"""Exponential, reciprocal and softmax on shares (spec/33-functions.md §33.1-33.3), bit-exact
against exp_fixed, reciprocal_fixed and softmax_fixed (spec/06-models.md §6.4)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import RingVec, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.fixed import (
    EXP_CLIP,
    EXP_ITERATIONS,
    RECIPROCAL_COEFFS,
    RECIPROCAL_NEWTON,
    reciprocal_segments,
)
from secmoe.model.norm import check_fxp, pow2_fixed, segment_breakpoints
from secmoe.protocols.b2a import mux
from secmoe.protocols.compare import lt_public
from secmoe.protocols.cost import Pattern, msb_cost, mux_cost, seq, trunc_cost
from secmoe.protocols.mul import mul, square
from secmoe.protocols.norm import (
    mul_trunc_cost,
    quadratic,
    quadratic_cost,
    select_scales,
    select_scales_cost,
    square_trunc_cost,
)
from secmoe.protocols.topk import maximum, maximum_cost
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import add_public, mul_public


def exp(ctx: PartyContext, z: RingVec) -> RingVec:
    """Shares of ``exp_fixed(z)`` for shared z with signed(z) <= 0 and |z| < 2^(l-2).

    Implements spec §33.1.1 `exp` (spec/33-functions.md#exp).
    """
    ring, fxp = ctx.ring, ctx.fxp
    zs = ring.check(np.asarray(z), "z").reshape(-1)
    n = zs.size
    check_fxp(fxp, "exp")
    # Step 1: t = trunc_5(z) + enc(1).
    one = np.full(n, fxp_encode(fxp, 1.0), dtype=np.uint64)
    t = add_public(ctx.party, trunc(ctx, zs, EXP_ITERATIONS), one, ring)
    # Step 2: five squarings.
    for _ in range(EXP_ITERATIONS):
        t = trunc(ctx, square(ctx, t))
    # Step 3: t - mux([z < enc(-14)], t): exactly 0 below the clip point, whatever t is there.
    below = lt_public(ctx, zs, np.full(n, fxp_encode(fxp, EXP_CLIP), dtype=np.uint64))
    return ring.sub(t, mux(ctx, below, t)).reshape(np.asarray(z).shape)


def reciprocal(ctx: PartyContext, s: RingVec, bound: int) -> RingVec:
    """Shares of ``reciprocal_fixed(s, bound)``, 1 / s, for shared 1 <= s <= bound (public).

    Implements spec §33.2.1 `reciprocal` (spec/33-functions.md#reciprocal).
    """
    ring, fxp = ctx.ring, ctx.fxp
    check_fxp(fxp, "reciprocal")
    count = reciprocal_segments(fxp, bound)
    ss = ring.check(np.asarray(s), "s").reshape(-1)
    n = ss.size
    exps = np.arange(1, count + 1, dtype=np.int64)
    scales = pow2_fixed(fxp, -exps)
    # Step 1: the scale enc(2^-e) of the segment of s; with one segment it is public.
    if count > 1:
        (c,) = select_scales(ctx, ss, segment_breakpoints(1, 1, count), [scales])

        def scaled(a: RingVec) -> RingVec:
            return trunc(ctx, mul(ctx, a, c))
    else:

        def scaled(a: RingVec) -> RingVec:
            return trunc(ctx, mul_public(a, np.full(n, scales[0], dtype=np.uint64), ring))

    # Step 2: u = trunc(s c).
    u = scaled(ss)
    # Step 3: the quadratic start.
    y = quadratic(ctx, RECIPROCAL_COEFFS, u)
    # Step 4: Newton, y <- trunc(y (enc(2) - trunc(u y))).
    two = np.full(n, fxp_encode(fxp, 2.0), dtype=np.uint64)
    for _ in range(RECIPROCAL_NEWTON):
        t = trunc(ctx, mul(ctx, u, y))
        y = trunc(ctx, mul(ctx, y, add_public(ctx.party, ring.neg(t), two, ring)))
    # Step 5: r = trunc(y c).
    return scaled(y).reshape(np.asarray(s).shape)


def softmax(ctx: PartyContext, z: RingVec) -> RingVec:
    """Shares of ``softmax_fixed(z)`` over the last axis of shared logits z (rows, n).

    Implements spec §33.3.1 `softmax` (spec/33-functions.md#softmax). |z| < 2^(l-3).
    """
    ring = ctx.ring
    zs = ring.check(np.asarray(z), "z")
    if zs.ndim != 2 or zs.shape[0] < 1 or zs.shape[1] < 1:
        raise SpecError(f"softmax needs logits of shape (rows >= 1, n >= 1), got {zs.shape}")
    rows, n = zs.shape
    # Step 1: d = z - max (shares of the maximum by the tournament of §32.2.1).
    d = ring.sub(zs, maximum(ctx, zs)[:, None])
    # Step 2: e = exp(d).
    e = exp(ctx, d)
    # Step 3: the row sums, local.
    total = ring.reduce(np.sum(e, axis=1, dtype=np.uint64))
    # Step 4: r = reciprocal(total, n) (each term is at most 1); p = trunc(e r).
    r = reciprocal(ctx, total, n)
    return trunc(ctx, mul(ctx, e, np.repeat(r, n))).reshape(rows, n)


# --- cost (spec §33.6), in the message patterns of secmoe.protocols.cost ------------------------


def exp_cost(n: int, bits: int, frac: int) -> Pattern:
    """``exp`` of n values: trunc by 5, five mul + trunc, lt_public, mux."""
    return seq(
        trunc_cost(n, bits, EXP_ITERATIONS),
        seq(square_trunc_cost(n, bits, frac) for _ in range(EXP_ITERATIONS)),
        msb_cost(n, bits),
        mux_cost(n, bits),
    )


def reciprocal_cost(n: int, bound: int, bits: int, frac: int) -> Pattern:
    """``reciprocal`` of n values up to ``bound``: selection (K > 1), u, the start, Newton, r."""
    count = max(1, (bound - 1).bit_length())
    select = select_scales_cost(n, count, bits) if count > 1 else Pattern()
    scale = mul_trunc_cost(n, bits, frac) if count > 1 else trunc_cost(n, bits, frac)
    newton = [
        seq(mul_trunc_cost(n, bits, frac), mul_trunc_cost(n, bits, frac))
        for _ in range(RECIPROCAL_NEWTON)
    ]
    return seq(select, scale, quadratic_cost(n, bits, frac), seq(newton), scale)


def softmax_cost(rows: int, n: int, bits: int, frac: int) -> Pattern:
    """``softmax`` of rows x n: maximum, exp, reciprocal of the rows sums, the final product."""
    return seq(
        maximum_cost(rows, n, bits),
        exp_cost(rows * n, bits, frac),
        reciprocal_cost(rows, n, bits, frac),
        mul_trunc_cost(rows * n, bits, frac),
    )
