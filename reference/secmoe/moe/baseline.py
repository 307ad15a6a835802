"""Baselines for the secure MoE layer (spec/41-moe-baselines.md).

``moe_compute_then_select`` is what compute-then-select frameworks (Iron, BumbleBee) pay: every
expert on every token, then the outputs multiplexed with the shared one-hot. ``moe_reveal_routing``
is an INSECURE cost floor: it opens every token's routing to the server and evaluates only the
selected experts. Both equal ``moe_fixed`` bit for bit, like ``moe``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.he import packing
from secmoe.he.matmul import he_matmul, he_setup
from secmoe.he.params import preset
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import FixedWeights, expert_tables
from secmoe.moe.cost import gate_cost, gate_up_cost, route_cost, shared_ffn_cost
from secmoe.moe.layer import MoeShares, check_inputs, hidden, route, shared_ffn, softmax_terms
from secmoe.moe.select import clock_selection
from secmoe.protocols.b2a import mux
from secmoe.protocols.cost import (
    Pattern,
    exchange,
    mul_cost,
    mux_cost,
    piecewise_cost,
    ring_bytes,
    seq,
    trunc_cost,
)
from secmoe.protocols.linear import (
    DEFAULT_HE,
    WEIGHT_BITS,
    he_matmul_cost,
    he_setup_cost,
    matmul,
    matmul_cost,
)
from secmoe.protocols.mul import mul
from secmoe.protocols.softmax import (
    softmax,
)
from secmoe.protocols.topk import topk, topk_cost
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext

ROUTE_LABEL = "moe/insecure/route"


def _first_stack(config: MoEConfig, fw: FixedWeights, experts: Sequence[int]) -> RingVec:
    """W1 (then V, gated kinds) of the given experts stacked along the output axis:
    (stacks * len(experts) * d_ff, d_model), in the order stack, expert, hidden unit."""
    parts = [np.asarray(fw.w1)[list(experts)]]
    if config.gated:
        assert fw.v is not None
        parts.append(np.asarray(fw.v)[list(experts)])
    return np.concatenate(parts).reshape(-1, config.d_model)


def _products(
    ctx: PartyContext, inputs: list[RingVec], weights: list[RingVec] | None, d_out: int
) -> list[RingVec]:
    """Shares of trunc(X_i W_i^T) per pair: ``matmul``'s step 1 (``he_matmul``) for each pair,
    in order, then its step 2 (``trunc``) once over all the products."""
    p = preset(DEFAULT_HE)
    ring = ctx.ring
    if weights is not None and len(weights) != len(inputs):
        raise SpecError("one weight matrix per input is needed")
    he_setup(ctx, p)
    raw = []
    with ctx.channel.phase("online"):
        for i, x in enumerate(inputs):
            signed = None
            if weights is not None:
                w = ring.check(np.asarray(weights[i]), "w")
                if w.shape != (d_out, x.shape[1]):
                    raise SpecError(f"w must have shape ({d_out}, {x.shape[1]}), got {w.shape}")
                signed = ring.to_signed(w)
            shape = packing.matmul_shape(p, x.shape[0], x.shape[1], d_out)
            raw.append(he_matmul(ctx, p, shape, x, signed, WEIGHT_BITS))
    flat = trunc(ctx, np.concatenate([r.reshape(-1) for r in raw]))
    out, pos = [], 0
    for r in raw:
        out.append(flat[pos : pos + r.size].reshape(r.shape))
        pos += r.size
    return out


def _combine(
    ctx: PartyContext,
    config: MoEConfig,
    xs: RingVec,
    fw: FixedWeights | None,
    gates: RingVec,
    out: RingVec,
) -> RingVec:
    """y_t = sum_s trunc(g_{t,s} out_{t,s}), then the shared experts (as ``moe``'s steps 9-10)."""
    ring = ctx.ring
    tokens, k = gates.shape
    spread = np.repeat(gates.reshape(-1, 1), config.d_model, axis=1)
    scaled = trunc(ctx, mul(ctx, spread, out)).reshape(tokens, k, config.d_model)
    y = ring.reduce(scaled.sum(axis=1, dtype=np.uint64))
    for j in range(config.n_shared_experts):
        y = ring.add(y, shared_ffn(ctx, config, xs, fw, j))
    return y


def moe_compute_then_select(
    ctx: PartyContext, config: MoEConfig, x: RingVec, weights: FixedWeights | None
) -> MoeShares:
    """Shares of ``moe_fixed(config, weights, x)``, every expert evaluated on every token.

    Implements spec §41.1.1 `moe_compute_then_select` (spec/41-moe-baselines.md#moe_compute_then_select).
    The server learns neither x nor the routing; the cost grows linearly with the experts.
    """
    fw = weights if ctx.party == "server" else None
    xs = check_inputs(config, ctx, x, fw, "moe_compute_then_select")
    ring = ctx.ring
    tokens, k, n_exp, d_ff = xs.shape[0], config.top_k, config.n_experts, config.d_ff
    rows = tokens * k
    ctx.say(f"moe_compute_then_select: {tokens} token(s), {n_exp} experts, top-{k}")
    # Steps 1-4: the router, top-k with each slot's XOR one-hot and the gates, exactly as moe.
    routing = route(ctx, config, xs, fw)
    tk, gates = routing.topk, routing.gates
    assert tk.onehot is not None
    # Step 5: W1 x (and V x) of every expert in one matmul (all experts share the input).
    ctx.say("moe_compute_then_select: first products of every expert")
    stacks = 2 if config.gated else 1
    first_w = None if fw is None else _first_stack(config, fw, range(n_exp))
    first = matmul(ctx, xs, first_w, stacks * n_exp * d_ff).reshape(tokens, stacks, n_exp, d_ff)
    # Step 6: the activation on every expert's hidden layer, one piecewise; the gated product.
    ctx.say("moe_compute_then_select: activation of every expert")
    u = first[:, 0]
    g = first[:, 1] if config.gated else None
    h = hidden(ctx, config, u, g)  # (T, E, d_ff)
    # Step 7: out_e = trunc(h_e W2_e^T) for every expert, one truncation for all.
    ctx.say("moe_compute_then_select: second products of every expert")
    hs = [np.ascontiguousarray(h[:, e]) for e in range(n_exp)]
    w2 = None if fw is None else [np.asarray(fw.w2)[e] for e in range(n_exp)]
    outs = np.stack(_products(ctx, hs, w2, config.d_model), axis=1)  # (T, E, d_model)
    # Step 8: multiplex every expert's output with the slot's one-hot bit (one mux), sum over e.
    ctx.say("moe_compute_then_select: multiplexing")
    t0 = time.perf_counter()
    values = np.broadcast_to(outs[:, None], (tokens, k, n_exp, config.d_model))
    bits = np.broadcast_to(tk.onehot[..., None], values.shape)
    picked = mux(ctx, np.ascontiguousarray(bits), np.ascontiguousarray(values))
    out = ring.reduce(picked.sum(axis=2, dtype=np.uint64)).reshape(rows, config.d_model)
    clock_selection(ctx, t0)
    # Steps 9-10: the gates and the shared experts.
    y = _combine(ctx, config, xs, fw, gates, out)
    return MoeShares(y, tk.indices, gates)


def _open_routes(ctx: PartyContext, config: MoEConfig, indices: RingVec) -> list[int]:
    """Both parties open the (T, k) index shares: the routing becomes public (INSECURE)."""
    ring = ctx.ring
    mine = indices.reshape(-1)
    with ctx.channel.phase("online"):
        ctx.channel.send_ring(ROUTE_LABEL, ring, mine)
        theirs = ctx.channel.recv_ring(ROUTE_LABEL, ring, mine.size)
    routes = ring.to_signed(ring.add(mine, theirs))
    if np.any(routes < 0) or np.any(routes >= config.n_experts):
        raise SpecError("the opened routing holds an index outside the experts")
    return [int(e) for e in routes]


def moe_reveal_routing(
    ctx: PartyContext, config: MoEConfig, x: RingVec, weights: FixedWeights | None
) -> MoeShares:
    """INSECURE baseline: shares of ``moe_fixed``, but every token's routing is opened to the
    server, which then evaluates only the selected experts (a cost floor, not a protocol to use).

    Implements spec §41.2.1 `moe_reveal_routing` (spec/41-moe-baselines.md#moe_reveal_routing).
    """
    fw = weights if ctx.party == "server" else None
    xs = check_inputs(config, ctx, x, fw, "moe_reveal_routing")
    tokens, k, n_exp, d_ff = xs.shape[0], config.top_k, config.n_experts, config.d_ff
    rows = tokens * k
    ctx.say(f"moe_reveal_routing (INSECURE): {tokens} token(s), {n_exp} experts, top-{k}")
    # Step 1: router logits.
    logits = matmul(ctx, xs, None if fw is None else np.ascontiguousarray(fw.w_gate.T), n_exp)
    # Step 2: top-k (no one-hot: the routing is about to be public).
    tk = topk(ctx, logits, k)
    # Step 3: INSECURE: both parties open the selected indices.
    routes = _open_routes(ctx, config, tk.indices)
    # Step 4: the gates as ``route`` computes them, the numerators picked locally (public
    # indices) instead of by mux.
    if config.gate_norm == "softmax_topk":
        gates = softmax(ctx, tk.values)
    else:
        e, r = softmax_terms(ctx, logits, tk.values[:, 0])
        chosen = e[np.arange(rows) // k, routes].reshape(tokens, k)
        gates = trunc(ctx, mul(ctx, chosen, np.repeat(r[:, None], k, axis=1)))
    # Step 5: rows grouped by expert, in increasing expert order; rows in increasing order.
    t0 = time.perf_counter()
    used = sorted(set(routes))
    groups = [[r for r in range(rows) if routes[r] == e] for e in used]
    clock_selection(ctx, t0)
    # Step 6: per used expert, W1 x (and V x) of its rows' tokens in one product.
    stacks = 2 if config.gated else 1
    inputs = [xs[[r // k for r in grp]] for grp in groups]
    w_first = None if fw is None else [_first_stack(config, fw, [e]) for e in used]
    first = _products(ctx, inputs, w_first, stacks * d_ff)
    pre = np.zeros((rows, stacks, d_ff), dtype=np.uint64)
    for grp, prod in zip(groups, first, strict=True):
        pre[grp] = prod.reshape(len(grp), stacks, d_ff)
    # Step 7: the activation and the gated product on every row at once.
    h = hidden(ctx, config, pre[:, 0], pre[:, 1] if config.gated else None)
    # Step 8: per used expert, W2 h of its rows.
    w2 = None if fw is None else [np.asarray(fw.w2)[e] for e in used]
    second = _products(ctx, [h[grp] for grp in groups], w2, config.d_model)
    out = np.zeros((rows, config.d_model), dtype=np.uint64)
    for grp, prod in zip(groups, second, strict=True):
        out[grp] = prod
    # Steps 9-10: the gates and the shared experts.
    y = _combine(ctx, config, xs, fw, gates, out)
    return MoeShares(y, tk.indices, gates)


# --- cost (spec §41.3), in the message patterns of secmoe.protocols.cost -------------------------


def _hidden_cost(config: MoEConfig, n: int) -> Pattern:
    """``hidden`` on ``n`` elements: the activation, then ``gate_up`` for gated kinds."""
    l, f = config.ring_bits, config.frac_bits
    act = piecewise_cost(n, expert_tables(config)[0], l, f)
    return seq(act, gate_up_cost(config, n)) if config.gated else act


def _products_cost(shapes: Sequence[tuple[int, int, int]], bits: int, frac: int) -> Pattern:
    """``_products``: one ``he_matmul`` per (tokens, d_in, d_out), then one truncation."""
    total = sum(t * d_out for t, _, d_out in shapes)
    return seq(seq(he_matmul_cost(*s) for s in shapes), trunc_cost(total, bits, frac))


def _combine_cost(config: MoEConfig, tokens: int) -> Pattern:
    l, f, n = config.ring_bits, config.frac_bits, tokens * config.top_k * config.d_model
    shared = [shared_ffn_cost(config, tokens) for _ in range(config.n_shared_experts)]
    return seq(mul_cost(n, l), trunc_cost(n, l, f), seq(shared))


def moe_compute_then_select_cost(config: MoEConfig, tokens: int, fresh_he: bool = True) -> Pattern:
    """``moe_compute_then_select`` on ``tokens`` tokens (warm OT sessions; the he8192 public
    key sent first when ``fresh_he``)."""
    config.require_plain("moe_compute_then_select_cost", baseline=True)
    l, f = config.ring_bits, config.frac_bits
    d, d_ff, e, k = config.d_model, config.d_ff, config.n_experts, config.top_k
    rows, stacks = tokens * k, 2 if config.gated else 1
    parts = [he_setup_cost()] if fresh_he else []
    parts += [
        route_cost(config, tokens),
        matmul_cost(tokens, d, stacks * e * d_ff, l, f),
        _hidden_cost(config, tokens * e * d_ff),
        _products_cost([(tokens, d_ff, d)] * e, l, f),
        mux_cost(rows * e * d, l),
        _combine_cost(config, tokens),
    ]
    return seq(parts)


def moe_reveal_routing_cost(
    config: MoEConfig, tokens: int, experts_used: Sequence[int], fresh_he: bool = True
) -> Pattern:
    """``moe_reveal_routing`` (INSECURE) on ``tokens`` tokens whose routing sends
    ``experts_used[i]`` rows to the i-th used expert (in increasing expert order; only the
    counts matter)."""
    config.require_plain("moe_reveal_routing_cost", baseline=True)
    l, f = config.ring_bits, config.frac_bits
    d, d_ff, e, k = config.d_model, config.d_ff, config.n_experts, config.top_k
    rows, stacks = tokens * k, 2 if config.gated else 1
    counts = list(experts_used)
    if not counts or any(c < 1 for c in counts) or len(counts) > e or sum(counts) != rows:
        raise SpecError(f"experts_used must be at most {e} positive row counts summing to {rows}")
    parts = [he_setup_cost()] if fresh_he else []
    parts += [
        matmul_cost(tokens, d, e, l, f),
        topk_cost(tokens, e, k, l),
        exchange(rows * ring_bytes(l), rows * ring_bytes(l), "online"),
        gate_cost(config, tokens, picked_by_mux=False),
        _products_cost([(c, d, stacks * d_ff) for c in counts], l, f),
        _hidden_cost(config, rows * d_ff),
        _products_cost([(c, d_ff, d) for c in counts], l, f),
        _combine_cost(config, tokens),
    ]
    return seq(parts)
