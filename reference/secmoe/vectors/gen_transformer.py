"""Vector tables of spec §50 on tiny configurations: one secure MoE transformer block, and the
whole model (a classifier and a causal LM).

The block's case: the configuration, the weights as the seed of ``transformer_weights`` (block 0
is the one run), two tokens' shares, each party's output share, and the transcript (SHA-256 of
every payload over 1024 bytes, which covers every ciphertext). The model's cases: the
configuration, the client's ids, the server's weights seed, the client's logits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from secmoe.errors import Party, SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import uniform_tensor
from secmoe.model.transformer import TransformerConfig, encode_transformer, transformer_weights
from secmoe.transformer.block import transformer_block
from secmoe.transformer.demo import transformer_client, transformer_server
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import NORMAL, CaseSpec, Group, Play, both, param, ring_of, table_file
from secmoe.vectors.registry import Json, case_seed, inputs_prg

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
FILE_PARAMS: Json = {"ring_bits": 64, "frac_bits": 18}
PARAMS: Json = {**FILE_PARAMS, "T": TOKENS}


def config_json(c: TransformerConfig) -> Json:
    return {
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


def config_of(config: Json) -> TransformerConfig:
    """The inverse of :func:`config_json` (the MoE's d_model is the model's)."""
    fields = {k: v for k, v in config.items() if k not in ("moe", "d_model")}
    return TransformerConfig(moe=MoEConfig(d_model=config["d_model"], **config["moe"]), **fields)


def _play(case: Json, params: Json) -> Play:
    inputs = case["inputs"]
    c = config_of(inputs["config"])
    ring = c.fxp.ring
    fb = encode_transformer(c, transformer_weights(c, bytes.fromhex(inputs["weights_seed"])))
    block = fb.blocks[0]
    xc = ring_of(ring, inputs["client"]["x"], (param(params, "T"), c.d_model))
    xs = ring_of(ring, inputs["server"]["x"], (param(params, "T"), c.d_model))
    return Play(
        c.fxp,
        lambda ctx: transformer_block(ctx, c, xc, None),
        lambda ctx: transformer_block(ctx, c, xs, block),
        both("y", lambda v: hex_ring(ring, v)),
    )


def _groups() -> list[Group]:
    c = CONFIG
    cid = f"{PROTOCOL}/tiny"
    seed = case_seed(PROTOCOL, cid)
    ring = c.fxp.ring
    x = c.fxp.encode(uniform_tensor(seed, "transformer/vector-x", (TOKENS, c.d_model), 1.0))
    xc = inputs_prg(PROTOCOL, cid).next_ring(x.size).reshape(x.shape)
    inputs = {
        "config": config_json(c),
        "weights_seed": seed.hex(),
        "client": {"x": hex_ring(ring, xc)},
        "server": {"x": hex_ring(ring, ring.sub(x, xc))},
    }
    comment = "one block, two tokens, d_model 4, 2 heads, 4 experts"
    return [Group(PARAMS, [CaseSpec(cid, comment, inputs)])]


table_file(
    PROTOCOL,
    "transformer/block.json",
    section="50.2.2",
    anchor="spec/50-transformer.md#transformer_block",
    params=FILE_PARAMS,
    header=[
        "One pre-norm MoE transformer block (LayerNorm, attention, LayerNorm, MoE) on shares of",
        "two tokens: d_model 4, 2 heads, 4 GeGLU experts (d_ff 8, top-1), no mask.",
        "Weights: block 0 of transformer_weights(config, weights_seed), encoded. Inputs: each",
        "party's share of x (row-major hex), x = uniform_tensor(weights_seed, 'transformer/",
        "vector-x', (2, 4), 1); outputs: each party's share of the block's output.",
    ],
    notes={"Normal": NORMAL},
    player=_play,
    groups=_groups,
)


# --- the whole model (spec §50.3-50.4): the client's ids in, the logits out --------------------

MODEL = "transformer.model"
# The LM case: logits of every token under the causal mask, with one token more than the
# classifier's so that the mask hides keys from two of its three rows (max_len 4 allows it).
LM_CONFIG = replace(CONFIG, head="lm", causal=True)
MODEL_CASES = (
    (
        "tiny-classify",
        CONFIG,
        2,
        "one block, two tokens, d_model 4, 2 heads, 4 experts, a 3-class head",
    ),
    (
        "tiny-lm",
        LM_CONFIG,
        3,
        "one block, three tokens, d_model 4, 2 heads, 4 experts, a causal LM head on every token",
    ),
)


def _play_model(case: Json, params: Json) -> Play:
    inputs = case["inputs"]
    c = config_of(inputs["config"])
    fw = encode_transformer(
        c, transformer_weights(c, bytes.fromhex(inputs["server"]["weights_seed"]))
    )
    ids = np.asarray(inputs["client"]["ids"], dtype=np.int64)
    if ids.size != param(params, "T"):
        raise SpecError(f"{ids.size} token ids in a group of T = {param(params, 'T')}")

    def encode(party: Party, out: Any) -> Json:
        return {"tokens": out} if party == "server" else {"logits": hex_ring(c.fxp.ring, out)}

    return Play(
        c.fxp,
        lambda ctx: transformer_client(ctx, c, ids),
        lambda ctx: transformer_server(ctx, c, fw),
        encode,
    )


def _model_groups() -> list[Group]:
    """One group per case: the cases differ in T."""
    groups = []
    for name, c, tokens, comment in MODEL_CASES:
        cid = f"{MODEL}/{name}"
        seed = case_seed(MODEL, cid)
        ids = [int(v) for v in inputs_prg(MODEL, cid).next_below(tokens, c.vocab_size)]
        inputs = {
            "config": config_json(c),
            "client": {"ids": ids},
            "server": {"weights_seed": seed.hex()},
        }
        groups.append(Group({**FILE_PARAMS, "T": tokens}, [CaseSpec(cid, comment, inputs)]))
    return groups


table_file(
    MODEL,
    "transformer/model.json",
    section="50.4.1",
    anchor="spec/50-transformer.md#transformer_client",
    params=FILE_PARAMS,
    header=[
        "The whole secure MoE transformer (spec 50.3-50.4): transformer_client sends T",
        "(transformer/tokens), both run transformer (model_keys, embed, the blocks, the final",
        "norm and the head), the server sends its logit shares (transformer/output). Tiny",
        "models: vocab 8, d_model 4, 2 heads, 1 block, 4 GeGLU experts (d_ff 8, top-1),",
        "max_len 4. tiny-classify: T = 2, a 3-class head on the first token (rows 1), no mask;",
        "tiny-lm: T = 3, head lm (vocab-wide logits of every token, rows T) and causal (every",
        "key after its query masked). One group per case (T is the group's). inputs.client.ids:",
        "the token ids; inputs.server.weights_seed: the seed of transformer_weights (encoded).",
        "Outputs: the client's logits (rows x n_out, row-major ring-vec hex, equal to",
        "transformer_fixed), the server's token count. Payloads over 1024 bytes: their SHA-256.",
    ],
    notes={"Normal": NORMAL},
    player=_play_model,
    groups=_model_groups,
)
