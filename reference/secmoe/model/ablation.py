"""The approximation budget: the fixed-point classifier with chosen approximations swapped for
their exact float versions (spec/60-accuracy.md §60.5).

With nothing swapped this is ``classifier_fixed`` bit for bit (a test checks it); each swap
replaces one approximation (the activation table, ``exp_fixed``, ``reciprocal_fixed``) by
``enc(exact(decode(input)))`` and keeps every other step, so the accuracy change it causes is
that approximation's share of the fixed-point error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode
from secmoe.model.classifier import (
    ClassifierConfig,
    ClassifierWeights,
    encode_head,
    head_fixed,
)
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import (
    FixedWeights,
    activation_fixed,
    encode_weights,
    exp_fixed,
    matmul_fixed,
    mul_fixed,
    reciprocal_fixed,
)
from secmoe.model.piecewise import gelu, relu, silu
from secmoe.model.plain import topk_order

Floats = NDArray[np.float64]
APPROXIMATIONS = ("activation", "exp", "reciprocal")
EXACT_ACTIVATIONS: dict[str, Callable[[Floats], Floats]] = {
    "geglu": gelu,
    "swiglu": silu,
    "relu": relu,
}


def _exact(fxp: FixedPoint, fn: Callable[[Floats], Floats], a: RingVec) -> RingVec:
    """enc(fn(decode(a))): the exact function on the decoded input, re-encoded."""
    return fxp_encode(fxp, fn(fxp.decode(a)))


def softmax_ablated(fxp: FixedPoint, logits: RingVec, exact: frozenset[str]) -> RingVec:
    """``softmax_fixed`` (§6.4.3) with ``exp`` and/or ``reciprocal`` exact."""
    ring = fxp.ring
    signed = ring.to_signed(logits)
    z = ring.sub(logits, ring.from_int(signed.max(axis=-1, keepdims=True)))
    e = _exact(fxp, np.exp, z) if "exp" in exact else exp_fixed(fxp, z)
    s = ring.reduce(np.asarray(np.sum(e, axis=-1, keepdims=True, dtype=np.uint64)))
    if "reciprocal" in exact:
        r = _exact(fxp, lambda v: 1.0 / v, s)
    else:
        r = reciprocal_fixed(fxp, s, logits.shape[-1])
    return mul_fixed(fxp, e, r)


def moe_fixed_ablated(
    config: MoEConfig, fw: FixedWeights, x: RingVec, exact: frozenset[str]
) -> RingVec:
    """``moe_fixed``'s output (§6.3.3) with the chosen approximations exact (no shared experts)."""
    config.require_plain("the ablated model", baseline=True)
    fxp, ring, k = config.fxp, config.fxp.ring, config.top_k
    logits = matmul_fixed(fxp, x, fw.w_gate)
    experts = topk_order(ring.to_signed(logits), k)
    if config.gate_norm == "softmax":
        gates = np.take_along_axis(softmax_ablated(fxp, logits, exact), experts, axis=-1)
    else:
        picked = np.take_along_axis(logits, experts, axis=-1)
        gates = softmax_ablated(fxp, picked, exact)
    y = np.zeros_like(x)
    for slot in range(k):
        for e in range(config.n_experts):
            idx = np.nonzero(experts[:, slot] == e)[0]
            if idx.size == 0:
                continue
            xe = x[idx]
            u = matmul_fixed(fxp, xe, fw.w1[e].T)
            if "activation" in exact:
                a = _exact(fxp, EXACT_ACTIVATIONS[config.expert_kind], u)
            else:
                a = activation_fixed(config.expert_kind, fxp, u)
            if config.gated:
                assert fw.v is not None
                a = mul_fixed(fxp, a, matmul_fixed(fxp, xe, fw.v[e].T))
            out = matmul_fixed(fxp, a, fw.w2[e].T)
            g = np.repeat(gates[idx, slot][:, None], config.d_model, axis=1)
            y[idx] = ring.add(y[idx], mul_fixed(fxp, g, out))
    return y


def classifier_fixed_ablated(
    config: ClassifierConfig, weights: ClassifierWeights, x: RingVec, exact: frozenset[str]
) -> RingVec:
    """``classifier_fixed`` with the approximations in ``exact`` swapped for exact versions.

    Implements spec §60.5.1 `classifier_fixed_ablated` (spec/60-accuracy.md#classifier_fixed_ablated).
    """
    # Step 1: the layer with the swaps (``exact`` empty: moe_fixed itself).
    y = moe_fixed_ablated(config.moe, encode_weights(config.moe, weights.moe), x, exact)
    # Step 2: the residual and the head, unchanged.
    return head_fixed(config, encode_head(config, weights), x, y)
