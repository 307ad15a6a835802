"""Element-wise products of shares with multiplication triples (spec/30-protocols.md §30.1)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import BitVec, Ring, RingVec
from secmoe.errors import SpecError
from secmoe.ot.triples import BitTriple, Triple, and_triples, beaver_triples
from secmoe.session import PartyContext


def _check(ring: Ring, *vecs: RingVec) -> int:
    sizes = {np.asarray(v).size for v in vecs}
    if len(sizes) != 1:
        raise SpecError("operands must have the same number of elements")
    for v in vecs:
        ring.check(np.asarray(v), "share")
    return sizes.pop()


def mul(ctx: PartyContext, x: RingVec, y: RingVec, triples: Triple | None = None) -> RingVec:
    """This party's share of x * y (element-wise, mod 2^l), Beaver's method.

    Implements spec §30.1.1 `mul` (spec/30-protocols.md#mul). Without ``triples`` they are
    generated with the two-party protocol of spec §10.5.1 (phase ``offline``).
    """
    ring = ctx.ring
    shape = np.asarray(x).shape
    n = _check(ring, x, y)
    xs, ys = np.asarray(x).reshape(n), np.asarray(y).reshape(n)
    a, b, c = triples if triples is not None else beaver_triples(ctx, n, ring.bits)
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
