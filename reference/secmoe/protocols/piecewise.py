"""Select-Then-Compute for piecewise polynomials: Protocol 2 of SecMoE (spec/30-protocols.md §30.5)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import BitVec, RingVec, fxp_encode
from secmoe.model.piecewise import PiecewiseTable
from secmoe.protocols.b2a import b2a
from secmoe.protocols.compare import lt_public
from secmoe.protocols.mul import mul
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import xor_public


def segment_onehot(ctx: PartyContext, table: PiecewiseTable, x: RingVec) -> BitVec:
    """XOR shares of the one-hot segment of each x, (segments, n): segment j iff
    b_{j-1} < x <= b_j at the encoded breakpoints."""
    ring = ctx.ring
    n = x.size
    k = len(table.breakpoints)
    # g_i = [x > b_i] = NOT [x < enc(b_i) + 1], all k comparisons in one batch (one round trip).
    bounds = ring.add(fxp_encode(ctx.fxp, list(table.breakpoints)), np.ones(k, dtype=np.uint64))
    le = lt_public(ctx, np.tile(x, k), np.repeat(bounds, n))
    g = xor_public(ctx.party, le, np.ones(k * n, dtype=np.uint8)).reshape(k, n)
    # g_0 >= g_1 >= ...: segment j is g_{j-1} AND NOT g_j = g_{j-1} XOR g_j (g_{-1} = 1, g_k = 0).
    one = xor_public(ctx.party, np.zeros((1, n), dtype=np.uint8), np.ones((1, n), dtype=np.uint8))
    zero = np.zeros((1, n), dtype=np.uint8)
    out: BitVec = np.concatenate([one, g]) ^ np.concatenate([g, zero])
    return out


def piecewise(ctx: PartyContext, table: PiecewiseTable, x: RingVec) -> RingVec:
    """Shares of the table evaluated at shared x, equal to `piecewise_fixed` (spec §6.2.1).

    Implements spec §30.5.1 `piecewise` (spec/30-protocols.md#piecewise).
    """
    ring, fxp = ctx.ring, ctx.fxp
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    n = xs.size
    # Step 1: comparisons and the segment one-hot.
    onehot = segment_onehot(ctx, table, xs)
    # Step 2: B2A of the segments whose row is not all zero (a zero row contributes nothing).
    rows = fxp_encode(fxp, [list(r) for r in table.coeffs])  # (segments, 3)
    live = [j for j in range(table.segments) if np.any(rows[j])]
    arith = b2a(ctx, onehot[live].reshape(-1)).reshape(len(live), n)
    # Step 3: the selected coefficients, a local linear combination with public coefficients.
    coef = [np.zeros(n, dtype=np.uint64) for _ in range(3)]
    for idx, j in enumerate(live):
        for m in range(3):
            coef[m] = ring.add(
                coef[m], ring.mul(arith[idx], np.full(n, rows[j][m], dtype=np.uint64))
            )
    c2, c1, c0 = coef
    # Step 4: x2 = trunc(x x); then trunc(c2 x2) and trunc(c1 x) in one product and one truncation.
    x2 = trunc(ctx, mul(ctx, xs, xs))
    prods = trunc(ctx, mul(ctx, np.concatenate([c2, c1]), np.concatenate([x2, xs])))
    y = ring.add(ring.add(prods[:n], prods[n:]), c0)
    return y.reshape(np.asarray(x).shape)
