"""Multiplication triples from the pool's random COTs, and the labelled dealer mode (spec/10-ot.md §10.6).

Both generators run in the channel phase ``offline``. A triple's ``a`` share is the party's
random receiver bits of its COTs, so no derandomisation is sent: AND triples cost no message at
all, arithmetic triples one correction of width l - j per bit j.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec, Ring, RingVec, packed_decode, packed_encode
from secmoe.errors import Party, SpecError
from secmoe.ot.flavours import low_bits
from secmoe.ot.pool import take_both
from secmoe.ot.tccr import tccr_hash, tweaks
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext

Triple = tuple[RingVec, RingVec, RingVec]
BitTriple = tuple[BitVec, BitVec, BitVec]


def gilboa_widths(n: int, bits: int) -> NDArray[np.int64]:
    """Correction widths of n Gilboa products over Z_2^l: l - j for bit j, element-major."""
    return np.tile(np.arange(bits, 0, -1, dtype=np.int64), n)


def _mask(w: NDArray[np.int64]) -> NDArray[np.uint64]:
    return np.where(
        w >= 64, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << w.astype(np.uint64)) - np.uint64(1)
    ).astype(np.uint64)


def beaver_triples(ctx: PartyContext, n: int, bits: int = 64) -> Triple:
    """This party's shares (a, b, c) of n triples over Z_2^l with c = a b, by Gilboa
    multiplication on random COTs.

    Implements spec §10.6.1 `beaver_triples` (spec/10-ot.md#beaver_triples).
    """
    if n < 1:
        raise SpecError("need at least one triple")
    ring = Ring(bits)
    m = n * bits
    widths = gilboa_widths(n, bits)
    mask = _mask(widths)
    weights = np.tile(np.uint64(1) << np.arange(bits, dtype=np.uint64), n)
    with ctx.channel.phase("offline"):
        # Step 1: n l COTs in each direction; my a is my receiver bits, bit j of a_i at i l + j.
        mine, theirs = take_both(ctx, m, m)
        r = theirs.r.astype(np.uint64).reshape(n, bits)
        a = ring.reduce((r << np.arange(bits, dtype=np.uint64)).sum(axis=1, dtype=np.uint64))
        # Step 2: my b from the PRG.
        b = ctx.prg("ot.beaver", "b").next_ring(n, bits)
        # Step 3 (sender): x0 = low_{l-j}(H((p,0), q)), k1 = low_{l-j}(H((p,0), q ^ Delta)),
        # y = x0 + b - k1 mod 2^(l-j), all corrections in one packed message.
        tw = tweaks(mine.index)
        x0 = low_bits(tccr_hash(tw, mine.q), widths)
        k1 = low_bits(tccr_hash(tw, mine.q ^ mine.delta), widths)
        y = (x0 + np.repeat(b, bits) - k1) & mask
        ctx.channel.send("ot/beaver/y", packed_encode(y, widths))
        # Step 4 (receiver): k = low_{l-j}(H((p,0), t)), out = k + r y.
        k = low_bits(tccr_hash(tweaks(theirs.index), theirs.t), widths)
        data = ctx.channel.recv("ot/beaver/y", (int(widths.sum()) + 7) // 8)
        y_in = packed_decode(data, widths, m, label="ot/beaver/y", party=ctx.party)
        got = (k + theirs.r.astype(np.uint64) * y_in) & mask
        # Step 5: cross share sum_j 2^j (out_ij - x0_ij); c = a b + cross.
        terms = ((got - x0) * weights).reshape(n, bits).sum(axis=1, dtype=np.uint64)
        return a, b, ring.add(ring.mul(a, b), ring.reduce(terms))


def and_triples(ctx: PartyContext, n: int) -> BitTriple:
    """This party's shares (a, b, c) of n Boolean triples with c = a AND b (XOR sharing), from
    two random COTs per triple and no message.

    Implements spec §10.6.2 `and_triples` (spec/10-ot.md#and_triples).
    """
    if n < 1:
        raise SpecError("need at least one triple")
    with ctx.channel.phase("offline"):
        mine, theirs = take_both(ctx, n, n)
        # As sender: m0 = lsb H((p,0), q), m1 = lsb H((p,0), q ^ Delta); b = m0 ^ m1.
        tw = tweaks(mine.index)
        m0 = tccr_hash(tw, mine.q)[:, 0] & 1
        m1 = tccr_hash(tw, mine.q ^ mine.delta)[:, 0] & 1
        # As receiver: a = r, m_r = lsb H((p,0), t); m0 ^ m_r = r (m0 ^ m1) on each side.
        a = theirs.r.copy()
        mr = tccr_hash(tweaks(theirs.index), theirs.t)[:, 0] & 1
        b = (m0 ^ m1).astype(np.uint8)
        return a, b, ((a & b) ^ m0 ^ mr).astype(np.uint8)


# --- dealer mode: teaching and tests only ----------------------------------------------------------


def dealer_triples(dealer_seed: bytes, party: Party, n: int, bits: int = 64) -> Triple:
    """DEALER MODE (not secure in deployment): the party's shares of n triples drawn by a
    trusted dealer from ``dealer_seed``, which both parties would have to trust. With
    ``bits = 1`` these are AND triples (Z_2: addition is XOR, product is AND), as 0/1 values.

    Implements spec §10.6.3 `dealer_triples` (spec/10-ot.md#dealer_triples).
    """
    ring = Ring(bits)
    prg = Prg(dealer_seed, dst("ot.dealer", "beaver"))
    a, b = prg.next_ring(n, bits), prg.next_ring(n, bits)
    c = ring.mul(a, b)
    masks = [prg.next_ring(n, bits) for _ in range(3)]
    if party == "client":
        return masks[0], masks[1], masks[2]
    return ring.sub(a, masks[0]), ring.sub(b, masks[1]), ring.sub(c, masks[2])
