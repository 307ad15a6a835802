"""Vector table of spec §40 and §41: the secure MoE layer and its baselines on tiny
configurations.

Each case: a configuration, the weights as the seed of ``default_weights`` (and their encoding
digest), one token's shares, each party's shares of y, of the selected indices and of the
gates, and the transcript (SHA-256 of every payload over 1024 bytes, which covers every
ciphertext). The reveal baseline is INSECURE: its transcript carries the routing (message
``moe/insecure/route``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.errors import Party
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_inputs, default_weights
from secmoe.model.fixed import FixedWeights, encode_weights
from secmoe.moe.baseline import moe_compute_then_select, moe_reveal_routing
from secmoe.moe.layer import MoeShares, moe
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import (
    NORMAL,
    CaseSpec,
    Group,
    Play,
    Player,
    param,
    ring_of,
    table_file,
)
from secmoe.vectors.registry import Json, case_seed, inputs_prg

Layer = Callable[[PartyContext, MoEConfig, Any, FixedWeights | None], MoeShares]
CONFIGS = (
    ("geglu-top1", MoEConfig(d_model=4, d_ff=8, n_experts=4)),
    (
        "swiglu-top2",
        MoEConfig(
            d_model=4, d_ff=8, n_experts=4, top_k=2, expert_kind="swiglu", gate_norm="softmax_topk"
        ),
    ),
)
# The routing families of §40.3.2 (8 experts, so that groups of 2 exist): DeepSeek-V3 style,
# DeepSeek-V2 style, GPT-OSS's router bias, Llama4's gate on the input.
ROUTING = {"d_model": 4, "d_ff": 8, "n_experts": 8, "expert_kind": "swiglu"}
ROUTING_CONFIGS = (
    (
        "sigmoid-topk-score-bias-groups",
        MoEConfig(
            **ROUTING,  # type: ignore[arg-type]
            top_k=2,
            gate_norm="sigmoid_topk",
            score_bias=True,
            n_groups=4,
            topk_groups=2,
            routed_scaling=2.5,
        ),
    ),
    (
        "softmax-groups-max",
        MoEConfig(
            **ROUTING,  # type: ignore[arg-type]
            top_k=2,
            n_groups=4,
            topk_groups=2,
            group_score="max",
            routed_scaling=1.5,
        ),
    ),
    (
        "router-bias",
        MoEConfig(**ROUTING, top_k=2, gate_norm="softmax_topk", router_bias=True),  # type: ignore[arg-type]
    ),
    (
        "sigmoid-gate-on-input",
        MoEConfig(**ROUTING, gate_norm="sigmoid", gate_on_input=True),  # type: ignore[arg-type]
    ),
)


# The expert families of §40.3.1 (spec 6.1.1, second table): GPT-OSS's clamped SwiGLU with its
# expert biases, top-2 with a shared expert under Qwen2-MoE's shared gate, and ReLU experts with
# biases.
EXPERT_CONFIGS = (
    (
        "gptoss-bias-top2-gated-shared",
        MoEConfig(
            d_model=4,
            d_ff=8,
            n_experts=4,
            top_k=2,
            expert_kind="gptoss",
            gate_norm="softmax_topk",
            expert_bias=True,
            n_shared_experts=1,
            d_ff_shared=4,
            shared_gate=True,
        ),
    ),
    (
        "relu-bias-top1",
        MoEConfig(d_model=4, d_ff=8, n_experts=4, expert_kind="relu", expert_bias=True),
    ),
)
Configs = tuple[tuple[str, MoEConfig], ...]
TOKENS = 1
FILE_PARAMS: Json = {"ring_bits": 64, "frac_bits": 18}
PARAMS: Json = {**FILE_PARAMS, "T": TOKENS}


def _weights(c: MoEConfig, seed: bytes) -> FixedWeights:
    return encode_weights(c, default_weights(c, seed))


def _player(layer: Layer) -> Player:
    def play(case: Json, params: Json) -> Play:
        inputs = case["inputs"]
        c = MoEConfig(**inputs["config"])
        ring = c.fxp.ring
        fw = _weights(c, bytes.fromhex(inputs["weights_seed"]))
        xc = ring_of(ring, inputs["client"]["x"], (param(params, "T"), c.d_model))
        xs = ring_of(ring, inputs["server"]["x"], (param(params, "T"), c.d_model))

        def encode(p: Party, out: MoeShares) -> Json:
            return {
                "y": hex_ring(ring, out.y),
                "experts": hex_ring(ring, out.experts),
                "gates": hex_ring(ring, out.gates),
            }

        return Play(
            c.fxp, lambda ctx: layer(ctx, c, xc, None), lambda ctx: layer(ctx, c, xs, fw), encode
        )

    return play


def _groups(protocol: str, configs: Configs) -> list[Group]:
    cases = []
    for name, c in configs:
        cid = f"{protocol}/{name}"
        seed = case_seed(protocol, cid)
        fw = _weights(c, seed)
        x = c.fxp.encode(default_inputs(c, TOKENS, seed))
        xc = inputs_prg(protocol, cid).next_ring(x.size).reshape(x.shape)
        digest = hashlib.sha256()
        digested = (fw.w_gate, fw.w1, fw.v, fw.w2, fw.b_gate, fw.score_bias, fw.b1, fw.bv, fw.b2)
        for arr in (*digested, fw.shared_gate):
            if arr is not None:
                digest.update(np.ascontiguousarray(arr, dtype="<u8").tobytes())
        inputs = {
            "config": c.as_dict(),
            "weights_seed": seed.hex(),
            "encoded_digest": digest.hexdigest(),
            "client": {"x": hex_ring(c.fxp.ring, xc)},
            "server": {"x": hex_ring(c.fxp.ring, c.fxp.ring.sub(x, xc))},
        }
        what = f"{name}: d_model 4, d_ff 8, {c.n_experts} experts, one token"
        cases.append(CaseSpec(cid, what, inputs))
    return [Group(PARAMS, cases)]


def _file(
    protocol: str,
    path: str,
    anchor: str,
    section: str,
    layer: Layer,
    header: list[str],
    configs: Configs = CONFIGS,
) -> None:
    table_file(
        protocol,
        path,
        section=section,
        anchor=anchor,
        params=FILE_PARAMS,
        header=header,
        notes={"Normal": NORMAL},
        player=_player(layer),
        groups=lambda: _groups(protocol, configs),
    )


def _plain(name: str, spec: str, section: str, layer: Layer, what: str) -> None:
    _file(
        f"moe.{name}",
        f"moe/{name}.json",
        f"spec/{spec}#{name}",
        section,
        layer,
        [
            f"{what} on one token of two tiny configurations (spec 40.6).",
            "Weights: default_weights(config, weights_seed), encoded with fxp_encode (SHA-256 of",
            "the encoded arrays in w_gate, w1, v, w2 order: encoded_digest). Inputs: each party's",
            "share of x (row-major hex); outputs: each party's shares of y, experts and gates.",
        ],
    )


_plain("moe", "40-moe.md", "40.3.1", moe, "The secure MoE layer (Protocol 1)")
_plain(
    "moe_compute_then_select",
    "41-moe-baselines.md",
    "41.1.1",
    moe_compute_then_select,
    "The compute-then-select MoE baseline (every expert, then a multiplexer)",
)
_plain(
    "moe_reveal_routing",
    "41-moe-baselines.md",
    "41.2.1",
    moe_reveal_routing,
    "The INSECURE reveal-routing MoE baseline (the routing is opened to the server)",
)
_file(
    "moe.routing",
    "moe/moe_routing.json",
    "spec/40-moe.md#route",
    "40.3.2",
    moe,
    [
        "The secure MoE layer (spec 40.3) with the routing families of spec 40.3.2 on one token:",
        "sigmoid_topk with score bias, groups (top2_sum) and routed scaling; softmax with groups",
        "(max) and scaling; router bias with softmax_topk; Llama4's sigmoid gate on the input.",
        "Weights: default_weights(config, weights_seed) (router/bias, router/score_bias where",
        "the configuration has them), encoded; encoded_digest: SHA-256 of the encoded arrays",
        "in w_gate, w1, v, w2, b_gate, score_bias order (those present). Inputs: each",
        "party's share of x; outputs: each party's shares of y, experts and gates.",
    ],
    ROUTING_CONFIGS,
)
_file(
    "moe.experts",
    "moe/moe_experts.json",
    "spec/40-moe.md#moe",
    "40.3.1",
    moe,
    [
        "The secure MoE layer (spec 40.3) with the expert families of spec 40.3.1 on one token:",
        "GPT-OSS's clamped SwiGLU with expert biases (top-2 softmax_topk, one shared expert under",
        "the shared gate), and ReLU experts with biases (top-1). Weights: default_weights(config,",
        "weights_seed) (experts/b1, experts/bv, experts/b2, shared/gate where the configuration",
        "has them), encoded; encoded_digest: SHA-256 of the encoded arrays in w_gate, w1, v, w2,",
        "b_gate, score_bias, b1, bv, b2, shared_gate order (those present). Inputs: each party's",
        "share of x; outputs: each party's shares of y, experts and gates.",
    ],
    EXPERT_CONFIGS,
)
