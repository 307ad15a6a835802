"""The secure MoE layer's communication as a message pattern (spec/40-moe.md §40.4).

Each function mirrors the call order of its protocol exactly; composed with ``seq`` they give
bytes per phase and direction and, by the causal rule of spec §4.2, the rounds.
"""

from __future__ import annotations

from secmoe.he.galois import keys_needed
from secmoe.he.respack import pack_elements
from secmoe.he.serialize import ct_bytes, gk_bytes, poly_bytes
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import expert_tables
from secmoe.model.tables import SIGMOID
from secmoe.moe.routing import family_gates_cost, keyed, keys_cost
from secmoe.moe.select import expert_matmul_bytes, levels_for, pack_params, select_params
from secmoe.protocols.cost import (
    Pattern,
    b2a_cost,
    mul_cost,
    mux_cost,
    ot_setup_pattern,
    piecewise_cost,
    ring_bytes,
    send,
    seq,
    trunc_cost,
)
from secmoe.protocols.linear import he_setup_cost, matmul_cost
from secmoe.protocols.softmax import exp_cost, reciprocal_cost
from secmoe.protocols.topk import topk_cost


def select_setup_cost(experts: int, fresh_pack: bool = True) -> Pattern:
    """``select_setup`` in a fresh session: pk at he16384, the selector's Galois keys, then
    (once per session) the relinearisation key and the packing's Galois keys."""
    p = select_params()
    parts = [send("client", 32 + poly_bytes(p), "offline")]
    count = len(keys_needed(p, levels_for(experts)))
    if count:
        parts.append(send("client", count * gk_bytes(p), "offline"))
    if fresh_pack:
        small = pack_params()
        parts.append(send("client", gk_bytes(p), "offline"))
        parts.append(send("client", len(pack_elements(small)) * gk_bytes(small), "offline"))
    return seq(parts)


def select_experts_cost(rows: int) -> Pattern:
    """``select_experts``: one seeded ciphertext per row, client to server."""
    return send("client", rows * ct_bytes(select_params(), 1, seeded=True), "online")


def expert_matmul_cost(
    rows: int, inputs: int, d_in: int, d_out: int, stacks: int, experts: int
) -> Pattern:
    """``expert_matmul``: the inputs' seeded blocks up, the packed responses down."""
    up, down = expert_matmul_bytes(rows, inputs, d_in, d_out, stacks, experts)
    return seq(send("client", up, "online"), send("server", down, "online"))


def _activation_cost(config: MoEConfig, n: int) -> Pattern:
    table = expert_tables(config)[0]
    return piecewise_cost(n, table, config.ring_bits, config.frac_bits)


def gate_up_cost(config: MoEConfig, n: int) -> Pattern:
    """``gate_up`` on ``n`` elements: the up half's table (gptoss), ``mul`` and ``trunc``."""
    l, f = config.ring_bits, config.frac_bits
    up = expert_tables(config)[1]
    parts = [] if up is None else [piecewise_cost(n, up, l, f)]
    return seq(*parts, mul_cost(n, l), trunc_cost(n, l, f))


def shared_ffn_cost(config: MoEConfig, tokens: int) -> Pattern:
    """``shared_ffn`` of one shared expert (HE keys at he8192 already set up)."""
    l, f, d, d_ff = config.ring_bits, config.frac_bits, config.d_model, config.shared_ff
    parts = [matmul_cost(tokens, d, d_ff, l, f), _activation_cost(config, tokens * d_ff)]
    if config.gated:
        parts += [matmul_cost(tokens, d, d_ff, l, f), gate_up_cost(config, tokens * d_ff)]
    parts.append(matmul_cost(tokens, d_ff, d, l, f))
    return seq(parts)


def gate_cost(config: MoEConfig, tokens: int, picked_by_mux: bool = True) -> Pattern:
    """The gates of ``route`` (§40.3.2 steps 4-5); without ``picked_by_mux`` the numerators
    are picked locally (public routing, §41.2)."""
    l, f, e, k = config.ring_bits, config.frac_bits, config.n_experts, config.top_k
    if config.gate_norm != "softmax" or keyed(config):
        return family_gates_cost(config, tokens)
    pick = [mux_cost(tokens * k * e, l)] if picked_by_mux else []
    scaling = [trunc_cost(tokens * k, l, f)] if config.routed_scaling != 1.0 else []
    return seq(
        exp_cost(tokens * e, l, f),
        reciprocal_cost(tokens, e, l, f),
        *pick,
        mul_cost(tokens * k, l),
        trunc_cost(tokens * k, l, f),
        *scaling,
    )


def route_cost(config: MoEConfig, tokens: int) -> Pattern:
    """``route`` (§40.3.2): the router, the selection keys, top-k with one-hot, the gates."""
    l, f, e, k = config.ring_bits, config.frac_bits, config.n_experts, config.top_k
    rows = e + 1 if config.shared_gate else e  # shared_gate's vector is one more row
    return seq(
        matmul_cost(tokens, config.d_model, rows, l, f),
        keys_cost(config, tokens),
        topk_cost(tokens, e, k, l, onehot=True),
        gate_cost(config, tokens),
    )


Step = tuple[str, Pattern]


def moe_steps(
    config: MoEConfig, tokens: int, fresh_he: bool = True, fresh_ot: bool = False
) -> list[Step]:
    """``moe`` on ``tokens`` tokens as named steps in call order (spec §40.4, key ``steps`` of
    ``secmoe cost --json``); ``moe_cost`` is their sequential composition."""
    config.require_plain("the MoE cost formula")
    l, f = config.ring_bits, config.frac_bits
    d, d_ff, e, k = config.d_model, config.d_ff, config.n_experts, config.top_k
    rows = tokens * k
    shift = f + levels_for(e)
    stacks = 2 if config.gated else 1
    extra = 1 if config.expert_bias else 0  # the input's enc(1) entry (§40.3.1 steps 5, 7)
    steps: list[Step] = [("ot_setup", ot_setup_pattern())] if fresh_ot else []
    if fresh_he:
        steps.append(("he_setup", he_setup_cost()))
    steps += [("route", route_cost(config, tokens)), ("b2a", b2a_cost(rows * e, l))]
    if fresh_he:
        steps.append(("select_setup", select_setup_cost(e)))
    steps.append(("select_experts", select_experts_cost(rows)))
    if config.gate_on_input:
        steps.append(("gate_input", seq(mul_cost(rows * d, l), trunc_cost(rows * d, l, f))))
    steps += [
        ("expert_matmul_in", expert_matmul_cost(rows, tokens, d + extra, d_ff, stacks, e)),
        ("trunc_in", trunc_cost(stacks * rows * d_ff, l, shift)),
        ("activation", _activation_cost(config, rows * d_ff)),
    ]
    if config.gated:
        steps.append(("gating", gate_up_cost(config, rows * d_ff)))
    steps += [
        ("expert_matmul_out", expert_matmul_cost(rows, rows, d_ff + extra, d, 1, e)),
        ("trunc_out", trunc_cost(rows * d, l, shift)),
    ]
    if not config.gate_on_input:
        steps.append(("gate_product", seq(mul_cost(rows * d, l), trunc_cost(rows * d, l, f))))
    steps += [
        (f"shared_ffn_{j}", shared_ffn_cost(config, tokens)) for j in range(config.n_shared_experts)
    ]
    if config.shared_gate:
        n = tokens * d
        sig = piecewise_cost(tokens, SIGMOID, l, f)
        steps.append(("shared_gate", seq(sig, mul_cost(n, l), trunc_cost(n, l, f))))
    return steps


def moe_cost(
    config: MoEConfig, tokens: int, fresh_he: bool = True, fresh_ot: bool = False
) -> Pattern:
    """``moe`` on ``tokens`` tokens: OT set-up when ``fresh_ot``, HE keys when ``fresh_he``."""
    return seq(p for _, p in moe_steps(config, tokens, fresh_he, fresh_ot))


def demo_steps(config: MoEConfig, tokens: int) -> list[Step]:
    """``demo_client`` / ``demo_server`` (spec §40.5) in a fresh session as named steps: the
    token count and the client's shares, the layer with every set-up, the server's output."""
    w = ring_bytes(config.ring_bits)
    return [
        (
            "input",
            seq(send("client", 4, "input"), send("client", tokens * config.d_model * w, "input")),
        ),
        *moe_steps(config, tokens, fresh_he=True, fresh_ot=True),
        (
            "output",
            send("server", (tokens * config.d_model + 2 * tokens * config.top_k) * w, "output"),
        ),
    ]


def demo_cost(config: MoEConfig, tokens: int) -> Pattern:
    """``demo_client`` / ``demo_server`` (spec §40.5) in a fresh session: the token count and
    the client's shares, the layer with every set-up, the server's output shares."""
    return seq(p for _, p in demo_steps(config, tokens))
