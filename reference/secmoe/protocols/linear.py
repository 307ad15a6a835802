"""Matrix products on shares under the client's HE key (spec/31-linear.md).

``matmul`` multiplies shared tokens by the server's plaintext weights; ``matmul_ss`` multiplies
two shared matrices (attention's Q K^T and A V). Both end with the exact truncation of §30.4.
"""

from __future__ import annotations

import numpy as np

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.he import packing
from secmoe.he.matmul import he_matmul, he_matmul_bytes, he_setup, he_setup_messages
from secmoe.he.params import HeParams, preset
from secmoe.protocols.cost import Pattern, send, seq, trunc_cost
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext

DEFAULT_HE = "he8192"  # ct x pt products need no more (spec §20.1)
WEIGHT_BITS = 20  # default public bound |W_ij| < 2^20: |w| < 4 at f = 18


def _params(params: HeParams | None) -> HeParams:
    return params if params is not None else preset(DEFAULT_HE)


def _tokens(ctx: PartyContext, x: RingVec, d_in: int | None = None) -> RingVec:
    xs = ctx.ring.check(np.asarray(x), "x")
    if xs.ndim != 2 or xs.shape[0] < 1 or xs.shape[1] < 1:
        raise SpecError(f"x must be a (tokens, d_in) matrix, got shape {xs.shape}")
    if d_in is not None and xs.shape[1] != d_in:
        raise SpecError(f"x has {xs.shape[1]} columns, the weights {d_in}")
    return xs


def matmul(
    ctx: PartyContext,
    x: RingVec,
    w: RingVec | None,
    d_out: int,
    *,
    params: HeParams | None = None,
    w_max_bits: int = WEIGHT_BITS,
) -> RingVec:
    """Shares of trunc(X W^T) for shared tokens X (T, d_in) and the server's weights W.

    Implements spec §31.1.1 `matmul` (spec/31-linear.md#matmul).

    Args:
        x: this party's share of X, (T, d_in) ring elements.
        w: the server's encoded weights (d_out, d_in) in fixed point (ring elements); None on
            the client.
        d_out: the number of output columns (public).
        w_max_bits: the public bound |signed(W_ij)| < 2^w_max_bits the server's flooding uses.
    """
    p = _params(params)
    ring = ctx.ring
    if ctx.party == "server":
        if w is None:
            raise SpecError("the server needs its weights")
        wr = ring.check(np.asarray(w), "w")
        if wr.ndim != 2 or wr.shape[0] != d_out:
            raise SpecError(f"w must have shape ({d_out}, d_in), got {wr.shape}")
        xs = _tokens(ctx, x, wr.shape[1])
        weights = ring.to_signed(wr)
    else:
        xs = _tokens(ctx, x)
        weights = None
    shape = packing.matmul_shape(p, xs.shape[0], xs.shape[1], d_out)
    # Step 1: the product under HE (spec §20.8.2), not yet truncated.
    he_setup(ctx, p)
    with ctx.channel.phase("online"):
        prod = he_matmul(ctx, p, shape, xs, weights, w_max_bits)
    # Step 2: one exact truncation per output element, as the fixed-point model does.
    return trunc(ctx, prod)


def matmul_ss(
    ctx: PartyContext, x: RingVec, y: RingVec, *, params: HeParams | None = None
) -> RingVec:
    """Shares of trunc(X Y) for shared X (a, b) and shared Y (b, c).

    Implements spec §31.2.1 `matmul_ss` (spec/31-linear.md#matmul_ss).
    """
    p = _params(params)
    ring = ctx.ring
    xs, ys = _tokens(ctx, x), ring.check(np.asarray(y), "y")
    if ys.ndim != 2 or ys.shape[0] != xs.shape[1]:
        raise SpecError(f"cannot multiply {xs.shape} by {ys.shape}")
    a, b = xs.shape
    c = ys.shape[1]
    client = ctx.party == "client"
    zero_x, zero_yt = np.zeros_like(xs), np.zeros((c, b), dtype=np.uint64)
    he_setup(ctx, p)
    with ctx.channel.phase("online"):
        # Step 1: X_C Y_S, the client's X_C encrypted, the server's Y_S (as signed integers) the
        # plaintext multiplier; every signed 64-bit value is a valid multiplier (w_max_bits = 64).
        first = he_matmul(
            ctx,
            p,
            packing.matmul_shape(p, a, b, c),
            xs if client else zero_x,
            None if client else ring.to_signed(np.ascontiguousarray(ys.T)),
            64,
        )
        # Step 2: X_S Y_C = (Y_C^T X_S^T)^T, the client's Y_C^T encrypted, the server's X_S.
        second = he_matmul(
            ctx,
            p,
            packing.matmul_shape(p, c, b, a),
            np.ascontiguousarray(ys.T) if client else zero_yt,
            None if client else ring.to_signed(xs),
            64,
        )
    # Step 3: the local term X_P Y_P plus the shares of both cross terms.
    local = ring.matmul(xs, ys)
    total = ring.add(ring.add(local, first), np.ascontiguousarray(second.T))
    # Step 4: one exact truncation per output element.
    return trunc(ctx, total)


# --- cost (spec §31.3) ------------------------------------------------------------------------------


def he_setup_cost(params: HeParams | None = None) -> Pattern:
    """``he_setup`` (§20.8.1), once per session, offline: the client's public key
    ``seed || b`` and the Galois keys of response packing (§20.13)."""
    return seq(send("client", n, "offline") for n in he_setup_messages(_params(params)))


def he_matmul_cost(
    tokens: int,
    d_in: int,
    d_out: int,
    params: HeParams | None = None,
    w_max_bits: int = WEIGHT_BITS,
) -> Pattern:
    """``he_matmul`` (§20.8.2) after ``he_setup``: seeded input blocks up, packed results down."""
    up, down = he_matmul_bytes(_params(params), tokens, d_in, d_out, w_max_bits)
    return seq(send("client", up, "online"), send("server", down, "online"))


def matmul_cost(
    tokens: int, d_in: int, d_out: int, bits: int, frac: int, params: HeParams | None = None
) -> Pattern:
    """``matmul`` (§31.1.1) in a session whose HE keys are set up."""
    return seq(he_matmul_cost(tokens, d_in, d_out, params), trunc_cost(tokens * d_out, bits, frac))


def matmul_ss_cost(
    a: int, b: int, c: int, bits: int, frac: int, params: HeParams | None = None
) -> Pattern:
    """``matmul_ss`` (§31.2.1) in a session whose HE keys are set up."""
    return seq(
        he_matmul_cost(a, b, c, params, 64),
        he_matmul_cost(c, b, a, params, 64),
        trunc_cost(a * c, bits, frac),
    )
