"""Selection on shares (spec/32-selection.md): comparison of two shared values, the row maximum,
argmax and top-k by a tournament tree of comparisons and multiplexers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secmoe.encoding import BitVec, RingVec
from secmoe.errors import SpecError
from secmoe.protocols import compare
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import tree_levels
from secmoe.protocols.cost import (
    Pattern,
    b2a_cost,
    msb_cost,
    mux_cost,
    onehot_cost,
    seq,
)
from secmoe.session import PartyContext


@dataclass(frozen=True)
class TopK:
    """A party's shares of the top-k of each row.

    ``values`` (rows, k) and ``indices`` (rows, k) are arithmetic shares in Z_2^l, best first;
    ``onehot`` (rows, k, n) holds XOR shares of each slot's one-hot, present only when asked for.
    """

    values: RingVec
    indices: RingVec
    onehot: BitVec | None


def _rows(ctx: PartyContext, x: RingVec) -> RingVec:
    """x as (rows, n) with rows, n >= 1; a vector is one row."""
    arr = ctx.ring.check(np.asarray(x), "x")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise SpecError(f"x must have shape (n,) or (rows, n), got ndim {arr.ndim}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise SpecError(f"x must have at least one row and one entry, got shape {arr.shape}")
    return arr


def lt(ctx: PartyContext, x: RingVec, y: RingVec) -> BitVec:
    """XOR shares of [x < y] (signed, element-wise) for shared x and y with |x|, |y| < 2^(l-2).

    Implements spec §32.1.1 `lt` (spec/32-selection.md#lt): MSB(x - y), exact while the
    difference does not wrap.
    """
    ring = ctx.ring
    xs = ring.check(np.asarray(x), "x")
    ys = ring.check(np.asarray(y), "y")
    if xs.shape != ys.shape:
        raise SpecError(f"lt needs operands of the same shape, got {xs.shape} and {ys.shape}")
    # Step 1: each party subtracts its shares locally; Step 2: the sign bit of the difference.
    return compare.msb(ctx, ring.sub(xs, ys))


def _tournament(
    ctx: PartyContext, vals: RingVec, idx: RingVec | None
) -> tuple[RingVec, RingVec | None]:
    """Winner of each row, (rows,) shares, and its index shares if ``idx`` is given.

    Per layer, neighbours (a, b) with a on the left: c = [a < b] and the winner a + c (b - a),
    every pair of every row in one ``lt`` and one ``mux``; an odd last entry moves up."""
    ring = ctx.ring
    rows = vals.shape[0]
    while vals.shape[1] > 1:
        width = vals.shape[1]
        pairs = width // 2
        left, right = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        a, b = vals[:, left], vals[:, right]
        # c = 1 only when the right entry is strictly greater: ties keep the lower index.
        c = lt(ctx, a, b).reshape(-1)
        diffs = [ring.sub(b, a).reshape(-1)]
        bits = [c]
        if idx is not None:
            diffs.append(ring.sub(idx[:, right], idx[:, left]).reshape(-1))
            bits.append(c)
        picked = mux(ctx, np.concatenate(bits), np.concatenate(diffs))
        m = rows * pairs
        new_vals = ring.add(a, picked[:m].reshape(rows, pairs))
        new_idx = None
        if idx is not None:
            new_idx = ring.add(idx[:, left], picked[m:].reshape(rows, pairs))
        if width % 2:
            new_vals = np.concatenate([new_vals, vals[:, -1:]], axis=1)
            if idx is not None and new_idx is not None:
                new_idx = np.concatenate([new_idx, idx[:, -1:]], axis=1)
        vals, idx = new_vals, new_idx
    return vals[:, 0].copy(), None if idx is None else idx[:, 0].copy()


def _public_indices(ctx: PartyContext, rows: int, n: int) -> RingVec:
    """Shares of the public index j of every entry: the client holds j, the server 0."""
    if ctx.party == "server":
        return np.zeros((rows, n), dtype=np.uint64)
    return ctx.ring.from_int(np.tile(np.arange(n, dtype=np.int64), (rows, 1)))


def maximum(ctx: PartyContext, x: RingVec) -> RingVec:
    """Shares of the (signed) maximum of each row of x, (rows,); |x| < 2^(l-2).

    Implements spec §32.2.1 `maximum` (spec/32-selection.md#maximum).
    """
    vals = _rows(ctx, x)
    # Steps 1-2: the tournament tree, one lt and one mux per layer.
    best, _ = _tournament(ctx, vals, None)
    return best


def argmax(ctx: PartyContext, x: RingVec) -> tuple[RingVec, RingVec]:
    """Shares of the row maximum and of its index (the lowest among equal maxima), both (rows,).

    Implements spec §32.2.2 `argmax` (spec/32-selection.md#argmax). |x| < 2^(l-2).
    """
    vals = _rows(ctx, x)
    rows, n = vals.shape
    # Step 1: the indices are public values.
    idx = _public_indices(ctx, rows, n)
    # Step 2: the tournament, indices multiplexed with the values in the same mux.
    best, where = _tournament(ctx, vals, idx)
    assert where is not None
    return best, where


def _onehot_bits(ctx: PartyContext, index: RingVec, n: int) -> BitVec:
    """XOR shares of the one-hot of each index, (rows, n); with n = 1 it is the public 1."""
    if n == 1:
        bit = 1 if ctx.party == "client" else 0
        return np.full((index.size, 1), bit, dtype=np.uint8)
    return compare.onehot(ctx, index, n)


def topk(ctx: PartyContext, x: RingVec, k: int, onehot: bool = False) -> TopK:
    """Shares of the k largest entries of each row, best first, ties to the lower index.

    Implements spec §32.3.1 `topk` (spec/32-selection.md#topk). Precondition |x| < 2^(l-4);
    the result equals ``topk_order`` (spec §6.3.1) of the signed values.
    """
    ring = ctx.ring
    vals = _rows(ctx, x)
    rows, n = vals.shape
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise SpecError(f"topk needs 1 <= k <= n = {n}, got k = {k!r}")
    if ring.bits < 4:
        raise SpecError(f"topk needs a ring of at least 4 bits, got l = {ring.bits}")
    penalty = np.uint64(1 << (ring.bits - 3))  # M = 2^(l-3)
    idx = _public_indices(ctx, rows, n)
    values, indices, hots = [], [], []
    for slot in range(k):
        # Step 1: argmax of what remains.
        best, where = _tournament(ctx, vals, idx)
        assert where is not None
        values.append(best)
        indices.append(where)
        if slot == k - 1 and not onehot:
            break
        # Step 2: the one-hot of the index found, as XOR and as arithmetic shares.
        hot = _onehot_bits(ctx, where, n)
        if onehot:
            hots.append(hot)
        if slot == k - 1:
            break
        # Step 3: x - M onehot drops the found entry below every remaining one (local).
        arith = b2a(ctx, hot.reshape(-1)).reshape(rows, n)
        vals = ring.sub(vals, ring.mul(arith, np.full(arith.shape, penalty, dtype=np.uint64)))
    return TopK(
        values=np.stack(values, axis=1),
        indices=np.stack(indices, axis=1),
        onehot=np.stack(hots, axis=1) if onehot else None,
    )


# --- cost (spec §32.4), in the message patterns of secmoe.protocols.cost --------------------------


def lt_cost(m: int, bits: int) -> Pattern:
    """``lt`` on m elements over Z_2^l: one ``msb``."""
    return msb_cost(m, bits)


def maximum_cost(rows: int, n: int, bits: int) -> Pattern:
    """``maximum`` of rows x n: per tree layer of p pairs, ``lt`` and ``mux`` on rows p."""
    return seq(seq(lt_cost(rows * p, bits), mux_cost(rows * p, bits)) for p in tree_levels(n))


def argmax_cost(rows: int, n: int, bits: int) -> Pattern:
    """``argmax``: as ``maximum`` with values and indices in one ``mux`` of 2 rows p."""
    return seq(seq(lt_cost(rows * p, bits), mux_cost(2 * rows * p, bits)) for p in tree_levels(n))


def topk_cost(rows: int, n: int, k: int, bits: int, onehot: bool = False) -> Pattern:
    """``topk``: k argmax passes; one-hot (n > 1) and b2a of rows n bits between passes."""
    parts = []
    for slot in range(k):
        parts.append(argmax_cost(rows, n, bits))
        if (slot < k - 1 or onehot) and n > 1:
            parts.append(onehot_cost(rows, n))
        if slot < k - 1:
            parts.append(b2a_cost(rows * n, bits))
    return seq(parts)
