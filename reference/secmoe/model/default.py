"""The built-in default model, generated deterministically from a fixed seed (spec/06-models.md#default_weights)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig, MoEWeights
from secmoe.randomness import SEED_BYTES, Prg, dst

Floats = NDArray[np.float64]
# The 32-byte seed of the default model: SHA-256 of an ASCII string, so that anyone can
# recompute it (its hex is printed in spec §6.5).
DEFAULT_SEED = hashlib.sha256(b"secmoe/v1/default-model").digest()
INPUT_SCALE = 2.0  # default inputs are uniform in [-2, 2)
# The order in which weights_digest hashes the tensors (also the tensor names of §6.5.1).
TENSOR_NAMES = (
    "router",
    "experts/w1",
    "experts/v",
    "experts/w2",
    "shared/w1",
    "shared/v",
    "shared/w2",
    "router/bias",
    "router/score_bias",
    "experts/b1",
    "experts/bv",
    "experts/b2",
    "shared/gate",
)
# Scale of the routing-family vectors: about the spread of published router biases.
BIAS_SCALE = 0.25


def default_config() -> MoEConfig:
    """d_model 64, d_ff 128, 8 GeGLU experts, top-1, softmax gate (Switch-style)."""
    return MoEConfig(
        d_model=64, d_ff=128, n_experts=8, top_k=1, expert_kind="geglu", gate_norm="softmax"
    )


def uniform_tensor(seed: bytes, name: str, shape: tuple[int, ...], scale: float) -> Floats:
    """Entries (2 u - 1) * scale with u = (w >> 11) / 2^53, w the PRG's u64 words in order.

    ``Prg(seed, dst("model.default", name))``; every step is exact in binary64 when ``scale`` is
    a power of two.
    """
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise SpecError(f"the model seed must be {SEED_BYTES} bytes")
    n = math.prod(shape)
    # Step 1: the tensor's own stream.
    prg = Prg(seed, dst("model.default", name))
    # Step 2: one little-endian u64 word per entry, row-major.
    words = prg.next_u64(n)
    # Step 3: the top 53 bits as u in [0, 1), then (2u - 1) * scale; the same operations in the
    # same order, in place (an expert stack can be gigabytes).
    words >>= np.uint64(11)
    out: Floats = words.astype(np.float64)
    del words
    out *= 2.0**-53
    out *= 2.0
    out -= 1.0
    out *= scale
    return out.reshape(shape)


def fan_in_scale(fan_in: int) -> float:
    """2^-ceil(log2(fan_in) / 2): about 1/sqrt(fan_in), and a power of two."""
    return 2.0 ** -math.ceil(math.log2(fan_in) / 2)


def default_weights(config: MoEConfig | None = None, seed: bytes = DEFAULT_SEED) -> MoEWeights:
    """Weights of ``config`` (default: :func:`default_config`) from a 32-byte ``seed``.

    Implements spec §6.5.1 `default_weights` (spec/06-models.md#default_weights).
    """
    config = config or default_config()
    d, n, ff = config.d_model, config.n_experts, config.d_ff
    ns, sff = config.n_shared_experts, config.shared_ff

    def tensor(name: str, shape: tuple[int, ...], fan_in: int) -> Floats:
        return uniform_tensor(seed, name, shape, fan_in_scale(fan_in))

    # Each tensor follows steps 1-3 of the spec in uniform_tensor; the router has fan-in d_model.
    w_gate = tensor("router", (d, n), d)
    # Routed experts: W1 and V have fan-in d_model, W2 fan-in d_ff.
    w1 = tensor("experts/w1", (n, ff, d), d)
    v = tensor("experts/v", (n, ff, d), d) if config.gated else None
    w2 = tensor("experts/w2", (n, d, ff), ff)
    # Shared experts likewise (empty arrays when there are none).
    sw1 = tensor("shared/w1", (ns, sff, d), d)
    sv = tensor("shared/v", (ns, sff, d), d) if config.gated else None
    sw2 = tensor("shared/w2", (ns, d, sff), sff)
    # The family arrays (spec §6.1.1, second table), present exactly when their flags are set.
    bias = config.expert_bias
    return MoEWeights(
        w_gate,
        w1,
        v,
        w2,
        sw1,
        sv,
        sw2,
        b_gate=uniform_tensor(seed, "router/bias", (n,), BIAS_SCALE) if config.router_bias else None,
        score_bias=(
            uniform_tensor(seed, "router/score_bias", (n,), BIAS_SCALE)
            if config.score_bias
            else None
        ),
        b1=tensor("experts/b1", (n, ff), d) if bias else None,
        bv=tensor("experts/bv", (n, ff), d) if bias and config.gated else None,
        b2=tensor("experts/b2", (n, d), ff) if bias else None,
        shared_gate=tensor("shared/gate", (d,), d) if config.shared_gate else None,
    )


def default_inputs(
    config: MoEConfig | None = None, tokens: int = 4, seed: bytes = DEFAULT_SEED
) -> Floats:
    """Deterministic inputs (tokens, d_model), uniform in [-2, 2): tensor name ``inputs``."""
    config = config or default_config()
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise SpecError(f"tokens must be a positive integer, got {tokens!r}")
    return uniform_tensor(seed, "inputs", (tokens, config.d_model), INPUT_SCALE)


def weights_digest(weights: MoEWeights) -> str:
    """SHA-256 (hex) of the tensors in :data:`TENSOR_NAMES` order, each as float64
    little-endian bytes in row-major order (a missing ``v`` contributes nothing)."""
    h = hashlib.sha256()
    arrays = (
        weights.w_gate,
        weights.w1,
        weights.v,
        weights.w2,
        weights.shared_w1,
        weights.shared_v,
        weights.shared_w2,
        weights.b_gate,
        weights.score_bias,
        weights.b1,
        weights.bv,
        weights.b2,
        weights.shared_gate,
    )
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()
