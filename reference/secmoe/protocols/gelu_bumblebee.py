"""BumbleBee's GeLU by compute-then-select, the baseline of SecMoE's Protocol 2
(spec/34-baselines.md#gelu_bumblebee)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import FixedPoint, RingVec, fxp_encode
from secmoe.model.bumblebee import BREAKPOINTS, check_params, encoded_pieces
from secmoe.protocols.b2a import mux
from secmoe.protocols.compare import lt_public_many
from secmoe.protocols.cost import (
    Pattern,
    lt_public_many_cost,
    mul_cost,
    mux_cost,
    seq,
    square_cost,
    trunc_cost,
)
from secmoe.protocols.mul import mul, square
from secmoe.protocols.piecewise import compare_width
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import add_public, xor_public


def _terms(ctx: PartyContext, coef: RingVec, power: dict[int, RingVec]) -> RingVec:
    """sum_{k >= 1} enc(c_k) x^k over the nonzero coefficients: local, the coefficients public."""
    ring = ctx.ring
    acc = np.zeros_like(power[1])
    for k in range(1, coef.size):
        if coef[k]:
            acc = ring.add(acc, ring.mul(np.full_like(acc, coef[k]), power[k]))
    return acc


def _bounds(fxp: FixedPoint) -> RingVec:
    """enc(-5), enc(-1.97), enc(3) + 1: x < each of them is a segment bit."""
    return fxp.ring.add(fxp_encode(fxp, list(BREAKPOINTS)), np.array([0, 0, 1], dtype=np.uint64))


def gelu_bumblebee(ctx: PartyContext, x: RingVec) -> RingVec:
    """Shares of `gelu_bumblebee_fixed` at shared x: every piece computed, then multiplexed.

    Implements spec §34.1.2 `gelu_bumblebee` (spec/34-baselines.md#gelu_bumblebee).
    """
    ring, fxp = ctx.ring, ctx.fxp
    check_params(fxp)
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    n = xs.size
    # Step 1: [x < enc(-5)], [x < enc(-1.97)], [x < enc(3) + 1] one OT choice per leaf for all three,
    # in Z_2^m with piecewise's width (|x|, |c| <= X, so |x - c| < 2^(m-1)).
    bounds = _bounds(fxp)
    c = lt_public_many(ctx, xs, bounds, compare_width(ring.bits))
    # The segment bits: P3 iff c0 < c1, P6 iff c1 < c2, x iff not c2 (the c_i increase in i).
    s3, s6 = c[0] ^ c[1], c[1] ^ c[2]
    sx = xor_public(ctx.party, c[2], np.ones(n, dtype=np.uint8))
    # Step 2: x2 = trunc(x x).
    x2 = trunc(ctx, square(ctx, xs))
    # Step 3: x3 = trunc(x2 x) and x4 = trunc(x2 x2), one product and one truncation.
    x34 = trunc(ctx, mul(ctx, np.concatenate([x2, x2]), np.concatenate([xs, x2])))
    x3, x4 = x34[:n], x34[n:]
    a, b = encoded_pieces(fxp)
    # Step 4: x3 x3, and P3's sum of terms truncated in the same batch as x6.
    u3 = _terms(ctx, a, {1: xs, 2: x2, 3: x3})
    t = trunc(ctx, np.concatenate([square(ctx, x3), u3]))
    x6, p3 = t[:n], add_public(ctx.party, t[n:], np.full(n, a[0], np.uint64), ring)
    # Step 5: P6's sum of terms, one truncation.
    u6 = _terms(ctx, b, {1: xs, 2: x2, 4: x4, 6: x6})
    p6 = add_public(ctx.party, trunc(ctx, u6), np.full(n, b[0], np.uint64), ring)
    # Step 6: one batched mux of the three pieces with their segment bits, then the sum.
    sel = mux(ctx, np.concatenate([s3, s6, sx]), np.concatenate([p3, p6, xs]))
    y = ring.add(ring.add(sel[:n], sel[n : 2 * n]), sel[2 * n :])
    return y.reshape(np.asarray(x).shape)


def gelu_bumblebee_cost(n: int, bits: int, frac: int) -> Pattern:
    """The message pattern of `gelu_bumblebee` on n values (warm OT sessions), spec §34.1.2."""
    return seq(
        lt_public_many_cost(n, 3, bits, compare_width(bits)),
        square_cost(n, bits),
        trunc_cost(n, bits, frac),
        mul_cost(2 * n, bits),
        trunc_cost(2 * n, bits, frac),
        square_cost(n, bits),
        trunc_cost(2 * n, bits, frac),
        trunc_cost(n, bits, frac),
        mux_cost(3 * n, bits),
    )
