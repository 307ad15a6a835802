"""The secure MoE layer, SecMoE's Protocol 1 (spec/40-moe.md §40.3).

Selection phase: router logits, top-k, one-hot, B2A, the encrypted selectors; compute phase:
the selected experts' products under HE, the activation by Select-Then-Compute, the gated
product, the second product, the gates; then the shared experts with plaintext weights.
Every step runs on all (token, slot) rows at once, so the rounds do not grow with the tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import FixedWeights, append_column, expert_tables
from secmoe.moe.prepare import PreparedStack, expert_stacks, lookup
from secmoe.moe.routing import (
    add_server_vector,
    family_gates,
    group_mask,
    grouped,
    keyed,
    pick,
    scale_gates,
    scores,
)
from secmoe.moe.select import I64, expert_matmul, select_experts
from secmoe.ot.pool import ot_setup
from secmoe.protocols.b2a import b2a
from secmoe.protocols.linear import matmul
from secmoe.protocols.mul import mul
from secmoe.protocols.piecewise import piecewise, sigmoid
from secmoe.protocols.softmax import exp, reciprocal
from secmoe.protocols.topk import TopK, topk
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext


@dataclass(frozen=True)
class MoeShares:
    """A party's shares of the layer's output and of its routing (nothing is revealed)."""

    y: RingVec  # (T, d_model)
    experts: RingVec  # (T, k) arithmetic shares of the selected indices, best first
    gates: RingVec  # (T, k) the gates in fixed point


def check_inputs(
    config: MoEConfig,
    ctx: PartyContext,
    x: RingVec,
    fw: FixedWeights | None,
    baseline: str | None = None,
) -> RingVec:
    """The tokens as a (T, d_model) ring matrix; the session must use the config's ring and the
    server must hold the weights; a baseline (spec §41, named by ``baseline``) runs the plain
    configurations only (``SpecError`` otherwise)."""
    if baseline is None:
        config.require_plain("the secure MoE layer")
    else:
        config.require_plain(baseline, baseline=True)
    if ctx.fxp != config.fxp:
        raise SpecError("the session's fixed-point parameters differ from the config's")
    xs = ctx.ring.check(np.asarray(x), "x")
    if xs.ndim != 2 or xs.shape[0] < 1 or xs.shape[1] != config.d_model:
        raise SpecError(f"x must have shape (tokens >= 1, {config.d_model}), got {xs.shape}")
    if ctx.party == "server" and fw is None:
        raise SpecError("the server needs the layer's encoded weights")
    return xs


@dataclass(frozen=True)
class Routing:
    """A party's shares of the router's result: nothing of it is revealed."""

    logits: RingVec  # (T, E)
    topk: TopK  # values (T, k), indices (T, k), XOR one-hot (T, k, E)
    gates: RingVec  # (T, k), fixed point
    shared_logit: RingVec | None = None  # (T,) trunc(x . shared_gate), with shared_gate


def softmax_terms(ctx: PartyContext, logits: RingVec, top: RingVec) -> tuple[RingVec, RingVec]:
    """Shares of ``softmax_fixed``'s numerators e = exp(z - max) (T, E) and of r = 1 / sum e
    (T,), given shares of each row's maximum ``top`` (spec §40.3.2 step 3)."""
    ring = ctx.ring
    e = exp(ctx, ring.sub(logits, top[:, None]))
    return e, reciprocal(ctx, ring.reduce(e.sum(axis=1, dtype=np.uint64)), logits.shape[1])


def route(ctx: PartyContext, config: MoEConfig, x: RingVec, fw: FixedWeights | None) -> Routing:
    """Shares of ``route_fixed`` (spec §6.3.5): logits, top-k with each slot's one-hot, gates.

    Implements spec §40.3.2 `route` (spec/40-moe.md#route).
    """
    k, n_exp = config.top_k, config.n_experts
    # Step 1: router logits z = trunc(x w_gate), the router as a plaintext matrix (E x d_model);
    # with shared_gate its vector is one more row, whose output (trunc(x . shared_gate)) is
    # kept apart; with router_bias the server adds enc(b_gate) to its share.
    rows = n_exp + 1 if config.shared_gate else n_exp
    w_gate = None if fw is None else router_rows(config, fw)
    both = matmul(ctx, x, w_gate, rows)
    logits = np.ascontiguousarray(both[:, :n_exp])
    shared = np.ascontiguousarray(both[:, n_exp]) if config.shared_gate else None
    if config.router_bias:
        logits = add_server_vector(ctx, fw, "b_gate", logits)
    # Step 2: the selection keys: the logits, or the scores (+ score bias, groups masked).
    keys, p = logits, None
    if keyed(config):
        p = scores(ctx, config, logits)
        keys = add_server_vector(ctx, fw, "score_bias", p) if config.score_bias else p
        if grouped(config):
            keys = group_mask(ctx, config, keys)
    # Step 3: top-k with each slot's one-hot (Pi_TopK, Pi_OneHot).
    ctx.say("route: top-k and one-hot")
    tk = topk(ctx, keys, k, onehot=True)
    assert tk.onehot is not None
    if config.gate_norm != "softmax" or p is not None:
        # Steps 4-5: the other gate kinds, then routed_scaling.
        gates = family_gates(ctx, config, logits, p, tk.values, tk.onehot)
        return Routing(logits, tk, gates, shared)
    # Step 4: e = exp(z - max), the maximum being top-k's first value; r = 1 / sum e;
    # g_{t,s} = trunc(e_{t,i_s} r_t), e_{t,i_s} picked by the one-hot.
    e, r = softmax_terms(ctx, logits, tk.values[:, 0])
    chosen = pick(ctx, tk.onehot, e)
    gates = trunc(ctx, mul(ctx, chosen, np.repeat(r[:, None], k, axis=1)))
    # Step 5: routed_scaling.
    return Routing(logits, tk, scale_gates(ctx, config, gates), shared)


def router_rows(config: MoEConfig, fw: FixedWeights) -> RingVec:
    """The router as the server multiplies it: ``w_gate^T`` (E x d_model), with ``shared_gate``
    its vector as row E (spec §40.3.2 step 1)."""
    rows = [np.asarray(fw.w_gate).T]
    if config.shared_gate:
        if fw.shared_gate is None:
            raise SpecError("shared_gate needs the shared_gate vector")
        rows.append(np.asarray(fw.shared_gate)[None, :])
    return np.ascontiguousarray(np.concatenate(rows))


def moe(
    ctx: PartyContext, config: MoEConfig, x: RingVec, weights: FixedWeights | None
) -> MoeShares:
    """Shares of ``moe_fixed(config, weights, x)`` for shared tokens x (T, d_model).

    Implements spec §40.3.1 `moe` (spec/40-moe.md#moe). The server passes the encoded weights,
    the client None; the server learns neither x nor the routing.
    """
    fw = weights if ctx.party == "server" else None
    xs = check_inputs(config, ctx, x, fw)
    ring, f = ctx.ring, ctx.fxp.frac_bits
    tokens, k, n_exp = xs.shape[0], config.top_k, config.n_experts
    rows = tokens * k
    row_input = [r // k for r in range(rows)]
    ctx.say(f"moe: {tokens} token(s), {n_exp} experts, top-{k}")
    # Step 1: both OT directions, if the session has none yet (so the cost is one fixed pattern).
    ot_setup(ctx)
    # Step 2: the router, top-k with one-hot, the gates (route).
    routing = route(ctx, config, xs, fw)
    tk, gates = routing.topk, routing.gates
    assert tk.onehot is not None
    # Step 3: the one-hot as arithmetic shares (Pi_B2A).
    hot = b2a(ctx, tk.onehot.reshape(-1)).reshape(rows, n_exp)
    # Step 4: the encrypted selectors, expanded by the server.
    ctx.say("moe: encrypted selection")
    sel = select_experts(ctx, hot)
    shift = f + sel.levels  # the selection carries 2^L (spec §20.10)
    # Step 5: u = trunc(W1_r x), g = trunc(V_r x) from one upload of x (ct x ct); with
    # gate_on_input x is first replaced by trunc(g x).
    ctx.say("moe: first expert products")
    n_first = 2 if config.gated else 1
    names = ("w1", "v")[:n_first]
    prepared = None if fw is None else lookup(fw)  # the server's preparation (spec §40.7)
    stacks: dict[str, I64 | PreparedStack] | None = None
    if prepared is not None:
        stacks = dict(prepared.stacks)
    elif fw is not None:
        stacks = {name: ring.to_signed(w) for name, w in expert_stacks(config, fw).items()}
    first = None if stacks is None else [stacks[name] for name in names]
    inputs, input_of = xs, row_input
    if config.gate_on_input:
        # Llama4 (top-1): each row's expert runs on trunc(g x) instead of x.
        spread_in = np.repeat(gates.reshape(rows, 1), config.d_model, axis=1)
        inputs, input_of = trunc(ctx, mul(ctx, spread_in, xs[row_input])), list(range(rows))
    inputs = biased(ctx, config, inputs)
    prods = expert_matmul(ctx, sel, inputs, input_of, first, config.d_ff, n_first)
    u = trunc(ctx, np.concatenate(prods).reshape(n_first, rows, config.d_ff), shift)
    # Step 6: the activation by Select-Then-Compute (Protocol 2), then the gated product.
    ctx.say("moe: activation")
    h = hidden(ctx, config, u[0], u[1] if config.gated else None)
    # Step 7: out = trunc(W2_r h): h is uploaded, the selection reused.
    ctx.say("moe: second expert product")
    second = None if stacks is None else [stacks["w2"]]
    hin = biased(ctx, config, h)
    out = trunc(
        ctx, expert_matmul(ctx, sel, hin, list(range(rows)), second, config.d_model)[0], shift
    )
    # Step 8: y_t = sum_s trunc(g_{t,s} out_{t,s}) (with gate_on_input, sum_s out_{t,s}).
    if config.gate_on_input:
        scaled = out.reshape(tokens, k, config.d_model)
    else:
        spread = np.repeat(gates.reshape(rows, 1), config.d_model, axis=1)
        scaled = trunc(ctx, mul(ctx, spread, out)).reshape(tokens, k, config.d_model)
    y = ring.reduce(scaled.sum(axis=1, dtype=np.uint64))
    # Step 9: the shared experts with plaintext weights, weight 1.
    shared = np.zeros_like(y)
    for j in range(config.n_shared_experts):
        ctx.say(f"moe: shared expert {j + 1}/{config.n_shared_experts}")
        shared = ring.add(shared, shared_ffn(ctx, config, xs, fw, j))
    # Step 10 (shared_gate): their sum times c = sigmoid(trunc(x . shared_gate)).
    if routing.shared_logit is not None:
        ctx.say("moe: shared gate")
        c = sigmoid(ctx, routing.shared_logit)
        shared = trunc(ctx, mul(ctx, np.repeat(c[:, None], config.d_model, axis=1), shared))
    return MoeShares(ring.add(y, shared), tk.indices, gates)


def biased(ctx: PartyContext, config: MoEConfig, a: RingVec) -> RingVec:
    """Shares of ``(a | enc(1))`` with ``expert_bias`` (the client holds the constant, §3), so
    that the bias column of the selected weights is added exactly; ``a`` otherwise."""
    if not config.expert_bias:
        return a
    return append_column(a, (1 << ctx.fxp.frac_bits) if ctx.party == "client" else 0)


def gate_up(ctx: PartyContext, config: MoEConfig, a: RingVec, g: RingVec) -> RingVec:
    """Shares of ``trunc(mul(a, c))`` with ``c = g``, or for ``gptoss`` ``c`` = the up half's
    table at ``g`` by ``piecewise`` (spec §6.3.4 step 3)."""
    up = expert_tables(config)[1]
    return trunc(ctx, mul(ctx, a, g if up is None else piecewise(ctx, up, g)))


def hidden(ctx: PartyContext, config: MoEConfig, u: RingVec, g: RingVec | None) -> RingVec:
    """Shares of ``hidden_fixed`` (spec §6.3.4 steps 2-3): the activation's table by
    ``piecewise``, then (gated kinds) ``gate_up`` with the second product."""
    a = piecewise(ctx, expert_tables(config)[0], u)
    return a if g is None else gate_up(ctx, config, a, g)


def shared_ffn(
    ctx: PartyContext, config: MoEConfig, x: RingVec, fw: FixedWeights | None, j: int
) -> RingVec:
    """Shares of ``ffn_fixed`` of shared expert j: plaintext weights, products by ``matmul``.

    Implements spec §40.3.3 `shared_ffn` (spec/40-moe.md#shared_ffn).
    """
    d_ff = config.shared_ff

    def weight(w: RingVec | None) -> RingVec | None:
        return None if fw is None or w is None else np.asarray(w)[j]

    # Step 1: u = trunc(x W1^T).
    u = matmul(ctx, x, weight(None if fw is None else fw.shared_w1), d_ff)
    h = piecewise(ctx, expert_tables(config)[0], u)
    # Step 2: the gated product with trunc(x V^T) for gated kinds (gate_up).
    if config.gated:
        g = matmul(ctx, x, weight(None if fw is None else fw.shared_v), d_ff)
        h = gate_up(ctx, config, h, g)
    # Step 3: out = trunc(h W2^T).
    return matmul(ctx, h, weight(None if fw is None else fw.shared_w2), config.d_model)
