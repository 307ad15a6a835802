"""Exact truncation of shared values (spec/30-protocols.md §30.4)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.protocols.b2a import b2a
from secmoe.protocols.compare import millionaire
from secmoe.protocols.mul import and_bits
from secmoe.session import PartyContext


def trunc(ctx: PartyContext, x: RingVec, s: int | None = None) -> RingVec:
    """Shares of floor(x / 2^s) (arithmetic shift, default s = f), exact for |x| < 2^(l-2).

    Implements spec §30.4.1 `trunc` (spec/30-protocols.md#trunc).
    """
    ring = ctx.ring
    s = ctx.fxp.frac_bits if s is None else s
    if not 1 <= s <= ring.bits - 2:
        raise SpecError(f"trunc needs 1 <= s <= l - 2, got s = {s}")
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    n = xs.size
    client = ctx.party == "client"
    bias = np.full(n, 1 << (ring.bits - 2), dtype=np.uint64)
    # Step 1: y = x + 2^(l-2), so that 0 <= y < 2^(l-1) and MSB(y) = 0.
    y = ring.add(xs, bias) if client else xs
    # Step 2: the carry out of the low s bits, c = [2^s - 1 - y_S' < y_C'].
    low = np.uint64((1 << s) - 1)
    mine = y & low
    carry = millionaire(ctx, mine if client else low - mine, s)
    # Step 3: the wrap of y_C + y_S past 2^l, w = MSB(y_C) OR MSB(y_S) (MSB(y) = 0).
    top = ring.msb(y)
    zeros = np.zeros(n, dtype=np.uint8)
    both = and_bits(ctx, top if client else zeros, zeros if client else top)
    wrap = top ^ both
    # Step 4: both bits as arithmetic shares in one conversion: c in Z_2^l, w in Z_2^s (w only
    # enters as w 2^(l-s), which depends on w mod 2^s alone).
    widths = np.concatenate([np.full(n, ring.bits), np.full(n, s)]).astype(np.int64)
    arith = b2a(ctx, np.concatenate([carry, wrap]), widths)
    c_a, w_a = arith[:n], arith[n:]
    # Step 5: (y_P >> s) + c - w 2^(l-s), minus the bias 2^(l-2-s) (client).
    shifted = y >> np.uint64(s)
    z = ring.sub(
        ring.add(shifted, c_a), ring.mul(w_a, np.full(n, 1 << (ring.bits - s), dtype=np.uint64))
    )
    if client:
        z = ring.sub(z, np.full(n, 1 << (ring.bits - 2 - s), dtype=np.uint64))
    return ring.reduce(z).reshape(np.asarray(x).shape)
