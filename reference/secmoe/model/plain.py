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


def gptoss_glu(config: MoEConfig, g: Floats, u: Floats) -> Floats:
    """GPT-OSS's clamped SwiGLU: ``(clip(u, -L, L) + 1) * g' * sigmoid(alpha g')``, ``g' =
    min(g, L)`` (spec §6.1.1, ``expert_kind`` ``gptoss``)."""
    limit, alpha = config.swiglu_limit, config.swiglu_alpha
    gc = np.minimum(g, limit)
    out: Floats = (np.clip(u, -limit, limit) + 1.0) * gc * sigmoid(alpha * gc)
    return out


def ffn_float(
    config: MoEConfig,
    w1: Floats,
    v: Floats | None,
    w2: Floats,
    x: Floats,
    biases: tuple[Floats, Floats | None, Floats] | None = None,
) -> Floats:
    """One expert on tokens x (T, d_model): W2 (act(W1 x) * (V x)), or W2 relu(W1 x).

    ``biases`` = (b1, bv, b2) adds the expert biases of ``expert_bias`` (GPT-OSS) to W1 x, V x
    and the output."""
    b1, bv, b2 = biases if biases is not None else (None, None, None)
    u = x @ w1.T if b1 is None else x @ w1.T + b1
    if config.expert_kind == "relu":
        h = relu(u)
    else:
        if v is None:
            raise SpecError(f"{config.expert_kind} experts need V")
        up = x @ v.T if bv is None else x @ v.T + bv
        if config.expert_kind == "gptoss":
            h = gptoss_glu(config, u, up)
        else:
            act = gelu(u) if config.expert_kind == "geglu" else silu(u)
            h = act * up
    out: Floats = h @ w2.T if b2 is None else h @ w2.T + b2
    return out


def softmax(z: Floats) -> Floats:
    """Softmax over the last axis (max subtracted first)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: Floats = e / e.sum(axis=-1, keepdims=True)
    return out


def sigmoid(z: Floats) -> Floats:
    """The logistic function 1 / (1 + exp(-z)), without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    out: Floats = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def selection_keys(config: MoEConfig, weights: MoEWeights, z: Floats) -> Floats:
    """The keys top-k selects on (spec §6.3.2 steps 2-3): the logits themselves where the score
    is a monotone map of them, else the scores plus ``score_bias``, with the experts outside the
    ``topk_groups`` best groups set to 0 (as the published DeepSeek/GLM blocks do)."""
    if not config.score_bias and config.n_groups == 1:
        return z
    scores = sigmoid(z) if config.sigmoid_scoring else softmax(z)
    keys: Floats = scores if weights.score_bias is None else scores + weights.score_bias
    if config.n_groups == 1:
        return keys
    t, n = keys.shape
    grouped = keys.reshape(t, config.n_groups, n // config.n_groups)
    if config.group_score == "max":
        group_keys = grouped.max(axis=-1)
    else:
        group_keys = np.sort(grouped, axis=-1)[..., -2:].sum(axis=-1)
    chosen = topk_order(group_keys, config.topk_groups)
    keep = np.zeros((t, config.n_groups), dtype=bool)
    np.put_along_axis(keep, chosen, True, axis=-1)
    out: Floats = np.where(keep[:, :, None], grouped, 0.0).reshape(t, n)
    return out


def route_float(config: MoEConfig, weights: MoEWeights, x: Floats) -> Routing:
    """Router logits, top-k (lower index wins ties) and gates per ``gate_norm`` (spec §6.3.2)."""
    z = x @ weights.w_gate
    if weights.b_gate is not None:
        z = z + weights.b_gate
    experts = topk_order(selection_keys(config, weights, z), config.top_k)
    chosen = np.take_along_axis(z, experts, axis=-1)
    if config.gate_norm == "softmax":
        gates = np.take_along_axis(softmax(z), experts, axis=-1)
    elif config.gate_norm == "softmax_topk":
        gates = softmax(chosen)
    else:
        gates = sigmoid(chosen)
        if config.gate_norm == "sigmoid_topk":
            gates = gates / gates.sum(axis=-1, keepdims=True)
    return Routing(experts, gates * config.routed_scaling)


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
    # Steps 1-4: logits, selection keys, top-k, gates.
    routing = route_float(config, weights, x)
    # Step 5: gated sum of the selected experts, in slot order (Llama4 gates the input instead).
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        for slot in range(config.top_k):
            i = int(routing.experts[t, slot])
            v = None if weights.v is None else weights.v[i]
            biases = _expert_biases(weights, i)
            g = routing.gates[t, slot]
            xt = g * x[t : t + 1] if config.gate_on_input else x[t : t + 1]
            out = ffn_float(config, weights.w1[i], v, weights.w2[i], xt, biases)[0]
            y[t] += out if config.gate_on_input else g * out
    # Step 6: the shared experts, scaled by sigmoid(x . shared_gate) where the layer has that gate.
    shared = np.zeros_like(x)
    for j in range(config.n_shared_experts):
        sv = None if weights.shared_v is None else weights.shared_v[j]
        shared += ffn_float(config, weights.shared_w1[j], sv, weights.shared_w2[j], x)
    if weights.shared_gate is not None:
        shared = shared * sigmoid(x @ weights.shared_gate)[:, None]
    return y + shared, routing


def _expert_biases(weights: MoEWeights, i: int) -> tuple[Floats, Floats | None, Floats] | None:
    if weights.b1 is None or weights.b2 is None:
        return None
    return weights.b1[i], None if weights.bv is None else weights.bv[i], weights.b2[i]
