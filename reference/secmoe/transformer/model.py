"""The secure end-to-end MoE transformer (spec/50-transformer.md §50.3).

The client's token ids never leave it in the clear: its one-hot is its share of the embedding
input (the server's share is 0) and reaches the server only encrypted, inside ``matmul``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.he.matmul import he_setup
from secmoe.he.params import preset
from secmoe.model.transformer import FixedTransformer, TransformerConfig, onehot_fixed
from secmoe.moe.cost import select_setup_cost
from secmoe.moe.select import select_setup
from secmoe.ot.pool import ot_setup
from secmoe.protocols.cost import Pattern, ot_setup_pattern, seq
from secmoe.protocols.linear import DEFAULT_HE, he_setup_cost, matmul, matmul_cost
from secmoe.protocols.norm import layernorm, layernorm_cost
from secmoe.session import PartyContext
from secmoe.transformer.block import transformer_block, transformer_block_cost

Ints = NDArray[np.int64]


def model_keys(ctx: PartyContext, config: TransformerConfig) -> None:
    """The session's HE keys for the whole model, before anything else (phase ``offline``).

    Implements spec §50.3.1 `model_keys` (spec/50-transformer.md#model_keys).
    """
    # Step 1: both OT directions, the client's-sender one first (nothing when they exist).
    ot_setup(ctx)
    # Step 2: he8192 for the products with plaintext weights.
    he_setup(ctx, preset(DEFAULT_HE))
    # Step 3: the selection's keys for the experts.
    select_setup(ctx, config.moe.n_experts)


def embed(
    ctx: PartyContext,
    config: TransformerConfig,
    ids: Ints | None,
    tokens: int,
    fw: FixedTransformer | None,
) -> RingVec:
    """Shares of the embedded tokens (T, d_model): the one-hot product plus the positions.

    Implements spec §50.3.2 `embed` (spec/50-transformer.md#embed). The client passes its
    token ids, the server None; ``tokens`` (T) is public.
    """
    # Step 1: the one-hot (enc(1) at each id) is the client's share; the server's is 0.
    if ctx.party == "client":
        if ids is None or np.asarray(ids).shape != (tokens,):
            raise SpecError(f"the client must pass {tokens} token ids")
        ids = np.asarray(ids, dtype=np.int64)
        if np.any(ids < 0) or np.any(ids >= config.vocab_size):
            raise SpecError(f"token ids must lie in [0, {config.vocab_size})")
        hot = onehot_fixed(config, ids)
    else:
        if ids is not None:
            raise SpecError("the token ids are the client's: the server passes None")
        hot = np.zeros((tokens, config.vocab_size), dtype=np.uint64)
    # Step 2: trunc(onehot E) = the selected rows, E the server's (vocab x d) as a d x vocab matrix.
    w = None if fw is None else np.ascontiguousarray(fw.embed.T)
    x = matmul(ctx, hot, w, config.d_model)
    # Step 3: the server adds the positional embedding to its own share.
    if fw is not None:
        x = ctx.ring.add(x, fw.pos[:tokens])
    return x


def transformer(
    ctx: PartyContext,
    config: TransformerConfig,
    ids: Ints | None,
    tokens: int,
    fw: FixedTransformer | None,
) -> RingVec:
    """Shares of ``transformer_fixed(ids)``, the logits (rows, n_out) in fixed point.

    Implements spec §50.3.3 `transformer` (spec/50-transformer.md#transformer). The client
    passes its ids and no weights, the server the encoded weights and no ids.
    """
    if ctx.fxp != config.fxp:
        raise SpecError("the session's fixed-point parameters differ from the config's")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= config.max_len:
        raise SpecError(f"tokens must be an integer in 1..{config.max_len}, got {tokens!r}")
    if (ctx.party == "client") != (fw is None):
        raise SpecError("the server passes the encoded weights, the client None")
    ctx.say(f"transformer: {tokens} token(s), {config.n_blocks} block(s)")
    # Step 1: every HE key the model needs, up front.
    model_keys(ctx, config)
    # Step 2: the embedding.
    x = embed(ctx, config, ids, tokens, fw)
    # Step 3: the blocks.
    for i in range(config.n_blocks):
        ctx.say(f"transformer: block {i + 1}/{config.n_blocks}")
        x = transformer_block(ctx, config, x, None if fw is None else fw.blocks[i])
    # Step 4: pool (the first token, or every token), the final norm, the head.
    pooled = x[: config.pooled_rows(tokens)]
    gamma, beta = (None, None) if fw is None else (fw.lnf_gamma, fw.lnf_beta)
    z = layernorm(ctx, pooled, gamma, beta, float(config.ln_eps))
    return matmul(ctx, z, None if fw is None else fw.w_head, config.n_out)


# --- cost (spec §50.6) ------------------------------------------------------------------------------


def model_keys_cost(config: TransformerConfig, fresh_ot: bool = False) -> Pattern:
    """``model_keys`` in a fresh HE session: the OT set-up when ``fresh_ot``, pk at he8192,
    then ``select_setup``."""
    keys = seq(he_setup_cost(), select_setup_cost(config.moe.n_experts))
    return seq(ot_setup_pattern(), keys) if fresh_ot else keys


def embed_cost(config: TransformerConfig, tokens: int) -> Pattern:
    """``embed``: one ``matmul`` of (T, vocab) by the (d, vocab) embedding."""
    l, f = config.moe.ring_bits, config.moe.frac_bits
    return matmul_cost(tokens, config.vocab_size, config.d_model, l, f)


def transformer_cost(config: TransformerConfig, tokens: int, fresh_ot: bool = False) -> Pattern:
    """``transformer`` on T tokens in a fresh HE session (warm OT sessions unless ``fresh_ot``)."""
    l, f = config.moe.ring_bits, config.moe.frac_bits
    rows = config.pooled_rows(tokens)
    return seq(
        model_keys_cost(config, fresh_ot),
        embed_cost(config, tokens),
        seq(transformer_block_cost(config, tokens) for _ in range(config.n_blocks)),
        layernorm_cost(rows, config.d_model, l, f),
        matmul_cost(rows, config.d_model, config.n_out, l, f),
    )
