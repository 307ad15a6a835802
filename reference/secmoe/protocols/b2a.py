"""Boolean-to-arithmetic conversion and the multiplexer, from correlated OT (spec/30-protocols.md §30.2)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import BitVec, RingVec
from secmoe.errors import SpecError
from secmoe.ot.flavours import cot_recv, cot_recv_finish, cot_recv_start, cot_send
from secmoe.ot.iknp import ot_setup
from secmoe.session import PartyContext


def _bits(b: BitVec) -> BitVec:
    out = np.asarray(b, dtype=np.uint8).reshape(-1)
    if np.any(out > 1):
        raise SpecError("expected a bit vector")
    return out


def b2a(ctx: PartyContext, b: BitVec) -> RingVec:
    """Arithmetic shares in Z_2^l of XOR-shared bits: b = b_C + b_S - 2 b_C b_S.

    Implements spec §30.2.1 `b2a` (spec/30-protocols.md#b2a). One correlated OT per bit: the
    server sends with correlation b_S, the client chooses with b_C.
    """
    ring = ctx.ring
    bits = _bits(b)
    with ctx.channel.phase("online"):
        if ctx.party == "client":
            # Step 1 (client): u = x0 + b_C b_S.
            u = cot_recv(ctx, bits, ring.bits)
            # Step 2: b_C - 2 u.
            out = ring.sub(bits.astype(np.uint64), ring.add(u, u))
        else:
            x0 = cot_send(ctx, bits.astype(np.uint64), ring.bits)
            # Step 2 (server): b_S + 2 x0 (its share of -2 b_C b_S is +2 x0).
            out = ring.add(bits.astype(np.uint64), ring.add(x0, x0))
    return out.reshape(np.asarray(b).shape)


def mux(ctx: PartyContext, b: BitVec, x: RingVec) -> RingVec:
    """Shares of b * x for XOR-shared bits b and arithmetic-shared x (element-wise).

    Implements spec §30.2.2 `mux` (spec/30-protocols.md#mux). b x_P = b_P x_P + b_Q (1 - 2 b_P) x_P
    for each party P and its peer Q: one correlated OT per element in each direction, both
    directions in the same two rounds.
    """
    ring = ctx.ring
    bits = _bits(b)
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    if xs.size != bits.size:
        raise SpecError("mux needs as many bits as values")
    mine = bits.astype(np.uint64)
    # Delta = (1 - 2 b_P) x_P: x_P if b_P = 0, -x_P if b_P = 1.
    delta = np.where(bits == 1, ring.neg(xs), xs).astype(np.uint64)
    ot_setup(ctx)
    with ctx.channel.phase("online"):
        # Step 1: as receiver (choices = my bits) send U; as sender (delta) answer the peer's U.
        state = cot_recv_start(ctx, bits, ring.bits)
        r = cot_send(ctx, delta, ring.bits)
        got = cot_recv_finish(ctx, state)
        # Step 2: b_P x_P - r (my term, peer's part removed) + got (the peer's term's share).
        out = ring.add(ring.sub(ring.mul(mine, xs), r), got)
    return out.reshape(np.asarray(x).shape)
