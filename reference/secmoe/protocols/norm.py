"""Inverse square root, LayerNorm and RMSNorm on shares (spec/33-functions.md §33.4-33.5),
bit-exact against their fixed-point oracles in secmoe.model.norm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from secmoe.encoding import FixedPoint, Ring, RingVec, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.norm import (
    NORM_BOUND,
    RSQRT_COEFFS,
    RSQRT_NEWTON,
    Coeffs,
    check_bound,
    check_fxp,
    eps_fixed,
    mean_constant,
    pow2_fixed,
    rsqrt_segments,
    segment_breakpoints,
)
from secmoe.model.piecewise import PiecewiseTable
from secmoe.protocols.b2a import b2a
from secmoe.protocols.cost import (
    Pattern,
    b2a_cost,
    lt_public_many_cost,
    mul_cost,
    seq,
    square_cost,
    trunc_cost,
)
from secmoe.protocols.mul import mul, square
from secmoe.protocols.piecewise import segment_onehot
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import add_public, mul_public


def select_scales(
    ctx: PartyContext, x: RingVec, breakpoints: Sequence[float], columns: Sequence[RingVec]
) -> list[RingVec]:
    """Shares of ``column[j]`` for each column, j the segment of each x (right-closed).

    The selection half of Select-Then-Compute (spec §30.5.1 steps 1-3): the comparisons and the
    segment one-hot of ``segment_onehot``, one ``b2a`` of every segment's bit, then for each column
    the local sum of the bits times its public entries."""
    ring = ctx.ring
    n = x.size
    # Only the breakpoints of the table are read by segment_onehot.
    table = PiecewiseTable("scale", tuple(breakpoints), ((0.0, 0.0, 0.0),) * (len(breakpoints) + 1))
    onehot = segment_onehot(ctx, table, x)
    arith = b2a(ctx, onehot.reshape(-1)).reshape(table.segments, n)
    out = []
    for col in columns:
        acc = np.zeros(n, dtype=np.uint64)
        for j in range(table.segments):
            acc = ring.add(acc, mul_public(arith[j], np.full(n, col[j], dtype=np.uint64), ring))
        out.append(acc)
    return out


def public_share(ctx: PartyContext, value: int, n: int) -> RingVec:
    """Shares of the public ring element ``value`` (the client holds it, the server 0)."""
    return add_public(
        ctx.party, np.zeros(n, dtype=np.uint64), np.full(n, value, dtype=np.uint64), ctx.ring
    )


def quadratic(ctx: PartyContext, coeffs: Coeffs, u: RingVec) -> RingVec:
    """Shares of ``quadratic_fixed``: trunc(C2 trunc(u u) + C1 u) + C0, public coefficients."""
    ring = ctx.ring
    n = u.size
    c2, c1, c0 = (int(fxp_encode(ctx.fxp, c)) for c in coeffs)
    u2 = trunc(ctx, square(ctx, u))
    lin = ring.add(
        mul_public(u2, np.full(n, c2, dtype=np.uint64), ring),
        mul_public(u, np.full(n, c1, dtype=np.uint64), ring),
    )
    return add_public(ctx.party, trunc(ctx, lin), np.full(n, c0, dtype=np.uint64), ring)


def rsqrt(ctx: PartyContext, v: RingVec, bound: int) -> RingVec:
    """Shares of ``rsqrt_fixed(v, bound)``, 1 / sqrt(v), for shared 2^-f <= v <= bound.

    Implements spec §33.4.2 `rsqrt` (spec/33-functions.md#rsqrt).
    """
    ring, fxp = ctx.ring, ctx.fxp
    check_fxp(fxp, "rsqrt")
    check_bound(bound, "rsqrt")
    vs = ring.check(np.asarray(v), "v").reshape(-1)
    n = vs.size
    first, count = rsqrt_segments(fxp, bound)
    if 2 * (first + count - 1) > fxp.frac_bits:
        raise SpecError(f"rsqrt needs bound <= 2^(2 floor(f / 2)), got {bound}")
    exps = np.arange(first, first + count, dtype=np.int64)
    # Step 1: the segment's scales enc(4^-e) and enc(2^-e), selected obliviously.
    cu, cr = select_scales(
        ctx,
        vs,
        segment_breakpoints(2, first, count),
        [pow2_fixed(fxp, -2 * exps), pow2_fixed(fxp, -exps)],
    )
    # Step 2: u = trunc(v cu).
    u = trunc(ctx, mul(ctx, vs, cu))
    # Step 3: the quadratic start.
    y = quadratic(ctx, RSQRT_COEFFS, u)
    # Step 4: Newton, y <- trunc_{f+1}(y (enc(3) - trunc(u trunc(y y)))).
    three = np.full(n, fxp_encode(fxp, 3.0), dtype=np.uint64)
    for _ in range(RSQRT_NEWTON):
        b = trunc(ctx, mul(ctx, u, trunc(ctx, square(ctx, y))))
        y = trunc(
            ctx, mul(ctx, y, add_public(ctx.party, ring.neg(b), three, ring)), fxp.frac_bits + 1
        )
    # Step 5: r = trunc(y cr).
    return trunc(ctx, mul(ctx, y, cr)).reshape(np.asarray(v).shape)


def _rows(ctx: PartyContext, x: RingVec) -> RingVec:
    xs = ctx.ring.check(np.asarray(x), "x")
    if xs.ndim != 2 or xs.shape[0] < 1 or xs.shape[1] < 1:
        raise SpecError(f"x must have shape (tokens >= 1, d >= 1), got {xs.shape}")
    return xs


def _weight_share(ctx: PartyContext, w: RingVec | None, d: int, what: str) -> RingVec:
    """The server's own weight vector as its share, zeros as the client's (the client has none)."""
    if ctx.party == "client":
        if w is not None:
            raise SpecError(f"{what} is the server's weight: the client passes None")
        return np.zeros(d, dtype=np.uint64)
    if w is None:
        raise SpecError(f"the server must pass {what}")
    ws = ctx.ring.check(np.asarray(w), what)
    if ws.shape != (d,):
        raise SpecError(f"{what} must have shape ({d},), got {ws.shape}")
    return ws


def _mean(ctx: PartyContext, total: RingVec, d: int) -> RingVec:
    """trunc_s(total m) with the public 1/d of ``mean_constant`` (a local product)."""
    m, s = mean_constant(ctx.fxp, d)
    return trunc(ctx, mul_public(total, np.full(total.size, m, dtype=np.uint64), ctx.ring), s)


def _normalise(ctx: PartyContext, xc: RingVec, gamma: RingVec, eps: float) -> RingVec:
    """Steps shared by both norms: squares and gamma products in one mul and one trunc, the
    mean square, + eps, rsqrt, and the product with the per-token rsqrt."""
    ring = ctx.ring
    t, d = xc.shape
    g = np.tile(gamma, t)
    flat = xc.reshape(-1)
    # Step a: xc xc and xc gamma in one batched mul.
    prods = mul(ctx, np.concatenate([flat, flat]), np.concatenate([flat, g]))
    sq = ring.reduce(np.sum(prods[: t * d].reshape(t, d), axis=1, dtype=np.uint64))
    # Step b: one trunc for the T row sums of squares and the T d gamma products.
    both = trunc(ctx, np.concatenate([sq, prods[t * d :]]))
    q, xg = both[:t], both[t:]
    # Step c: v = trunc_s(q m) + enc(eps), at least one unit.
    eps_c = np.full(t, eps_fixed(ctx.fxp, eps), dtype=np.uint64)
    v = add_public(ctx.party, _mean(ctx, q, d), eps_c, ring)
    # Step d: r = rsqrt(v).
    r = rsqrt(ctx, v, NORM_BOUND)
    # Step e: trunc(xg r), r repeated along each row.
    return trunc(ctx, mul(ctx, xg, np.repeat(r, d))).reshape(t, d)


def layernorm(
    ctx: PartyContext, x: RingVec, gamma: RingVec | None, beta: RingVec | None, eps: float = 1e-5
) -> RingVec:
    """Shares of ``layernorm_fixed(x, gamma, beta, eps)`` for shared tokens x (T, d) and the
    server's encoded gamma, beta (d,) (None on the client).

    Implements spec §33.5.2 `layernorm` (spec/33-functions.md#layernorm).
    """
    ring, fxp = ctx.ring, ctx.fxp
    check_fxp(fxp, "layernorm")
    xs = _rows(ctx, x)
    d = xs.shape[1]
    g = _weight_share(ctx, gamma, d, "gamma")
    b = _weight_share(ctx, beta, d, "beta")
    eps_fixed(fxp, eps)  # reject a bad eps before any message
    # Step 1: mu = trunc_s(sum_i x_i m), a local sum and a local product.
    mu = _mean(ctx, ring.reduce(np.sum(xs, axis=1, dtype=np.uint64)), d)
    # Step 2: centre.
    xc = ring.sub(xs, mu[:, None])
    # Steps 3-6: as layernorm_fixed.
    y = _normalise(ctx, xc, g, eps)
    # Step 7: + beta, the server adding its weights to its share.
    return y if ctx.party == "client" else ring.add(y, np.broadcast_to(b, y.shape))


def rmsnorm(ctx: PartyContext, x: RingVec, gamma: RingVec | None, eps: float = 1e-6) -> RingVec:
    """Shares of ``rmsnorm_fixed(x, gamma, eps)`` for shared tokens x (T, d) and the server's
    encoded gamma (d,) (None on the client).

    Implements spec §33.5.4 `rmsnorm` (spec/33-functions.md#rmsnorm).
    """
    fxp = ctx.fxp
    check_fxp(fxp, "rmsnorm")
    xs = _rows(ctx, x)
    g = _weight_share(ctx, gamma, xs.shape[1], "gamma")
    eps_fixed(fxp, eps)  # reject a bad eps before any message
    # Steps 1-4: as layernorm's steps 3-6 on x itself.
    return _normalise(ctx, xs, g, eps)


# --- cost (spec §33.6), in the message patterns of secmoe.protocols.cost ------------------------


def select_scales_cost(n: int, segments: int, bits: int) -> Pattern:
    """``select_scales``: (segments - 1) n comparisons, b2a of segments n bits."""
    return seq(lt_public_many_cost(n, segments - 1, bits), b2a_cost(segments * n, bits))


def mul_trunc_cost(n: int, bits: int, s: int) -> Pattern:
    return seq(mul_cost(n, bits), trunc_cost(n, bits, s))


def square_trunc_cost(n: int, bits: int, s: int) -> Pattern:
    return seq(square_cost(n, bits), trunc_cost(n, bits, s))


def quadratic_cost(n: int, bits: int, frac: int) -> Pattern:
    """``quadratic``: u u (square + trunc), then one trunc of the public products."""
    return seq(square_trunc_cost(n, bits, frac), trunc_cost(n, bits, frac))


def rsqrt_cost(n: int, bound: int, bits: int, frac: int) -> Pattern:
    """``rsqrt`` of n values: selection, u, the start, Newton (3 mul + trunc each), r."""
    _, count = rsqrt_segments(FixedPoint(Ring(bits), frac), bound)
    newton = [
        seq(
            square_trunc_cost(n, bits, frac),
            mul_trunc_cost(n, bits, frac),
            mul_trunc_cost(n, bits, frac + 1),
        )
        for _ in range(RSQRT_NEWTON)
    ]
    return seq(
        select_scales_cost(n, count, bits),
        mul_trunc_cost(n, bits, frac),
        quadratic_cost(n, bits, frac),
        seq(newton),
        mul_trunc_cost(n, bits, frac),
    )


def _normalise_cost(t: int, d: int, bits: int, frac: int) -> Pattern:
    s = frac + (d - 1).bit_length()
    return seq(
        mul_cost(2 * t * d, bits),
        trunc_cost(t + t * d, bits, frac),
        trunc_cost(t, bits, s),
        rsqrt_cost(t, NORM_BOUND, bits, frac),
        mul_trunc_cost(t * d, bits, frac),
    )


def layernorm_cost(t: int, d: int, bits: int, frac: int) -> Pattern:
    """``layernorm`` of T tokens of d: the mean's trunc, then the shared tail."""
    return seq(trunc_cost(t, bits, frac + (d - 1).bit_length()), _normalise_cost(t, d, bits, frac))


def rmsnorm_cost(t: int, d: int, bits: int, frac: int) -> Pattern:
    """``rmsnorm`` of T tokens of d: the shared tail only."""
    return _normalise_cost(t, d, bits, frac)
