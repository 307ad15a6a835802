"""Select-Then-Compute for piecewise polynomials: Protocol 2 of SecMoE (spec/30-protocols.md §30.5)."""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

import numpy as np

from secmoe.encoding import BitVec, FixedPoint, RingVec, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.piecewise import PiecewiseTable
from secmoe.model.tables import SIGMOID
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import lt_public_many
from secmoe.protocols.mul import square
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import xor_public


def input_bound(bits: int) -> int:
    """X = isqrt(2^(l-2) - 1): the largest |x| (encoded) with x^2 < 2^(l-2), the input bound of
    ``piecewise`` and ``gelu_bumblebee`` (spec §30.5.1)."""
    return isqrt((1 << (bits - 2)) - 1)


def compare_width(bits: int) -> int:
    """m = min(l, bitlen(X) + 2): with |x| <= X and |c| <= X, |x - c| <= 2X < 2^(m-1), so the
    comparisons with the breakpoints are exact in Z_2^m (spec §30.5.1 step 1)."""
    return min(bits, input_bound(bits).bit_length() + 2)


@dataclass(frozen=True)
class Power:
    """The segments whose coefficient of one power is nonzero, and those coefficients; with
    ``exact`` every one is a multiple of 2^f, and ``coeffs`` holds them divided by 2^f."""

    segments: tuple[int, ...]
    coeffs: tuple[int, ...]
    exact: bool

    @property
    def truncated(self) -> bool:
        """Whether the selected product needs a truncation (spec §30.5.1 step 5)."""
        return bool(self.segments) and not self.exact


@dataclass(frozen=True)
class Plan:
    """What the public table fixes of the protocol's messages (spec §30.5.1)."""

    width: int  # m of the comparisons
    bounds: tuple[int, ...]  # enc(b_i) + 1, signed
    quad: Power  # c2
    lin: Power  # c1
    const: Power  # c0, added as it is


def _power(column: list[int], frac: int | None) -> Power:
    """The live segments of one coefficient column; ``frac`` None: never divided (c0)."""
    live = tuple(j for j, c in enumerate(column) if c)
    coeffs = tuple(column[j] for j in live)
    exact = frac is not None and all(c % (1 << frac) == 0 for c in coeffs)
    if exact and frac is not None:
        coeffs = tuple(c >> frac for c in coeffs)
    return Power(live, coeffs, exact)


def plan(table: PiecewiseTable, fxp: FixedPoint) -> Plan:
    """The comparison width and the live segments of each power, from the table alone."""
    ring = fxp.ring
    bounds = tuple(int(b) + 1 for b in ring.to_signed(fxp_encode(fxp, list(table.breakpoints))))
    limit = input_bound(ring.bits)
    if any(abs(c) > limit for c in bounds):
        raise SpecError(
            f"{table.name}: a breakpoint lies beyond the input bound X = {limit} (spec §30.5.1)"
        )
    rows = ring.to_signed(fxp_encode(fxp, [list(r) for r in table.coeffs]))  # (segments, 3)
    cols = [[int(r[m]) for r in rows] for m in range(3)]
    return Plan(
        compare_width(ring.bits),
        bounds,
        _power(cols[0], fxp.frac_bits),
        _power(cols[1], fxp.frac_bits),
        _power(cols[2], None),
    )


def segment_onehot(
    ctx: PartyContext, table: PiecewiseTable, x: RingVec, width: int | None = None
) -> BitVec:
    """XOR shares of the one-hot segment of each x, (segments, n): segment j iff
    b_{j-1} < x <= b_j at the encoded breakpoints. ``width`` is the comparisons' (default l)."""
    ring = ctx.ring
    n = x.size
    k = len(table.breakpoints)
    # g_i = [x > b_i] = NOT [x < enc(b_i) + 1], all k comparisons at once, one OT choice each.
    bounds = ring.add(fxp_encode(ctx.fxp, list(table.breakpoints)), np.ones(k, dtype=np.uint64))
    le = lt_public_many(ctx, x, bounds, width).reshape(-1)
    g = xor_public(ctx.party, le, np.ones(k * n, dtype=np.uint8)).reshape(k, n)
    # g_0 >= g_1 >= ...: segment j is g_{j-1} AND NOT g_j = g_{j-1} XOR g_j (g_{-1} = 1, g_k = 0).
    one = xor_public(ctx.party, np.zeros((1, n), dtype=np.uint8), np.ones((1, n), dtype=np.uint8))
    zero = np.zeros((1, n), dtype=np.uint8)
    out: BitVec = np.concatenate([one, g]) ^ np.concatenate([g, zero])
    return out


def _combine(ctx: PartyContext, power: Power, terms: RingVec) -> RingVec:
    """sum_j c_j terms_j over the power's live segments: local, the coefficients public."""
    ring = ctx.ring
    acc = np.zeros(terms.shape[1], dtype=np.uint64)
    for c, term in zip(power.coeffs, terms, strict=True):
        acc = ring.add(acc, ring.mul(ring.from_int(np.full(acc.size, c)), term))
    return acc


def piecewise(ctx: PartyContext, table: PiecewiseTable, x: RingVec) -> RingVec:
    """Shares of the table evaluated at shared x, equal to `piecewise_fixed` (spec §6.2.1).

    Implements spec §30.5.1 `piecewise` (spec/30-protocols.md#piecewise).
    """
    ring = ctx.ring
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    n = xs.size
    p = plan(table, ctx.fxp)
    # Step 1: the comparisons in Z_2^m and the segment one-hot.
    onehot = segment_onehot(ctx, table, xs, p.width)
    # Step 2: C0 = sum_j enc(c0_j) [o_j] from the b2a of the segments with c0 != 0.
    if p.const.segments:
        arith = b2a(ctx, onehot[list(p.const.segments)].reshape(-1))
        c0 = _combine(ctx, p.const, arith.reshape(len(p.const.segments), n))
    else:
        c0 = np.zeros(n, dtype=np.uint64)
    # Step 3: x2 = trunc(x x), only if some segment has c2 != 0.
    x2 = trunc(ctx, square(ctx, xs)) if p.quad.segments else xs
    # Step 4: o_j x2 and o_j x for the live segments of each power, in one mux.
    bits = onehot[list(p.quad.segments + p.lin.segments)].reshape(-1)
    vals = [x2] * len(p.quad.segments) + [xs] * len(p.lin.segments)
    if vals:
        sel = mux(ctx, bits, np.concatenate(vals)).reshape(len(vals), n)
    else:
        sel = np.zeros((0, n), dtype=np.uint64)
    q = len(p.quad.segments)
    prods = [_combine(ctx, p.quad, sel[:q]), _combine(ctx, p.lin, sel[q:])]
    # Step 5: trunc(C2 x2) and trunc(C1 x) in one truncation (a power whose coefficients are all
    # multiples of 2^f was already divided exactly); y = the two + C0.
    cut = [i for i, pw in enumerate((p.quad, p.lin)) if pw.truncated]
    if cut:
        done = trunc(ctx, np.concatenate([prods[i] for i in cut])).reshape(len(cut), n)
        for row, i in enumerate(cut):
            prods[i] = done[row]
    y = ring.add(ring.add(prods[0], prods[1]), c0)
    return y.reshape(np.asarray(x).shape)


def sigmoid(ctx: PartyContext, x: RingVec) -> RingVec:
    """Shares of ``sigmoid_fixed(x)`` (spec §6.2.3) for shared x of any shape.

    Implements spec §30.5.2 `sigmoid` (spec/30-protocols.md#sigmoid): ``piecewise`` with the
    sigmoid table.
    """
    return piecewise(ctx, SIGMOID, x)
