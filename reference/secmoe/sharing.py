"""Two-party additive and Boolean secret sharing (spec/03-sharing.md).

An arithmetic sharing of x in Z_{2^l} is a pair (x_c, x_s) with x_c + x_s = x mod 2^l; a
Boolean sharing of a bit vector b is (b_c, b_s) with b_c XOR b_s = b. The client holds x_c,
the server x_s. Public constants are added by the client only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from secmoe.encoding import BitVec, Ring, RingVec
from secmoe.errors import Party, SpecError
from secmoe.randomness import Prg
from secmoe.session import PartyContext

Recipient = Literal["client", "server", "both"]


# --- arithmetic sharing ---------------------------------------------------------------------------


def arith_split(x: RingVec, prg: Prg, ring: Ring) -> tuple[RingVec, RingVec]:
    """Split x into (owner's share, peer's share) = (x - r, r) with r = prg.next_ring(n, l).

    Implements spec §3.1.1 `arith_split` (spec/03-sharing.md#arith_split).
    """
    x = ring.check(np.asarray(x), "x")
    r = prg.next_ring(x.size, ring.bits).reshape(x.shape)
    return ring.sub(x, r), r


def arith_share(ctx: PartyContext, owner: Party, x: RingVec | None, n: int) -> RingVec:
    """Share the owner's vector of n ring elements; each party gets its share.

    Implements spec §3.2.1 `arith_share` (spec/03-sharing.md#arith_share).

    Args:
        ctx: the calling party's context.
        owner: the party that holds x.
        x: the owner's n-element vector; ``None`` for the other party.
        n: the number of elements (public).

    Returns:
        The caller's share (owner: x - r; peer: r).
    """
    # Step 1 (owner): r from the instance PRG; send r; keep x - r.
    if ctx.party == owner:
        if x is None or np.asarray(x).size != n:
            raise SpecError(f"arith_share: the owner must pass x with {n} elements")
        mine, theirs = arith_split(
            np.asarray(x).reshape(n), ctx.prg("sharing.arith_share", "mask"), ctx.ring
        )
        ctx.channel.send_ring("sharing/arith_share", ctx.ring, theirs)
        return mine
    # Step 2 (peer): receive r.
    if x is not None:
        raise SpecError("arith_share: only the owner passes x")
    return ctx.channel.recv_ring("sharing/arith_share", ctx.ring, n)


def arith_reconstruct(x_c: RingVec, x_s: RingVec, ring: Ring) -> RingVec:
    """x = x_c + x_s mod 2^l.

    Implements spec §3.1.2 `arith_reconstruct` (spec/03-sharing.md#arith_reconstruct).
    """
    return ring.add(x_c, x_s)


def arith_reveal(ctx: PartyContext, share: RingVec, to: Recipient) -> RingVec | None:
    """Open a shared vector to ``to``; returns x to each recipient and None to a non-recipient.

    Implements spec §3.2.2 `arith_reveal` (spec/03-sharing.md#arith_reveal). With ``to="both"``
    both parties send in the same round.
    """
    share = ctx.ring.check(np.asarray(share), "share")
    n = share.size
    label = "sharing/arith_reveal"
    sends = to == "both" or to != ctx.party
    receives = to in ("both", ctx.party)
    if sends:
        ctx.channel.send_ring(label, ctx.ring, share.reshape(n))
    if not receives:
        return None
    other = ctx.channel.recv_ring(label, ctx.ring, n).reshape(share.shape)
    return arith_reconstruct(share, other, ctx.ring)


def add_public(party: Party, share: RingVec, c: RingVec, ring: Ring) -> RingVec:
    """Share of x + c: the client adds the public c, the server keeps its share.

    Implements spec §3.3.1 `add_public` (spec/03-sharing.md#add_public).
    """
    return ring.add(share, c) if party == "client" else share


def mul_public(share: RingVec, c: RingVec, ring: Ring) -> RingVec:
    """Share of c * x for public c: both parties multiply.

    Implements spec §3.3.2 `mul_public` (spec/03-sharing.md#mul_public).
    """
    return ring.mul(share, c)


# --- Boolean sharing ------------------------------------------------------------------------------


def bool_split(b: BitVec, prg: Prg) -> tuple[BitVec, BitVec]:
    """Split bits into (owner's share, peer's share) = (b XOR r, r) with r = prg.next_bits(n).

    Implements spec §3.1.3 `bool_split` (spec/03-sharing.md#bool_split).
    """
    b = np.asarray(b, dtype=np.uint8)
    if np.any(b > 1):
        raise SpecError("bool_split: bits must be 0 or 1")
    r = prg.next_bits(b.size).reshape(b.shape)
    return b ^ r, r


def bool_share(ctx: PartyContext, owner: Party, b: BitVec | None, n: int) -> BitVec:
    """Share the owner's n bits: keep b XOR r, send r.

    Implements spec §3.2.3 `bool_share` (spec/03-sharing.md#bool_share).
    """
    if ctx.party == owner:
        if b is None or np.asarray(b).size != n:
            raise SpecError(f"bool_share: the owner must pass {n} bits")
        mine, theirs = bool_split(np.asarray(b).reshape(n), ctx.prg("sharing.bool_share", "mask"))
        ctx.channel.send_bits("sharing/bool_share", theirs)
        return mine
    if b is not None:
        raise SpecError("bool_share: only the owner passes b")
    return ctx.channel.recv_bits("sharing/bool_share", n)


def bool_reveal(ctx: PartyContext, share: BitVec, to: Recipient) -> BitVec | None:
    """Open shared bits to ``to``.

    Implements spec §3.2.4 `bool_reveal` (spec/03-sharing.md#bool_reveal).
    """
    share = np.asarray(share, dtype=np.uint8)
    n = share.size
    label = "sharing/bool_reveal"
    if to == "both" or to != ctx.party:
        ctx.channel.send_bits(label, share.reshape(n))
    if to not in ("both", ctx.party):
        return None
    return share ^ ctx.channel.recv_bits(label, n).reshape(share.shape)


def xor_public(party: Party, share: BitVec, c: BitVec) -> BitVec:
    """Share of b XOR c for public c: the client XORs.

    Implements spec §3.3.3 `xor_public` (spec/03-sharing.md#xor_public).
    """
    return share ^ np.asarray(c, dtype=np.uint8) if party == "client" else share


# --- a worked example ------------------------------------------------------------------------------


def share_add_reveal(ctx: PartyContext, mine: RingVec) -> RingVec | None:
    """Both parties share their n-element vectors, add the shares, and open the sum to the client.

    Implements spec §3.4.1 `share_add_reveal` (spec/03-sharing.md#share_add_reveal). It is the
    trivial protocol the TCP runner is demonstrated with: the server learns nothing, the client
    learns x + y (and so y, which is the function's output, not a leak of the protocol).
    """
    mine = ctx.ring.check(np.asarray(mine), "input")
    n = mine.size
    # The public bound |v| < 2^(l-2) on both inputs: the sum cannot wrap (spec §3.4.1).
    if np.any(np.abs(ctx.ring.to_signed(mine)) >= 1 << (ctx.ring.bits - 2)):
        raise SpecError(
            f"share_add_reveal: every input must be below 2^{ctx.ring.bits - 2} in magnitude "
            "(signed ring value) so that x + y cannot wrap"
        )
    # Step 1: the client shares x, then the server shares y.
    x = arith_share(ctx, "client", mine if ctx.party == "client" else None, n)
    y = arith_share(ctx, "server", mine if ctx.party == "server" else None, n)
    # Step 2: add locally; Step 3: open to the client.
    return arith_reveal(ctx, ctx.ring.add(x, y), "client")
