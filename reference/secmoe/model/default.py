"""The built-in default model, generated deterministically from a fixed seed (spec/06-models.md#default_weights)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from numpy.typing import NDArray

from secmoe.model.config import ExpertWeights, MoEConfig, MoEWeights
from secmoe.randomness import Prg, dst

Floats = NDArray[np.float64]
DEFAULT_SEED = hashlib.sha256(b"secmoe/v1/default-model").digest()


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
    n = math.prod(shape)
    words = Prg(seed, dst("model.default", name)).next_u64(n)
    u = (words >> np.uint64(11)).astype(np.float64) * 2.0**-53
    out: Floats = ((2.0 * u - 1.0) * scale).reshape(shape)
    return out


def fan_in_scale(fan_in: int) -> float:
    """2^-ceil(log2(fan_in) / 2): about 1/sqrt(fan_in), and a power of two."""
    return 2.0 ** -math.ceil(math.log2(fan_in) / 2)


def default_weights(config: MoEConfig | None = None, seed: bytes = DEFAULT_SEED) -> MoEWeights:
    """Weights of ``config`` (default: :func:`default_config`) from ``seed``.

    Implements spec §6.5.1 `default_weights` (spec/06-models.md#default_weights).
    """
    config = config or default_config()
    d = config.d_model

    def expert(prefix: str, ff: int) -> ExpertWeights:
        return ExpertWeights(
            w1=uniform_tensor(seed, f"{prefix}/w1", (ff, d), fan_in_scale(d)),
            v=uniform_tensor(seed, f"{prefix}/v", (ff, d), fan_in_scale(d))
            if config.gated
            else None,
            w2=uniform_tensor(seed, f"{prefix}/w2", (d, ff), fan_in_scale(ff)),
        )

    return MoEWeights(
        w_gate=uniform_tensor(seed, "router", (config.n_experts, d), fan_in_scale(d)),
        experts=tuple(expert(f"expert/{i}", config.d_ff) for i in range(config.n_experts)),
        shared=tuple(
            expert(f"shared/{j}", config.shared_ff) for j in range(config.n_shared_experts)
        ),
    )


def default_inputs(
    config: MoEConfig | None = None, tokens: int = 4, seed: bytes = DEFAULT_SEED
) -> Floats:
    """Deterministic inputs (tokens, d_model), uniform in [-2, 2): tensor name ``inputs``."""
    config = config or default_config()
    return uniform_tensor(seed, "inputs", (tokens, config.d_model), 2.0)
