"""Element-wise products of shares with multiplication triples (spec/30-protocols.md §30.1)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec, Ring, RingVec
from secmoe.errors import SpecError
from secmoe.ot.flavours import cot_recv, cot_recv_finish, cot_recv_start, cot_send
from secmoe.ot.pool import prefill_both
from secmoe.ot.triples import BitTriple, Triple, and_triples
from secmoe.session import PartyContext


def _check(ring: Ring, *vecs: RingVec) -> int:
    sizes = {np.asarray(v).size for v in vecs}
    if len(sizes) != 1:
        raise SpecError("operands must have the same number of elements")
    for v in vecs:
        ring.check(np.asarray(v), "share")
    return sizes.pop()


def _bit_matrix(a: RingVec, count: int) -> BitVec:
    """Bits 0..count-1 of each element, element-major (position i count + j is bit j of a_i)."""
    cols = np.arange(count, dtype=np.uint64)
    out: BitVec = ((a[:, None] >> cols[None, :]) & np.uint64(1)).astype(np.uint8).reshape(-1)
    return out


def _gilboa_widths(n: int, count: int) -> NDArray[np.int64]:
    """Widths count - j for bit j (j < count), element-major."""
    return np.tile(np.arange(count, 0, -1, dtype=np.int64), n)


def _weighted_sum(v: RingVec, n: int, count: int, shift: int) -> RingVec:
    """sum_j 2^(j + shift) v_{i count + j} (mod 2^64; the caller reduces)."""
    weights = np.uint64(1) << np.arange(shift, shift + count, dtype=np.uint64)
    out: RingVec = (v.reshape(n, count) * weights[None, :]).sum(axis=1, dtype=np.uint64)
    return out


def mul(ctx: PartyContext, x: RingVec, y: RingVec, triples: Triple | None = None) -> RingVec:
    """This party's share of x * y (element-wise, mod 2^l).

    Implements spec §30.1.1 `mul` (spec/30-protocols.md#mul). Without ``triples``: the cross
    terms x_C y_S and x_S y_C directly, by Gilboa products on the pool's COTs (each party
    chooses with its x's bits, correlates with its y at widths l - j). With ``triples``
    (e.g. the labelled dealer mode): Beaver's method.
    """
    ring = ctx.ring
    shape = np.asarray(x).shape
    n = _check(ring, x, y)
    xs, ys = np.asarray(x).reshape(n), np.asarray(y).reshape(n)
    if triples is None:
        return _mul_direct(ctx, xs, ys).reshape(shape)
    a, b, c = triples
    if a.size != n:
        raise SpecError(f"need {n} triples, got {a.size}")
    with ctx.channel.phase("online"):
        # Step 1: open e = x - a and f = y - b (both parties send in the same round).
        mine = np.concatenate([ring.sub(xs, a), ring.sub(ys, b)])
        ctx.channel.send_ring("proto/mul/open", ring, mine)
        theirs = ctx.channel.recv_ring("proto/mul/open", ring, 2 * n)
        both = ring.add(mine, theirs)
        e, f = both[:n], both[n:]
        # Step 2: z = c + e b + f a (+ e f for the client).
        z = ring.add(c, ring.add(ring.mul(e, b), ring.mul(f, a)))
        if ctx.party == "client":
            z = ring.add(z, ring.mul(e, f))
    return z.reshape(shape)


def _mul_direct(ctx: PartyContext, xs: RingVec, ys: RingVec) -> RingVec:
    """x_P y_P + my share of x_C y_S + x_S y_C, both directions in the same two rounds."""
    ring = ctx.ring
    n, l = xs.size, ring.bits
    widths = _gilboa_widths(n, l)
    # Ferret: both directions' COTs first, each party sending before it waits (spec §10.4.2).
    prefill_both(ctx, n * l)
    with ctx.channel.phase("online"):
        # Step 1: as receiver, choices = my x's bits (d sent); as sender, correlations my y.
        state = cot_recv_start(ctx, _bit_matrix(xs, l), widths)
        x0 = cot_send(ctx, np.repeat(ys, l) & _low_masks(widths), widths)
        got = cot_recv_finish(ctx, state)
        # Step 2: z = x y + sum_j 2^j (got_j - x0_j).
        cross = _weighted_sum(got - x0, n, l, 0)
        return ring.add(ring.mul(xs, ys), ring.reduce(cross))


def _low_masks(widths: NDArray[np.int64]) -> NDArray[np.uint64]:
    return np.where(
        widths >= 64,
        np.uint64(0xFFFFFFFFFFFFFFFF),
        (np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1),
    ).astype(np.uint64)


def square(ctx: PartyContext, x: RingVec) -> RingVec:
    """This party's share of x^2 (element-wise, mod 2^l): x_P^2 plus a share of 2 x_C x_S.

    Implements spec §30.1.3 `square` (spec/30-protocols.md#square): one COT direction, the
    client choosing with bits 0..l-2 of x_C, the server correlating with x_S at widths
    l - 1 - j; bit l - 1 drops out (2^l divides 2^l x_C x_S).
    """
    ring = ctx.ring
    shape = np.asarray(x).shape
    n = _check(ring, x)
    xs = np.asarray(x).reshape(n)
    count = ring.bits - 1
    if count == 0:  # l = 1: 2 x_C x_S = 0
        return ring.mul(xs, xs).reshape(shape)
    widths = _gilboa_widths(n, count)
    with ctx.channel.phase("online"):
        if ctx.party == "client":
            got = cot_recv(ctx, _bit_matrix(xs, count), widths)
            share = _weighted_sum(got, n, count, 1)
        else:
            x0 = cot_send(ctx, np.repeat(xs, count) & _low_masks(widths), widths)
            share = np.uint64(0) - _weighted_sum(x0, n, count, 1)
        return ring.add(ring.mul(xs, xs), ring.reduce(share)).reshape(shape)


def and_bits(ctx: PartyContext, x: BitVec, y: BitVec, triples: BitTriple | None = None) -> BitVec:
    """This party's share of x AND y for XOR-shared bits, with AND triples.

    Implements spec §30.1.2 `and_bits` (spec/30-protocols.md#and_bits).
    """
    xs, ys = np.asarray(x, dtype=np.uint8).reshape(-1), np.asarray(y, dtype=np.uint8).reshape(-1)
    if xs.size != ys.size or np.any(xs > 1) or np.any(ys > 1):
        raise SpecError("and_bits needs two bit vectors of the same length")
    n = xs.size
    a, b, c = triples if triples is not None else and_triples(ctx, n)
    with ctx.channel.phase("online"):
        # Step 1: open d = x XOR a and e = y XOR b.
        mine = np.concatenate([xs ^ a, ys ^ b])
        ctx.channel.send_bits("proto/and/open", mine)
        both = mine ^ ctx.channel.recv_bits("proto/and/open", 2 * n)
        d, e = both[:n], both[n:]
        # Step 2: z = c XOR d b XOR e a (XOR d e for the client).
        z = c ^ (d & b) ^ (e & a)
        if ctx.party == "client":
            z = z ^ (d & e)
    out: BitVec = z.reshape(np.asarray(x).shape)
    return out
