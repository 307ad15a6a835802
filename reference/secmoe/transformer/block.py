"""Attention and the pre-norm MoE transformer block on shares (spec/50-transformer.md §50.2).

Every step is a protocol of §31, §33 or §40 or a local step, in the order of the fixed-point
model (secmoe.model.transformer), so a run reconstructs to ``block_fixed`` bit for bit.
"""

from __future__ import annotations

import numpy as np

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.model.transformer import FixedBlock, TransformerConfig, block_diagonal, mask_fixed
from secmoe.moe.cost import moe_cost
from secmoe.moe.layer import moe
from secmoe.protocols.cost import Pattern, seq
from secmoe.protocols.linear import matmul, matmul_cost, matmul_ss, matmul_ss_cost
from secmoe.protocols.norm import layernorm, layernorm_cost
from secmoe.protocols.softmax import softmax, softmax_cost
from secmoe.session import PartyContext
from secmoe.sharing import add_public


def _rows(ctx: PartyContext, config: TransformerConfig, x: RingVec) -> RingVec:
    if ctx.fxp != config.fxp:
        raise SpecError("the session's fixed-point parameters differ from the config's")
    xs = ctx.ring.check(np.asarray(x), "x")
    if xs.ndim != 2 or xs.shape[0] < 1 or xs.shape[1] != config.d_model:
        raise SpecError(f"x must have shape (tokens >= 1, {config.d_model}), got {xs.shape}")
    return xs


def _block_weights(ctx: PartyContext, fb: FixedBlock | None) -> FixedBlock | None:
    if ctx.party == "client" and fb is not None:
        raise SpecError("the block's weights are the server's: the client passes None")
    if ctx.party == "server" and fb is None:
        raise SpecError("the server needs the block's encoded weights")
    return fb


def attention(
    ctx: PartyContext, config: TransformerConfig, a: RingVec, fb: FixedBlock | None
) -> RingVec:
    """Shares of ``attention_fixed(a)`` for shared normalised tokens a (T, d_model).

    Implements spec §50.2.1 `attention` (spec/50-transformer.md#attention). The server passes
    the block's encoded weights, the client None.
    """
    fb = _block_weights(ctx, fb)
    xs = _rows(ctx, config, a)
    ring = ctx.ring
    t, d, h, dh = xs.shape[0], config.d_model, config.n_heads, config.d_head
    heads = [slice(i * dh, (i + 1) * dh) for i in range(h)]
    # Step 1: Q (with 1/sqrt(d_head) folded into W_Q), K, V in one product with W_QKV (3d x d).
    qkv = matmul(ctx, xs, None if fb is None else fb.w_qkv, 3 * d)
    q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
    # Step 2: every head's Q_h K_h^T at once: each party lays its share of K^T out block-diagonally
    # (the zeros are public), one matmul_ss of (T, d) by (d, H T).
    kbd = block_diagonal([np.ascontiguousarray(k[:, c].T) for c in heads])
    scores = matmul_ss(ctx, q, kbd)
    # Step 3: the causal mask: the client adds the public -enc(MASK_VALUE) at masked pairs.
    if config.causal:
        scores = add_public(ctx.party, scores, mask_fixed(config, t), ring)
    # Step 4: one softmax over the T H rows of T scores.
    probs = softmax(ctx, scores.reshape(t * h, t)).reshape(t, h * t)
    # Step 5: [A_1 V_1, ..., A_H V_H] by one matmul_ss with the block-diagonal V (H T, d).
    vbd = block_diagonal([np.ascontiguousarray(v[:, c]) for c in heads])
    out = matmul_ss(ctx, probs, vbd)
    # Step 6: the output projection.
    return matmul(ctx, out, None if fb is None else fb.w_o, d)


def transformer_block(
    ctx: PartyContext, config: TransformerConfig, x: RingVec, fb: FixedBlock | None
) -> RingVec:
    """Shares of ``block_fixed(x)``: h = x + attention(LN1(x)); y = h + moe(LN2(h)).

    Implements spec §50.2.2 `transformer_block` (spec/50-transformer.md#transformer_block).
    """
    fb = _block_weights(ctx, fb)
    xs = _rows(ctx, config, x)
    ring, eps = ctx.ring, float(config.ln_eps)

    def w(name: str) -> RingVec | None:
        return None if fb is None else np.asarray(getattr(fb, name))

    # Step 1: a = LN1(x), gamma and beta the server's.
    a = layernorm(ctx, xs, w("ln1_gamma"), w("ln1_beta"), eps)
    # Step 2: h = x + attention(a), the residual local.
    h = ring.add(xs, attention(ctx, config, a, fb))
    # Step 3: m = LN2(h).
    m = layernorm(ctx, h, w("ln2_gamma"), w("ln2_beta"), eps)
    # Step 4: y = h + moe(m); the routing stays shared and is dropped.
    out = moe(ctx, config.moe, m, None if fb is None else fb.moe)
    return ring.add(h, out.y)


# --- cost (spec §50.6) ------------------------------------------------------------------------------


def attention_cost(config: TransformerConfig, tokens: int) -> Pattern:
    """``attention`` on T tokens, HE keys set up: the products, the softmax, the projection."""
    l, f = config.moe.ring_bits, config.moe.frac_bits
    t, d, h = tokens, config.d_model, config.n_heads
    return seq(
        matmul_cost(t, d, 3 * d, l, f),
        matmul_ss_cost(t, d, h * t, l, f),
        softmax_cost(t * h, t, l, f),
        matmul_ss_cost(t, h * t, d, l, f),
        matmul_cost(t, d, d, l, f),
    )


def transformer_block_cost(config: TransformerConfig, tokens: int) -> Pattern:
    """``transformer_block`` on T tokens with every key set up (he8192 and the selection's)."""
    l, f, d = config.moe.ring_bits, config.moe.frac_bits, config.d_model
    return seq(
        layernorm_cost(tokens, d, l, f),
        attention_cost(config, tokens),
        layernorm_cost(tokens, d, l, f),
        moe_cost(config.moe, tokens, fresh_he=False),
    )
