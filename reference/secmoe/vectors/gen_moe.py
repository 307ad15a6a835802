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


def _groups(protocol: str) -> list[Group]:
    cases = []
    for name, c in CONFIGS:
        cid = f"{protocol}/{name}"
        seed = case_seed(protocol, cid)
        fw = _weights(c, seed)
        x = c.fxp.encode(default_inputs(c, TOKENS, seed))
        xc = inputs_prg(protocol, cid).next_ring(x.size).reshape(x.shape)
        digest = hashlib.sha256()
        for arr in (fw.w_gate, fw.w1, fw.v, fw.w2):
            if arr is not None:
                digest.update(np.ascontiguousarray(arr, dtype="<u8").tobytes())
        inputs = {
            "config": c.as_dict(),
            "weights_seed": seed.hex(),
            "encoded_digest": digest.hexdigest(),
            "client": {"x": hex_ring(c.fxp.ring, xc)},
            "server": {"x": hex_ring(c.fxp.ring, c.fxp.ring.sub(x, xc))},
        }
        cases.append(CaseSpec(cid, f"{name}: d_model 4, d_ff 8, 4 experts, one token", inputs))
    return [Group(PARAMS, cases)]


def _file(name: str, spec: str, section: str, layer: Layer, what: str) -> None:
    protocol = f"moe.{name}"
    table_file(
        protocol,
        f"moe/{name}.json",
        section=section,
        anchor=f"spec/{spec}#{name}",
        params=FILE_PARAMS,
        header=[
            f"{what} on one token of two tiny configurations (spec 40.6).",
            "Weights: default_weights(config, weights_seed), encoded with fxp_encode (SHA-256 of",
            "the encoded arrays in w_gate, w1, v, w2 order: encoded_digest). Inputs: each party's",
            "share of x (row-major hex); outputs: each party's shares of y, experts and gates.",
        ],
        notes={"Normal": NORMAL},
        player=_player(layer),
        groups=lambda: _groups(protocol),
    )


_file("moe", "40-moe.md", "40.3.1", moe, "The secure MoE layer (Protocol 1)")
_file(
    "moe_compute_then_select",
    "41-moe-baselines.md",
    "41.1.1",
    moe_compute_then_select,
    "The compute-then-select MoE baseline (every expert, then a multiplexer)",
)
_file(
    "moe_reveal_routing",
    "41-moe-baselines.md",
    "41.2.1",
    moe_reveal_routing,
    "The INSECURE reveal-routing MoE baseline (the routing is opened to the server)",
)
