"""A small MoE transformer in plaintext: configuration, deterministic weights, the float model
and the bit-exact fixed-point model (spec/50-transformer.md §50.1).

Pre-norm blocks, ``h = x + Attn(LN1(x))``, ``y = h + MoE(LN2(h))``, then a final LayerNorm and
a head (classification on the first token, or a language-model head on every token). The
fixed-point model performs exactly the operations, in exactly the order, of the secure protocol
(secmoe.transformer): the embedding as a one-hot product, Q, K, V as one product with the
stacked weights, all heads' scores as one product with a block-diagonal K^T, one softmax over
every (token, head) row, all heads' A V as one product with a block-diagonal V.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.config import PRODUCT_HEADROOM_BITS, MoEConfig, MoEWeights, check_int
from secmoe.model.default import default_weights, fan_in_scale, uniform_tensor
from secmoe.model.fixed import FixedWeights, encode_weights, matmul_fixed, moe_fixed, softmax_fixed
from secmoe.model.norm import layernorm_fixed, layernorm_float
from secmoe.model.plain import moe_float
from secmoe.model.plain import softmax as softmax_float
from secmoe.randomness import SEED_BYTES, derive_seed

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Head = Literal["classify", "lm"]
HEADS: tuple[Head, ...] = ("classify", "lm")
# The causal mask subtracts this public value (in real units) from a masked score: with scores
# below (2^16 - 14) / 2 in magnitude every masked exponent is below the exp clip point -14, so
# the masked probabilities are exactly 0, as -inf gives in the float model.
MASK_VALUE = 2.0**16
EMBED_SCALE = 1.0  # token embeddings uniform in [-1, 1)
POS_SCALE = 0.5  # positional embeddings uniform in [-1/2, 1/2)
NORM_SCALE = 0.25
# The tiny model's seed (recomputable by anyone, like the default model's, spec §6.5).
TINY_SEED = hashlib.sha256(
    b"secmoe/v1/tiny-model"
).digest()  # gamma = 1 + U[-1/4, 1/4), beta = U[-1/4, 1/4)


@dataclass(frozen=True)
class TransformerConfig:
    """The shape of a small MoE transformer; every block's FFN is the MoE layer ``moe``.

    Implements spec §50.1.1 `TransformerConfig` (spec/50-transformer.md#transformerconfig).
    """

    vocab_size: int
    n_heads: int
    n_blocks: int
    moe: MoEConfig
    max_len: int = 16
    head: Head = "classify"
    n_classes: int = 2
    causal: bool = False
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_heads", "n_blocks", "max_len", "n_classes"):
            check_int("TransformerConfig", name, getattr(self, name))
        if not isinstance(self.moe, MoEConfig):
            raise SpecError("TransformerConfig.moe must be a MoEConfig")
        if self.moe.d_model % self.n_heads:
            raise SpecError(
                f"TransformerConfig.n_heads = {self.n_heads} must divide d_model = "
                f"{self.moe.d_model}"
            )
        if self.head not in HEADS:
            raise SpecError(f"TransformerConfig.head must be one of {HEADS}, got {self.head!r}")
        if not isinstance(self.causal, bool):
            raise SpecError(f"TransformerConfig.causal must be a bool, got {self.causal!r}")
        if not (isinstance(self.ln_eps, float | int) and math.isfinite(self.ln_eps)):
            raise SpecError(f"TransformerConfig.ln_eps must be finite, got {self.ln_eps!r}")
        if self.moe.ring_bits < 2 * self.moe.frac_bits + PRODUCT_HEADROOM_BITS:
            raise SpecError("the MoE configuration's ring is too small")  # MoEConfig checks too

    @property
    def d_model(self) -> int:
        return self.moe.d_model

    @property
    def d_head(self) -> int:
        return self.moe.d_model // self.n_heads

    @property
    def n_out(self) -> int:
        """The head's outputs per pooled row: the classes, or the vocabulary."""
        return self.n_classes if self.head == "classify" else self.vocab_size

    @property
    def fxp(self) -> FixedPoint:
        return self.moe.fxp

    def pooled_rows(self, tokens: int) -> int:
        """Rows the head sees: the first token (classification) or every token (LM)."""
        return 1 if self.head == "classify" else tokens


def tiny_config() -> TransformerConfig:
    """The tiny model of the tests and of ``secmoe demo --model tiny``: vocabulary 16, d_model 8,
    2 heads, 2 blocks of 4 GeGLU experts (d_ff 16, top-1), 3 classes."""
    return TransformerConfig(
        vocab_size=16,
        n_heads=2,
        n_blocks=2,
        moe=MoEConfig(d_model=8, d_ff=16, n_experts=4),
        max_len=8,
        head="classify",
        n_classes=3,
    )


@dataclass(frozen=True)
class BlockWeights:
    """One block in float64: the norms' (d,) vectors, attention's (d, d) matrices acting as
    ``x W^T``, and the MoE layer's weights."""

    ln1_gamma: Floats
    ln1_beta: Floats
    w_q: Floats
    w_k: Floats
    w_v: Floats
    w_o: Floats
    ln2_gamma: Floats
    ln2_beta: Floats
    moe: MoEWeights


@dataclass(frozen=True)
class TransformerWeights:
    """Embeddings (vocab, d) and (max_len, d), the blocks, the final norm and the head (n_out, d)."""

    embed: Floats
    pos: Floats
    blocks: tuple[BlockWeights, ...]
    lnf_gamma: Floats
    lnf_beta: Floats
    w_head: Floats

    def check(self, config: TransformerConfig) -> None:
        d = config.d_model
        need = [
            ("embed", self.embed, (config.vocab_size, d)),
            ("pos", self.pos, (config.max_len, d)),
            ("lnf_gamma", self.lnf_gamma, (d,)),
            ("lnf_beta", self.lnf_beta, (d,)),
            ("w_head", self.w_head, (config.n_out, d)),
        ]
        if len(self.blocks) != config.n_blocks:
            raise SpecError(f"need {config.n_blocks} blocks, got {len(self.blocks)}")
        for i, b in enumerate(self.blocks):
            need += [(f"blocks[{i}].{n}", getattr(b, n), (d,)) for n in _NORMS]
            need += [(f"blocks[{i}].{n}", getattr(b, n), (d, d)) for n in _ATTN]
            b.moe.check(config.moe)
        for name, a, shape in need:
            if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
                raise SpecError(f"TransformerWeights.{name} must be float64 of shape {shape}")
            if not np.all(np.isfinite(a)):
                raise SpecError(f"TransformerWeights.{name} has NaN or infinite entries")


_NORMS = ("ln1_gamma", "ln1_beta", "ln2_gamma", "ln2_beta")
_ATTN = ("w_q", "w_k", "w_v", "w_o")


def transformer_weights(config: TransformerConfig, seed: bytes) -> TransformerWeights:
    """Deterministic weights from a 32-byte seed, with the recipe of ``default_weights``.

    Implements spec §50.1.2 `transformer_weights` (spec/50-transformer.md#transformer_weights).
    """
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise SpecError(f"the model seed must be {SEED_BYTES} bytes")
    d = config.d_model

    def tensor(name: str, shape: tuple[int, ...], scale: float) -> Floats:
        return uniform_tensor(seed, f"transformer/{name}", shape, scale)

    def norm(name: str) -> tuple[Floats, Floats]:
        gamma = 1.0 + tensor(f"{name}/gamma", (d,), NORM_SCALE)
        return gamma, tensor(f"{name}/beta", (d,), NORM_SCALE)

    # Step 1: the embeddings and, per block, the norms, attention and the MoE layer (from a
    # child seed, so that default_weights' tensor names serve every block).
    embed = tensor("embed", (config.vocab_size, d), EMBED_SCALE)
    pos = tensor("pos", (config.max_len, d), POS_SCALE)
    blocks = []
    for i in range(config.n_blocks):
        g1, b1 = norm(f"block{i}/ln1")
        attn = [tensor(f"block{i}/attn/{n}", (d, d), fan_in_scale(d)) for n in ("wq", "wk", "wv")]
        w_o = tensor(f"block{i}/attn/wo", (d, d), fan_in_scale(d))
        g2, b2 = norm(f"block{i}/ln2")
        mw = default_weights(config.moe, derive_seed(seed, f"transformer/block{i}/moe"))
        blocks.append(BlockWeights(g1, b1, attn[0], attn[1], attn[2], w_o, g2, b2, mw))
    # Step 2: the final norm and the head.
    gf, bf = norm("lnf")
    w_head = tensor("head", (config.n_out, d), fan_in_scale(d))
    return TransformerWeights(embed, pos, tuple(blocks), gf, bf, w_head)


def tiny_weights(config: TransformerConfig | None = None) -> TransformerWeights:
    """The tiny model's weights, from the seed ``SHA-256("secmoe/v1/tiny-model")``."""
    return transformer_weights(config or tiny_config(), TINY_SEED)


# --- float model ----------------------------------------------------------------------------------


def _check_tokens(config: TransformerConfig, tokens: object) -> Ints:
    ids = np.asarray(tokens)
    if ids.ndim != 1 or not 1 <= ids.size <= config.max_len or ids.dtype.kind not in "iu":
        raise SpecError(f"tokens must be 1..{config.max_len} integer ids, got {ids!r}")
    if np.any(ids < 0) or np.any(ids >= config.vocab_size):
        raise SpecError(f"token ids must lie in [0, {config.vocab_size})")
    out: Ints = ids.astype(np.int64)
    return out


def causal_mask(tokens: int) -> NDArray[np.bool_]:
    """(T, T): True where key j comes after query i (j > i), the entries the mask removes."""
    out: NDArray[np.bool_] = np.triu(np.ones((tokens, tokens), dtype=bool), k=1)
    return out


def _attention_float(config: TransformerConfig, b: BlockWeights, a: Floats) -> Floats:
    t, h, dh = a.shape[0], config.n_heads, config.d_head
    q, k, v = (a @ w.T for w in (b.w_q, b.w_k, b.w_v))
    out = np.empty_like(a)
    for i in range(h):
        cols = slice(i * dh, (i + 1) * dh)
        s = q[:, cols] @ k[:, cols].T / math.sqrt(dh)
        if config.causal:
            s = np.where(causal_mask(t), -np.inf, s)
        out[:, cols] = softmax_float(s) @ v[:, cols]
    res: Floats = out @ b.w_o.T
    return res


def transformer_float(
    config: TransformerConfig, weights: TransformerWeights, tokens: object
) -> Floats:
    """The model in binary64 on token ids: the logits, (1, n_classes) or (T, vocab).

    Implements spec §50.1.3 `transformer_float` (spec/50-transformer.md#transformer_float).
    """
    weights.check(config)
    ids = _check_tokens(config, tokens)
    eps = float(config.ln_eps)
    # Step 1: embedding lookup plus the positions.
    x = weights.embed[ids] + weights.pos[: ids.size]
    # Step 2: the blocks.
    for b in weights.blocks:
        h = x + _attention_float(config, b, layernorm_float(x, b.ln1_gamma, b.ln1_beta, eps))
        y, _ = moe_float(config.moe, b.moe, layernorm_float(h, b.ln2_gamma, b.ln2_beta, eps))
        x = h + y
    # Step 3: pool, final norm, head.
    pooled = x[: config.pooled_rows(ids.size)]
    out: Floats = (
        layernorm_float(pooled, weights.lnf_gamma, weights.lnf_beta, eps) @ weights.w_head.T
    )
    return out


# --- fixed-point model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedBlock:
    """One block encoded: norms (d,), ``w_qkv`` (3d, d) = [W_Q / sqrt(d_head); W_K; W_V] and
    ``w_o`` (d, d), and the MoE layer's encoded weights."""

    ln1_gamma: RingVec
    ln1_beta: RingVec
    w_qkv: RingVec
    w_o: RingVec
    ln2_gamma: RingVec
    ln2_beta: RingVec
    moe: FixedWeights


@dataclass(frozen=True)
class FixedTransformer:
    """The server's encoded weights (``fxp_encode`` of every array; W_Q scaled first)."""

    embed: RingVec  # (vocab, d)
    pos: RingVec  # (max_len, d)
    blocks: tuple[FixedBlock, ...]
    lnf_gamma: RingVec
    lnf_beta: RingVec
    w_head: RingVec  # (n_out, d)


def encode_transformer(config: TransformerConfig, weights: TransformerWeights) -> FixedTransformer:
    """Encode every weight; the attention scale 1/sqrt(d_head) is folded into W_Q (in binary64,
    before encoding), so the scores need no product of their own."""
    weights.check(config)
    fxp = config.fxp

    def enc(a: Floats) -> RingVec:
        return fxp_encode(fxp, a)

    scale = 1.0 / math.sqrt(config.d_head)
    blocks = tuple(
        FixedBlock(
            enc(b.ln1_gamma),
            enc(b.ln1_beta),
            enc(np.concatenate([b.w_q * scale, b.w_k, b.w_v])),
            enc(b.w_o),
            enc(b.ln2_gamma),
            enc(b.ln2_beta),
            encode_weights(config.moe, b.moe),
        )
        for b in weights.blocks
    )
    return FixedTransformer(
        enc(weights.embed),
        enc(weights.pos),
        blocks,
        enc(weights.lnf_gamma),
        enc(weights.lnf_beta),
        enc(weights.w_head),
    )


def onehot_fixed(config: TransformerConfig, ids: Ints) -> RingVec:
    """(T, vocab): enc(1) = 2^f at each token's id, 0 elsewhere (the client's embedding input)."""
    out = np.zeros((ids.size, config.vocab_size), dtype=np.uint64)
    out[np.arange(ids.size), ids] = np.uint64(1 << config.fxp.frac_bits)
    return out


def block_diagonal(blocks: list[RingVec]) -> RingVec:
    """The block-diagonal matrix of ``blocks`` (each (r, c)), zeros elsewhere: a public layout."""
    r, c = blocks[0].shape
    out = np.zeros((r * len(blocks), c * len(blocks)), dtype=np.uint64)
    for i, blk in enumerate(blocks):
        out[i * r : (i + 1) * r, i * c : (i + 1) * c] = blk
    return out


def mask_fixed(config: TransformerConfig, tokens: int) -> RingVec:
    """(T, H T): -enc(MASK_VALUE) at every head's masked (query, key) pair, else 0."""
    fxp = config.fxp
    masked = np.tile(causal_mask(tokens), (1, config.n_heads))
    neg = fxp.ring.neg(fxp_encode(fxp, MASK_VALUE))
    out: RingVec = np.where(masked, neg, np.uint64(0)).astype(np.uint64)
    return out


def attention_fixed(config: TransformerConfig, fb: FixedBlock, a: RingVec) -> RingVec:
    """Attention on the normalised tokens a (T, d), in the secure protocol's order.

    Implements spec §50.1.4 `attention_fixed` (spec/50-transformer.md#attention_fixed).
    """
    fxp, ring = config.fxp, config.fxp.ring
    t, d, h, dh = a.shape[0], config.d_model, config.n_heads, config.d_head
    # Step 1: Q (scaled), K, V in one product with the stacked weights.
    qkv = matmul_fixed(fxp, a, fb.w_qkv.T)
    q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
    # Step 2: all heads' scores, [Q_1 K_1^T, ..., Q_H K_H^T] (T, H T), by the block-diagonal K^T.
    heads = [slice(i * dh, (i + 1) * dh) for i in range(h)]
    scores = matmul_fixed(fxp, q, block_diagonal([np.ascontiguousarray(k[:, c].T) for c in heads]))
    # Step 3: the causal mask, a public addition.
    if config.causal:
        scores = ring.add(scores, mask_fixed(config, t))
    # Step 4: softmax over each (token, head) row of T scores.
    probs = softmax_fixed(fxp, scores.reshape(t * h, t)).reshape(t, h * t)
    # Step 5: [A_1 V_1, ..., A_H V_H] (T, d) by the block-diagonal V.
    out = matmul_fixed(fxp, probs, block_diagonal([np.ascontiguousarray(v[:, c]) for c in heads]))
    # Step 6: the output projection.
    return matmul_fixed(fxp, out, fb.w_o.T)


def block_fixed(config: TransformerConfig, fb: FixedBlock, x: RingVec) -> RingVec:
    """One pre-norm block: h = x + attn(LN1(x)); y = h + moe(LN2(h)).

    Implements spec §50.1.5 `block_fixed` (spec/50-transformer.md#block_fixed).
    """
    fxp, ring, eps = config.fxp, config.fxp.ring, float(config.ln_eps)
    # Step 1: attention on LN1(x), residual.
    h = ring.add(
        x, attention_fixed(config, fb, layernorm_fixed(fxp, x, fb.ln1_gamma, fb.ln1_beta, eps))
    )
    # Step 2: the MoE layer on LN2(h), residual.
    m = layernorm_fixed(fxp, h, fb.ln2_gamma, fb.ln2_beta, eps)
    return ring.add(h, moe_fixed(config.moe, fb.moe, m).y)


def transformer_fixed(
    config: TransformerConfig, weights: TransformerWeights | FixedTransformer, tokens: object
) -> RingVec:
    """The model in fixed point on token ids, bit-exact with the secure ``transformer``: the
    logits in fixed point, (1, n_classes) or (T, vocab).

    Implements spec §50.1.6 `transformer_fixed` (spec/50-transformer.md#transformer_fixed).
    """
    fxp, ring = config.fxp, config.fxp.ring
    fw = weights if isinstance(weights, FixedTransformer) else encode_transformer(config, weights)
    ids = _check_tokens(config, tokens)
    t = ids.size
    # Step 1: the embedding as the one-hot product (exact: trunc(2^f e) = e), plus the positions.
    x = ring.add(matmul_fixed(fxp, onehot_fixed(config, ids), fw.embed), fw.pos[:t])
    # Step 2: the blocks.
    for fb in fw.blocks:
        x = block_fixed(config, fb, x)
    # Step 3: pool, final norm, head.
    pooled = x[: config.pooled_rows(t)]
    z = layernorm_fixed(fxp, pooled, fw.lnf_gamma, fw.lnf_beta, float(config.ln_eps))
    return matmul_fixed(fxp, z, fw.w_head.T)


def transformer_digest(weights: TransformerWeights) -> str:
    """SHA-256 (hex) of every float64 array, little-endian, in the order of the dataclasses."""
    h = hashlib.sha256()

    def add(a: Floats | None) -> None:
        if a is not None:
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())

    add(weights.embed)
    add(weights.pos)
    for b in weights.blocks:
        for a in (b.ln1_gamma, b.ln1_beta, b.w_q, b.w_k, b.w_v, b.w_o, b.ln2_gamma, b.ln2_beta):
            add(a)
        m = b.moe
        for opt in (m.w_gate, m.w1, m.v, m.w2, m.shared_w1, m.shared_v, m.shared_w2):
            add(opt)
    for a in (weights.lnf_gamma, weights.lnf_beta, weights.w_head):
        add(a)
    return h.hexdigest()
