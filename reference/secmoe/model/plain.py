"""The float64 reference MoE layer (spec/06-models.md#moe_float)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig, MoEWeights
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

    Implements spec §6.3.1 `topk_order` (spec/06-models.md#topk_order).
    """
    # Step 1: a stable ascending sort of an order-reversed key keeps equal keys in index order. For
    # integers ~a = -a - 1 reverses the order without the overflow of -(-2^63).
    if keys.dtype.kind == "i":
        reversed_keys: NDArray[np.float64] | NDArray[np.int64] = np.invert(keys.astype(np.int64))
    else:
        reversed_keys = -keys
    order = np.argsort(reversed_keys, axis=-1, kind="stable")
    # Step 2: the first k.
    out: Ints = order[..., :k].astype(np.int64)
    return out


def ffn_float(config: MoEConfig, w1: Floats, v: Floats | None, w2: Floats, x: Floats) -> Floats:
    """One expert on tokens x (T, d_model): W2 (act(W1 x) * (V x)), or W2 relu(W1 x)."""
    u = x @ w1.T
    if config.expert_kind == "relu":
        h = relu(u)
    else:
        if v is None:
            raise SpecError(f"{config.expert_kind} experts need V")
        act = gelu(u) if config.expert_kind == "geglu" else silu(u)
        h = act * (x @ v.T)
    out: Floats = h @ w2.T
    return out


def softmax(z: Floats) -> Floats:
    """Softmax over the last axis (max subtracted first)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: Floats = e / e.sum(axis=-1, keepdims=True)
    return out


def route_float(config: MoEConfig, weights: MoEWeights, x: Floats) -> Routing:
    """Router logits x @ w_gate, top-k (lower index wins ties) and gates per ``gate_norm``."""
    logits = x @ weights.w_gate
    experts = topk_order(logits, config.top_k)
    if config.gate_norm == "softmax":
        gates = np.take_along_axis(softmax(logits), experts, axis=-1)
    else:
        gates = softmax(np.take_along_axis(logits, experts, axis=-1))
    return Routing(experts, gates)


def moe_float(config: MoEConfig, weights: MoEWeights, x: Floats) -> tuple[Floats, Routing]:
    """The MoE layer in float64 with exact activations: (output (T, d_model), routing).

    Implements spec §6.3.2 `moe_float` (spec/06-models.md#moe_float).
    """
    weights.check(config)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != config.d_model or x.shape[0] < 1:
        raise SpecError(f"x must have shape (tokens >= 1, {config.d_model}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SpecError("x has NaN or infinite entries")
    # Step 1-3: logits, top-k, gates.
    routing = route_float(config, weights, x)
    # Step 4: gated sum of the selected experts, in slot order, then the shared experts.
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        for slot in range(config.top_k):
            i = int(routing.experts[t, slot])
            v = None if weights.v is None else weights.v[i]
            out = ffn_float(config, weights.w1[i], v, weights.w2[i], x[t : t + 1])[0]
            y[t] += routing.gates[t, slot] * out
    for j in range(config.n_shared_experts):
        sv = None if weights.shared_v is None else weights.shared_v[j]
        y += ffn_float(config, weights.shared_w1[j], sv, weights.shared_w2[j], x)
    return y, routing
