"""Boolean-to-arithmetic conversion and the multiplexer, from correlated OT (spec/30-protocols.md §30.2)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec, RingVec
from secmoe.errors import SpecError
from secmoe.ot.flavours import cot_recv, cot_recv_finish, cot_recv_start, cot_send
from secmoe.ot.pool import ot_setup, prefill_both
from secmoe.session import PartyContext


def _bits(b: BitVec) -> BitVec:
    out = np.asarray(b, dtype=np.uint8).reshape(-1)
    if np.any(out > 1):
        raise SpecError("expected a bit vector")
    return out


def b2a(ctx: PartyContext, b: BitVec, width: NDArray[np.int64] | int | None = None) -> RingVec:
    """Arithmetic shares in Z_2^w of XOR-shared bits: b = b_C + b_S - 2 b_C b_S mod 2^w.

    Implements spec §30.2.1 `b2a` (spec/30-protocols.md#b2a). One correlated OT per bit of
    width w (default l; per element if an array): the server sends with correlation b_S, the
    client chooses with b_C. Shares mod 2^w < 2^l are what a caller needs when it scales the
    bit by 2^(l - w) (truncation's wrap).
    """
    ring = ctx.ring
    bits = _bits(b)
    w = np.broadcast_to(np.asarray(ring.bits if width is None else width, np.int64), bits.shape)
    if bits.size and (w.min() < 1 or w.max() > ring.bits):
        raise SpecError(f"b2a widths must lie in [1, l = {ring.bits}]")
    mask = np.where(
        w >= 64, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << w.astype(np.uint64)) - np.uint64(1)
    ).astype(np.uint64)
    with ctx.channel.phase("online"):
        if ctx.party == "client":
            # Step 1 (client): u = x0 + b_C b_S.
            u = cot_recv(ctx, bits, w)
            # Step 2: b_C - 2 u.
            out = (bits.astype(np.uint64) - u - u) & mask
        else:
            x0 = cot_send(ctx, bits.astype(np.uint64), w)
            # Step 2 (server): b_S + 2 x0 (its share of -2 b_C b_S is +2 x0).
            out = (bits.astype(np.uint64) + x0 + x0) & mask
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
    # Ferret: both directions' COTs first, each party sending before it waits (spec §10.4.2).
    prefill_both(ctx, bits.size)
    with ctx.channel.phase("online"):
        # Step 1: as receiver (choices = my bits) send U; as sender (delta) answer the peer's U.
        state = cot_recv_start(ctx, bits, ring.bits)
        r = cot_send(ctx, delta, ring.bits)
        got = cot_recv_finish(ctx, state)
        # Step 2: b_P x_P - r (my term, peer's part removed) + got (the peer's term's share).
        out = ring.add(ring.sub(ring.mul(mine, xs), r), got)
    return out.reshape(np.asarray(x).shape)
