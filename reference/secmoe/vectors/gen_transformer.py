"""Vector generator for spec §50: one secure MoE transformer block on a tiny configuration.

The case: the configuration, the weights as the seed of ``transformer_weights`` (block 0 is
the one run), two tokens' shares, each party's output share, and the transcript (SHA-256 of
every payload over 1024 bytes, which covers every ciphertext).
"""

from __future__ import annotations

import numpy as np

from secmoe.model.config import MoEConfig
from secmoe.model.default import uniform_tensor
from secmoe.model.transformer import (
    FixedBlock,
    TransformerConfig,
    encode_transformer,
    transformer_weights,
)
from secmoe.session import PartyContext
from secmoe.transformer.block import transformer_block
from secmoe.vectors.build import hex_ring, run_case, two_party_case
from secmoe.vectors.gen_protocols import NORMAL
from secmoe.vectors.registry import Json, case_seed, inputs_prg, register

PROTOCOL = "transformer.transformer_block"
CONFIG = TransformerConfig(
    vocab_size=8,
    n_heads=2,
    n_blocks=1,
    moe=MoEConfig(d_model=4, d_ff=8, n_experts=4),
    max_len=4,
    n_classes=3,
)
TOKENS = 2


@register(
    PROTOCOL,
    "transformer/block.json",
    section="50.2.2",
    anchor="spec/50-transformer.md#transformer_block",
    params={"ring_bits": 64, "frac_bits": 18},
    mode="real",
    header=[
        "One pre-norm MoE transformer block (LayerNorm, attention, LayerNorm, MoE) on shares of",
        "two tokens: d_model 4, 2 heads, 4 GeGLU experts (d_ff 8, top-1), no mask.",
        "Weights: block 0 of transformer_weights(config, weights_seed), encoded. Inputs: each",
        "party's share of x (row-major hex), x = uniform_tensor(weights_seed, 'transformer/",
        "vector-x', (2, 4), 1); outputs: each party's share of the block's output.",
    ],
    notes={"Normal": NORMAL},
)
def _block_vectors() -> list[Json]:
    c = CONFIG
    cid = f"{PROTOCOL}/tiny"
    seed = case_seed(PROTOCOL, cid)
    fb = encode_transformer(c, transformer_weights(c, seed)).blocks[0]
    ring = c.fxp.ring
    x = c.fxp.encode(uniform_tensor(seed, "transformer/vector-x", (TOKENS, c.d_model), 1.0))
    xc = inputs_prg(PROTOCOL, cid).next_ring(x.size).reshape(x.shape)
    xs = ring.sub(x, xc)

    def client(ctx: PartyContext) -> np.ndarray:
        return transformer_block(ctx, c, xc, None)

    def server(ctx: PartyContext, fb: FixedBlock = fb) -> np.ndarray:
        return transformer_block(ctx, c, xs, fb)

    seeds, res = run_case(client, server, PROTOCOL, cid, fxp=c.fxp)
    config: Json = {
        "vocab_size": c.vocab_size,
        "d_model": c.d_model,
        "n_heads": c.n_heads,
        "n_blocks": c.n_blocks,
        "max_len": c.max_len,
        "head": c.head,
        "n_classes": c.n_classes,
        "causal": c.causal,
        "ln_eps": c.ln_eps,
        "moe": {"d_ff": c.moe.d_ff, "n_experts": c.moe.n_experts, "top_k": c.moe.top_k},
    }
    case = two_party_case(
        cid,
        "one block, two tokens, d_model 4, 2 heads, 4 experts",
        seeds,
        res,
        inputs={
            "config": config,
            "weights_seed": seed.hex(),
            "client": {"x": hex_ring(ring, xc)},
            "server": {"x": hex_ring(ring, xs)},
        },
        outputs={
            "client": {"y": hex_ring(ring, res.client)},
            "server": {"y": hex_ring(ring, res.server)},
        },
        flags=["Normal"],
    )
    return [{"params": {"ring_bits": 64, "frac_bits": 18, "T": TOKENS}, "tests": [case]}]
