"""The bit-exact fixed-point reference MoE layer (spec/06-models.md#moe_fixed).

Every value is a ring element with f fractional bits; every product of two fixed-point values is
followed by the exact truncation ``fxp_trunc`` (floor). The secure protocol performs the same
operations in the same order; its secure truncations may each differ from this oracle by one
unit in the last place, which is the error budget the secure tests use. Each non-linear step is
its own function so that a later protocol can be matched step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig, MoEWeights
from secmoe.model.piecewise import piecewise_fixed
from secmoe.model.plain import topk_order
from secmoe.model.tables import GELU, RELU, SILU

Ints = NDArray[np.int64]
EXP_ITERATIONS = 5  # exp(x) ~ (1 + x / 2^5)^(2^5)
EXP_CLIP = -14.0  # exp(x) = 0 below this


@dataclass(frozen=True)
class FixedExpert:
    w1: RingVec
    v: RingVec | None
    w2: RingVec


@dataclass(frozen=True)
class FixedWeights:
    """The weights encoded with ``fxp_encode`` (same layouts as :class:`MoEWeights`)."""

    w_gate: RingVec
    experts: tuple[FixedExpert, ...]
    shared: tuple[FixedExpert, ...]


def encode_weights(config: MoEConfig, weights: MoEWeights) -> FixedWeights:
    weights.check(config)
    fxp = config.fxp

    def enc(ex: object) -> FixedExpert:
        from secmoe.model.config import ExpertWeights

        assert isinstance(ex, ExpertWeights)
        return FixedExpert(
            fxp_encode(fxp, ex.w1),
            None if ex.v is None else fxp_encode(fxp, ex.v),
            fxp_encode(fxp, ex.w2),
        )

    return FixedWeights(
        fxp_encode(fxp, weights.w_gate),
        tuple(enc(e) for e in weights.experts),
        tuple(enc(e) for e in weights.shared),
    )


def linear_fixed(fxp: FixedPoint, x: RingVec, w: RingVec) -> RingVec:
    """trunc(x W^T): x (T, d_in), W (d_out, d_in), ring product then one truncation per output."""
    return fxp_trunc(fxp, fxp.ring.matmul(x, np.ascontiguousarray(w.T)))


def mul_fixed(fxp: FixedPoint, a: RingVec, b: RingVec) -> RingVec:
    """Element-wise fixed-point product: trunc(a * b)."""
    return fxp_trunc(fxp, fxp.ring.mul(a, b))


def expert_fixed(config: MoEConfig, ex: FixedExpert, x: RingVec) -> RingVec:
    """One expert in fixed point: u = trunc(x W1^T); h = trunc(act(u) * trunc(x V^T)) (or
    h = relu(u)); out = trunc(h W2^T). act is the piecewise table of the expert kind."""
    fxp = config.fxp
    u = linear_fixed(fxp, x, ex.w1)
    if config.expert_kind == "relu":
        h = piecewise_fixed(RELU, fxp, u)
    else:
        assert ex.v is not None
        table = GELU if config.expert_kind == "geglu" else SILU
        h = mul_fixed(fxp, piecewise_fixed(table, fxp, u), linear_fixed(fxp, x, ex.v))
    return linear_fixed(fxp, h, ex.w2)


def exp_fixed(fxp: FixedPoint, z: RingVec) -> RingVec:
    """BumbleBee's exp for z <= 0: 0 if z < -14, else t = trunc_5(z) + 1, squared 5 times.

    Implements spec §6.4.1 `exp_fixed` (spec/06-models.md#exp_fixed).
    """
    ring = fxp.ring
    # Step 1: t = z / 2^5 + 1 (an exact floor shift by 5 bits, then adding 1.0).
    t = ring.add(fxp_trunc(fxp, z, EXP_ITERATIONS), fxp_encode(fxp, 1.0))
    # Step 2: five squarings, each truncated by f.
    for _ in range(EXP_ITERATIONS):
        t = mul_fixed(fxp, t, t)
    # Step 3: clip below -14.
    below = ring.to_signed(z) < ring.to_signed(fxp_encode(fxp, EXP_CLIP))
    return np.where(below, np.uint64(0), t).astype(np.uint64)


def reciprocal_fixed(fxp: FixedPoint, s: RingVec) -> RingVec:
    """floor(2^(2f) / s) for s >= 1.0 (an exact division; the secure protocol's reciprocal
    iteration will be specified against this value with its own error bound).

    Implements spec §6.4.2 `reciprocal_fixed` (spec/06-models.md#reciprocal_fixed).
    """
    signed = fxp.ring.to_signed(s)
    if np.any(signed < (1 << fxp.frac_bits)):
        raise SpecError("reciprocal_fixed needs s >= 1.0")
    return fxp.ring.from_int(np.int64(1 << (2 * fxp.frac_bits)) // signed)


def softmax_fixed(fxp: FixedPoint, logits: RingVec) -> RingVec:
    """Softmax over the last axis: subtract the row max, exp_fixed, sum, reciprocal, multiply.

    Implements spec §6.4.3 `softmax_fixed` (spec/06-models.md#softmax_fixed).
    """
    ring = fxp.ring
    signed = ring.to_signed(logits)
    z = ring.sub(logits, ring.from_int(signed.max(axis=-1, keepdims=True)))
    e = exp_fixed(fxp, z)
    s: RingVec = ring.reduce(np.asarray(np.sum(e, axis=-1, keepdims=True, dtype=np.uint64)))
    return mul_fixed(fxp, e, reciprocal_fixed(fxp, s))


def route_fixed(config: MoEConfig, fw: FixedWeights, x: RingVec) -> tuple[Ints, RingVec]:
    """Logits trunc(x Wg^T); top-k on signed logits (lower index wins ties); gates."""
    fxp = config.fxp
    logits = linear_fixed(fxp, x, fw.w_gate)
    signed = fxp.ring.to_signed(logits)
    experts = topk_order(signed, config.top_k)
    if config.gate_norm == "softmax":
        gates = np.take_along_axis(softmax_fixed(fxp, logits), experts, axis=-1)
    else:
        gates = softmax_fixed(fxp, np.take_along_axis(logits, experts, axis=-1))
    return experts, gates


def moe_fixed(
    config: MoEConfig, weights: MoEWeights | FixedWeights, x: RingVec
) -> tuple[RingVec, Ints, RingVec]:
    """The MoE layer in fixed point: (output, selected experts, gates), all exact.

    Implements spec §6.3.2 `moe_fixed` (spec/06-models.md#moe_fixed).
    """
    fw = encode_weights(config, weights) if isinstance(weights, MoEWeights) else weights
    fxp = config.fxp
    x = fxp.ring.check(np.asarray(x), "x")
    if x.ndim != 2 or x.shape[1] != config.d_model:
        raise SpecError(f"x must have shape (tokens, {config.d_model}), got {x.shape}")
    # Step 1: route.
    experts, gates = route_fixed(config, fw, x)
    # Step 2: each token's selected experts, scaled by their gates, in slot order.
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        for slot in range(config.top_k):
            out = expert_fixed(config, fw.experts[int(experts[t, slot])], x[t : t + 1])[0]
            y[t] = fxp.ring.add(y[t], mul_fixed(fxp, np.full_like(out, gates[t, slot]), out))
    # Step 3: shared experts, weight 1.
    for ex in fw.shared:
        y = fxp.ring.add(y, expert_fixed(config, ex, x))
    return y, experts, gates
