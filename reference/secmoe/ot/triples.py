"""Multiplication triples from correlated OT, and the labelled dealer mode (spec/10-ot.md §10.5).

Both generators run in the channel phase ``offline``. The two cross terms of a triple use one
COT direction each; both directions' U messages go in the same round, then both corrections.
"""

from __future__ import annotations

import numpy as np

from secmoe.encoding import BitVec, Ring, RingVec
from secmoe.errors import Party, SpecError
from secmoe.ot.flavours import cot_recv_finish, cot_recv_start, cot_send
from secmoe.ot.iknp import ot_setup
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext

Triple = tuple[RingVec, RingVec, RingVec]
BitTriple = tuple[BitVec, BitVec, BitVec]


def _bit_decompose(a: RingVec, bits: int) -> BitVec:
    """Bits of each element, element-major: position i l + j is bit j of a_i."""
    return (
        ((a[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1))
        .astype(np.uint8)
        .reshape(-1)
    )


def _cross_terms(
    ctx: PartyContext, mine_a: RingVec, mine_b: RingVec, bits: int, scaled: bool
) -> RingVec:
    """This party's share of a_C b_S + a_S b_C, by two COT directions run in parallel.

    With ``scaled`` (Gilboa), each element uses l COTs with correlations 2^j b; otherwise
    (bits, l = 1) one COT with correlation b.
    """
    ring = Ring(bits)
    n = mine_a.size
    per = bits if scaled else 1
    choices = _bit_decompose(mine_a, bits) if scaled else mine_a.astype(np.uint8)
    if scaled:
        weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64)) & ring.mask
        delta = ring.reduce((mine_b[:, None] * weights[None, :]).reshape(-1))
    else:
        delta = mine_b
    # Step 2: as receiver (choices = my a's bits), send U; Step 3: as sender (delta from my b),
    # receive the peer's U and send corrections; Step 4: receive my corrections.
    ot_setup(ctx)
    state = cot_recv_start(ctx, choices, bits)
    x0 = cot_send(ctx, delta, bits)
    got = cot_recv_finish(ctx, state)
    as_receiver = got.reshape(n, per).sum(axis=1, dtype=np.uint64)
    as_sender = x0.reshape(n, per).sum(axis=1, dtype=np.uint64)
    return ring.sub(ring.reduce(as_receiver), ring.reduce(as_sender))


def beaver_triples(ctx: PartyContext, n: int, bits: int = 64) -> Triple:
    """This party's shares (a, b, c) of n triples over Z_2^l with c = a b, by Gilboa multiplication.

    Implements spec §10.5.1 `beaver_triples` (spec/10-ot.md#beaver_triples).
    """
    if n < 1:
        raise SpecError("need at least one triple")
    ring = Ring(bits)
    with ctx.channel.phase("offline"):
        # Step 1: my random a, b.
        prg = ctx.prg("ot.beaver", "ab")
        a, b = prg.next_ring(n, bits), prg.next_ring(n, bits)
        cross = _cross_terms(ctx, a, b, bits, scaled=True)
        # Step 5: c = a b + (my share of the cross terms).
        return a, b, ring.add(ring.mul(a, b), cross)


def and_triples(ctx: PartyContext, n: int) -> BitTriple:
    """This party's shares (a, b, c) of n Boolean triples with c = a AND b (XOR sharing).

    Implements spec §10.5.2 `and_triples` (spec/10-ot.md#and_triples).
    """
    if n < 1:
        raise SpecError("need at least one triple")
    with ctx.channel.phase("offline"):
        prg = ctx.prg("ot.and", "ab")
        a, b = prg.next_bits(n), prg.next_bits(n)
        cross = _cross_terms(ctx, a.astype(np.uint64), b.astype(np.uint64), 1, scaled=False)
        return a, b, (a & b) ^ cross.astype(np.uint8)


# --- dealer mode: teaching and tests only ----------------------------------------------------------


def dealer_triples(dealer_seed: bytes, party: Party, n: int, bits: int = 64) -> Triple:
    """DEALER MODE (not secure in deployment): the party's shares of n triples drawn by a
    trusted dealer from ``dealer_seed``, which both parties would have to trust. With
    ``bits = 1`` these are AND triples (Z_2: addition is XOR, product is AND), as 0/1 values.

    Implements spec §10.5.3 `dealer_triples` (spec/10-ot.md#dealer_triples).
    """
    ring = Ring(bits)
    prg = Prg(dealer_seed, dst("ot.dealer", "beaver"))
    a, b = prg.next_ring(n, bits), prg.next_ring(n, bits)
    c = ring.mul(a, b)
    masks = [prg.next_ring(n, bits) for _ in range(3)]
    if party == "client":
        return masks[0], masks[1], masks[2]
    return ring.sub(a, masks[0]), ring.sub(b, masks[1]), ring.sub(c, masks[2])
