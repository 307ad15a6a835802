"""Vector generator for spec §40: the secure MoE layer on tiny configurations.

Each case: a configuration, the weights as the seed of ``default_weights`` (and their encoding
digest), one token's shares, each party's shares of y, of the selected indices and of the
gates, and the transcript (SHA-256 of every payload over 1024 bytes, which covers every
ciphertext).
"""

from __future__ import annotations

import hashlib

import numpy as np

from secmoe.model.config import MoEConfig
from secmoe.model.default import default_inputs, default_weights
from secmoe.model.fixed import FixedWeights, encode_weights
from secmoe.moe.layer import MoeShares, moe
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_ring, run_case, two_party_case
from secmoe.vectors.gen_protocols import NORMAL
from secmoe.vectors.registry import Json, case_seed, inputs_prg, register

PROTOCOL = "moe.moe"
CONFIGS = (
    ("geglu-top1", MoEConfig(d_model=4, d_ff=8, n_experts=4)),
    (
        "swiglu-top2",
        MoEConfig(
            d_model=4, d_ff=8, n_experts=4, top_k=2, expert_kind="swiglu", gate_norm="softmax_topk"
        ),
    ),
)


def _config_json(c: MoEConfig) -> Json:
    return {
        "d_model": c.d_model,
        "d_ff": c.d_ff,
        "n_experts": c.n_experts,
        "top_k": c.top_k,
        "expert_kind": c.expert_kind,
        "gate_norm": c.gate_norm,
        "n_shared_experts": c.n_shared_experts,
    }


def _shares(out: MoeShares, c: MoEConfig) -> Json:
    ring = c.fxp.ring
    return {
        "y": hex_ring(ring, out.y),
        "experts": hex_ring(ring, out.experts),
        "gates": hex_ring(ring, out.gates),
    }


@register(
    PROTOCOL,
    "moe/moe.json",
    section="40.3.1",
    anchor="spec/40-moe.md#moe",
    params={"ring_bits": 64, "frac_bits": 18},
    mode="real",
    header=[
        "The secure MoE layer (Protocol 1) on one token of two tiny configurations.",
        "Weights: default_weights(config, weights_seed), encoded with fxp_encode (SHA-256 of",
        "the encoded arrays in w_gate, w1, v, w2 order: encoded_digest). Inputs: each party's",
        "share of x (row-major hex); outputs: each party's shares of y, experts and gates.",
    ],
    notes={"Normal": NORMAL},
)
def _moe_vectors() -> list[Json]:
    cases = []
    for name, c in CONFIGS:
        cid = f"{PROTOCOL}/{name}"
        seed = case_seed(PROTOCOL, cid)
        fw = encode_weights(c, default_weights(c, seed))
        ring = c.fxp.ring
        x = c.fxp.encode(default_inputs(c, 1, seed))
        xc = inputs_prg(PROTOCOL, cid).next_ring(x.size).reshape(x.shape)
        xs = ring.sub(x, xc)
        digest = hashlib.sha256()
        for arr in (fw.w_gate, fw.w1, fw.v, fw.w2):
            if arr is not None:
                digest.update(np.ascontiguousarray(arr, dtype="<u8").tobytes())

        def client(ctx: PartyContext, c: MoEConfig = c, xc: np.ndarray = xc) -> MoeShares:
            return moe(ctx, c, xc, None)

        def server(
            ctx: PartyContext, c: MoEConfig = c, xs: np.ndarray = xs, fw: FixedWeights = fw
        ) -> MoeShares:
            return moe(ctx, c, xs, fw)

        seeds, res = run_case(client, server, PROTOCOL, cid, fxp=c.fxp)
        cases.append(
            two_party_case(
                cid,
                f"{name}: d_model 4, d_ff 8, 4 experts, one token",
                seeds,
                res,
                inputs={
                    "config": _config_json(c),
                    "weights_seed": seed.hex(),
                    "encoded_digest": digest.hexdigest(),
                    "client": {"x": hex_ring(ring, xc)},
                    "server": {"x": hex_ring(ring, xs)},
                },
                outputs={"client": _shares(res.client, c), "server": _shares(res.server, c)},
                flags=["Normal"],
            )
        )
    return [{"params": {"ring_bits": 64, "frac_bits": 18}, "tests": cases}]
