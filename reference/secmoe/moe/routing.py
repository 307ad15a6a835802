"""The routing families of today's checkpoints on shares (spec/40-moe.md §40.3.2-40.3.5): the
selection keys (scores, score bias, group-limited top-k), the gates of the selected experts
(sigmoid, sigmoid renormalised, routed scaling) and their costs. The routing stays hidden: every
step runs on shares, and which messages are sent depends only on the public configuration.
"""

from __future__ import annotations

import numpy as np

from secmoe.encoding import BitVec, RingVec, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import SIGMOID_NORM_SHIFT, FixedWeights
from secmoe.model.tables import SIGMOID
from secmoe.protocols.b2a import mux
from secmoe.protocols.compare import lt_public
from secmoe.protocols.cost import (
    Pattern,
    msb_cost,
    mul_cost,
    mux_cost,
    piecewise_cost,
    seq,
    trunc_cost,
)
from secmoe.protocols.mul import mul
from secmoe.protocols.piecewise import sigmoid
from secmoe.protocols.softmax import reciprocal, reciprocal_cost, softmax, softmax_cost
from secmoe.protocols.topk import maximum, maximum_cost, topk, topk_cost
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import add_public, mul_public


def keyed(config: MoEConfig) -> bool:
    """Whether top-k selects on the scores (score bias or groups) rather than on the logits."""
    return config.score_bias or config.n_groups > 1


def grouped(config: MoEConfig) -> bool:
    """Whether group-limited top-k masks some groups (all groups chosen masks nothing)."""
    return config.n_groups > 1 and config.topk_groups < config.n_groups


def _server_vector(ctx: PartyContext, fw: FixedWeights | None, name: str) -> RingVec | None:
    """The server's encoded per-expert vector ``name`` (None on the client)."""
    if ctx.party != "server" or fw is None:
        return None
    vec = getattr(fw, name)
    if vec is None:
        raise SpecError(f"the configuration needs the weights' {name}")
    return np.asarray(vec)


def add_server_vector(
    ctx: PartyContext, fw: FixedWeights | None, name: str, shares: RingVec
) -> RingVec:
    """Shares of shares + v for the server's per-expert vector v (router or score bias): the
    server adds it to its own share of every row; the client's share is unchanged."""
    vec = _server_vector(ctx, fw, name)
    if vec is None:
        return shares
    return ctx.ring.add(shares, np.broadcast_to(vec, shares.shape))


def pick(ctx: PartyContext, onehot: BitVec, values: RingVec) -> RingVec:
    """Shares of values_{t, i_s} (T, k) for the XOR one-hots (T, k, E) of the selected i_s:
    sum_e mux(onehot_{t,s,e}, values_{t,e}), one mux of T k E elements."""
    tokens, k, n_exp = onehot.shape
    spread = np.ascontiguousarray(np.broadcast_to(values[:, None, :], (tokens, k, n_exp)))
    picked = mux(ctx, onehot.reshape(-1), spread.reshape(-1)).reshape(tokens, k, n_exp)
    return ctx.ring.reduce(picked.sum(axis=2, dtype=np.uint64))


def scores(ctx: PartyContext, config: MoEConfig, logits: RingVec) -> RingVec:
    """Shares of the scores p (T, E): ``sigmoid`` (sigmoid kinds) or ``softmax`` of the logits."""
    return sigmoid(ctx, logits) if config.sigmoid_scoring else softmax(ctx, logits)


def group_mask(ctx: PartyContext, config: MoEConfig, keys: RingVec) -> RingVec:
    """Shares of the keys with every expert outside the ``topk_groups`` best groups set to 0.

    Implements spec §40.3.4 `group_mask` (spec/40-moe.md#group_mask).
    """
    ring = ctx.ring
    tokens, n_exp = keys.shape
    n_groups, size = config.n_groups, n_exp // config.n_groups
    rows = keys.reshape(tokens * n_groups, size)
    # Step 1: each group's key, the sum of its two largest keys or its largest.
    if config.group_score == "max":
        group_keys = maximum(ctx, rows)
    else:
        top = topk(ctx, rows, 2).values
        group_keys = ring.add(top[:, 0], top[:, 1])
    # Step 2: the best groups' one-hots; their XOR is the (disjoint) union, a bit per group.
    chosen = topk(ctx, group_keys.reshape(tokens, n_groups), config.topk_groups, onehot=True)
    assert chosen.onehot is not None
    keep = np.bitwise_xor.reduce(chosen.onehot, axis=1)
    # Step 3: keys_e times its group's bit, one mux.
    bits = np.ascontiguousarray(np.repeat(keep, size, axis=1))
    return mux(ctx, bits.reshape(-1), keys.reshape(-1)).reshape(tokens, n_exp)


def sigmoid_norm(ctx: PartyContext, q: RingVec) -> RingVec:
    """Shares of ``sigmoid_norm_fixed(q)``: q / sum(q) per row of the selected scores (T, k).

    Implements spec §40.3.5 `sigmoid_norm` (spec/40-moe.md#sigmoid_norm).
    """
    ring, f, c = ctx.ring, ctx.fxp.frac_bits, SIGMOID_NORM_SHIFT
    tokens, k = q.shape
    # Step 1: S = sum_s q_s (local), S' = S + mux([S < enc(2^-c)], enc(2^-c) - S).
    total = ring.reduce(q.sum(axis=1, dtype=np.uint64))
    floor = np.full(tokens, 1 << (f - c), dtype=np.uint64)
    below = lt_public(ctx, total, floor)
    clamped = ring.add(total, mux(ctx, below, add_public(ctx.party, ring.neg(total), floor, ring)))
    # Step 2: r = reciprocal(2^c S', k 2^c): the products by 2^c are local and exact.
    lift = np.full(tokens, 1 << c, dtype=np.uint64)
    r = reciprocal(ctx, mul_public(clamped, lift, ring), k << c)
    # Step 3: g = trunc(2^c q r).
    lifted = mul_public(q, np.full(q.shape, 1 << c, dtype=np.uint64), ring)
    return trunc(ctx, mul(ctx, lifted, np.repeat(r[:, None], k, axis=1)))


def family_gates(
    ctx: PartyContext,
    config: MoEConfig,
    logits: RingVec,
    p: RingVec | None,
    values: RingVec,
    onehot: BitVec,
) -> RingVec:
    """The gates of §40.3.2 steps 4-5 for every ``gate_norm`` except the plain ``softmax``
    (``route``'s own): ``p`` the scores where top-k selected on them, ``values`` top-k's."""
    if config.gate_norm == "softmax":
        assert p is not None  # the plain softmax gate is route's
        gates = pick(ctx, onehot, p)
    elif config.gate_norm == "softmax_topk":
        gates = softmax(ctx, values if p is None else pick(ctx, onehot, logits))
    else:
        gates = sigmoid(ctx, values) if p is None else pick(ctx, onehot, p)
        if config.gate_norm == "sigmoid_topk":
            gates = sigmoid_norm(ctx, gates)
    return scale_gates(ctx, config, gates)


def scale_gates(ctx: PartyContext, config: MoEConfig, gates: RingVec) -> RingVec:
    """trunc(g enc(routed_scaling)) when the scaling is not 1: a public factor, one truncation."""
    if config.routed_scaling == 1.0:
        return gates
    factor = np.full(gates.shape, fxp_encode(ctx.fxp, config.routed_scaling), dtype=np.uint64)
    return trunc(ctx, mul_public(gates, factor, ctx.ring))


# --- cost (spec §40.4), in the message patterns of secmoe.protocols.cost ------------------------


def keys_cost(config: MoEConfig, tokens: int) -> Pattern:
    """The scores and the group mask before top-k (nothing for the plain router)."""
    if not keyed(config):
        return Pattern()
    l, f, e = config.ring_bits, config.frac_bits, config.n_experts
    if config.sigmoid_scoring:
        parts = [piecewise_cost(tokens * e, SIGMOID, l, f)]
    else:
        parts = [softmax_cost(tokens, e, l, f)]
    if grouped(config):
        g, size = config.n_groups, e // config.n_groups
        if config.group_score == "max":
            parts.append(maximum_cost(tokens * g, size, l))
        else:
            parts.append(topk_cost(tokens * g, size, 2, l))
        parts.append(topk_cost(tokens, g, config.topk_groups, l, onehot=True))
        parts.append(mux_cost(tokens * e, l))
    return seq(parts)


def sigmoid_norm_cost(tokens: int, k: int, bits: int, frac: int) -> Pattern:
    """``sigmoid_norm`` of (tokens, k): the clamp's comparison and mux, the reciprocal, the
    product and its truncation."""
    n = tokens * k
    return seq(
        msb_cost(tokens, bits),
        mux_cost(tokens, bits),
        reciprocal_cost(tokens, k << SIGMOID_NORM_SHIFT, bits, frac),
        mul_cost(n, bits),
        trunc_cost(n, bits, frac),
    )


def family_gates_cost(config: MoEConfig, tokens: int) -> Pattern:
    """``family_gates``: as the code above, message for message."""
    l, f, e, k = config.ring_bits, config.frac_bits, config.n_experts, config.top_k
    n = tokens * k
    pick_cost = mux_cost(n * e, l)
    parts: list[Pattern] = []
    if config.gate_norm == "softmax":
        parts.append(pick_cost)
    elif config.gate_norm == "softmax_topk":
        parts += [pick_cost] if keyed(config) else []
        parts.append(softmax_cost(tokens, k, l, f))
    else:
        parts.append(pick_cost if keyed(config) else piecewise_cost(n, SIGMOID, l, f))
        if config.gate_norm == "sigmoid_topk":
            parts.append(sigmoid_norm_cost(tokens, k, l, f))
    if config.routed_scaling != 1.0:
        parts.append(trunc_cost(n, l, f))
    return seq(parts)
