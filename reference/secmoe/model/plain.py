"""The float64 reference MoE layer (spec/06-models.md#moe_float)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.model.config import ExpertWeights, MoEConfig, MoEWeights
from secmoe.model.piecewise import gelu, relu, silu

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True)
class Routing:
    """Per token: the selected experts (best first) and their gate values."""

    experts: Ints  # (T, k)
    gates: Floats  # (T, k)


def topk_order(keys: NDArray[np.float64] | NDArray[np.int64], k: int) -> Ints:
    """Indices of the k largest keys per row, best first; ties go to the lower expert index.

    ``keys`` must be order-preserving for the values compared (floats, or integers).
    """
    # A stable sort of the negated keys keeps equal keys in index order.
    order = np.argsort(-keys, axis=-1, kind="stable")
    out: Ints = order[..., :k].astype(np.int64)
    return out


def expert_float(config: MoEConfig, ex: ExpertWeights, x: Floats) -> Floats:
    """One expert on tokens x (T, d_model): W2 (act(W1 x) * (V x)), or W2 relu(W1 x)."""
    u = x @ ex.w1.T
    if config.expert_kind == "relu":
        h = relu(u)
    else:
        assert ex.v is not None
        act = gelu(u) if config.expert_kind == "geglu" else silu(u)
        h = act * (x @ ex.v.T)
    out: Floats = h @ ex.w2.T
    return out


def softmax(z: Floats) -> Floats:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: Floats = e / e.sum(axis=-1, keepdims=True)
    return out


def route_float(config: MoEConfig, weights: MoEWeights, x: Floats) -> Routing:
    """Router logits, top-k (lower index wins ties) and gates per ``config.gate_norm``."""
    logits = x @ weights.w_gate.T
    experts = topk_order(logits, config.top_k)
    picked = np.take_along_axis(logits, experts, axis=-1)
    if config.gate_norm == "softmax":
        gates = np.take_along_axis(softmax(logits), experts, axis=-1)
    else:
        gates = softmax(picked)
    return Routing(experts, gates)


def moe_float(config: MoEConfig, weights: MoEWeights, x: Floats) -> tuple[Floats, Routing]:
    """The MoE layer in float64 with exact activations.

    Implements spec §6.3.1 `moe_float` (spec/06-models.md#moe_float).
    """
    weights.check(config)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != config.d_model:
        raise SpecError(f"x must have shape (tokens, {config.d_model}), got {x.shape}")
    routing = route_float(config, weights, x)
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        for slot in range(config.top_k):
            ex = weights.experts[int(routing.experts[t, slot])]
            y[t] += routing.gates[t, slot] * expert_float(config, ex, x[t : t + 1])[0]
    for ex in weights.shared:
        y += expert_float(config, ex, x)
    return y, routing
