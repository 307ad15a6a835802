"""The bit-exact fixed-point reference MoE layer (spec/06-models.md#moe_fixed).

Every value is a ring element with f fractional bits; every product of two fixed-point values is
followed by the exact truncation ``fxp_trunc`` (floor of the signed value). The secure protocol
performs the same operations in the same order with exact secure truncations (spec §30.4), so
its result equals this oracle's bit for bit. Each non-linear step is its own function so that a
protocol can be matched step by step (the reciprocal is the mirror of the secure iteration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError
from secmoe.model.config import ExpertKind, MoEConfig, MoEWeights
from secmoe.model.norm import (
    check_bound,
    check_fxp,
    pow2_fixed,
    quadratic_fixed,
    segment_exponent,
)
from secmoe.model.piecewise import GPTOSS_ALPHA, GPTOSS_LIMIT, PiecewiseTable, piecewise_fixed
from secmoe.model.plain import topk_order
from secmoe.model.tables import GELU, GPTOSS_ACT, GPTOSS_CLIP, RELU, SIGMOID, SILU

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
EXP_ITERATIONS = 5  # exp(x) ~ (1 + x / 2^5)^(2^5)
EXP_CLIP = -14.0  # exp(x) is taken as 0 below this
ACTIVATION_TABLES: dict[ExpertKind, PiecewiseTable] = {"geglu": GELU, "swiglu": SILU, "relu": RELU}


@dataclass(frozen=True)
class FixedWeights:
    """The weights encoded with ``fxp_encode`` (same names and shapes as :class:`MoEWeights`)."""

    w_gate: RingVec
    w1: RingVec
    v: RingVec | None
    w2: RingVec
    shared_w1: RingVec
    shared_v: RingVec | None
    shared_w2: RingVec
    b_gate: RingVec | None = None  # with router_bias
    score_bias: RingVec | None = None  # with score_bias
    b1: RingVec | None = None  # with expert_bias
    bv: RingVec | None = None
    b2: RingVec | None = None
    shared_gate: RingVec | None = None  # with shared_gate

    def expert_biases(self, i: int) -> tuple[RingVec, RingVec | None, RingVec] | None:
        """Routed expert i's (b1, bv, b2) with ``expert_bias``, else None."""
        if self.b1 is None or self.b2 is None:
            return None
        return self.b1[i], None if self.bv is None else self.bv[i], self.b2[i]


@dataclass(frozen=True)
class FixedOutput:
    """The fixed-point layer's result: ring values and their decodings."""

    y: RingVec  # (T, d_model)
    experts: Ints  # (T, k), best first
    gates: RingVec  # (T, k)
    y_decoded: Floats
    gates_decoded: Floats


def encode_weights(config: MoEConfig, weights: MoEWeights) -> FixedWeights:
    """``fxp_encode`` every weight array (after checking the shapes against ``config``)."""
    config.require_plain("the fixed-point model")
    weights.check(config)
    fxp = config.fxp

    def enc(a: Floats | None) -> RingVec | None:
        return None if a is None else fxp_encode(fxp, a)

    return FixedWeights(
        fxp_encode(fxp, weights.w_gate),
        fxp_encode(fxp, weights.w1),
        enc(weights.v),
        fxp_encode(fxp, weights.w2),
        fxp_encode(fxp, weights.shared_w1),
        enc(weights.shared_v),
        fxp_encode(fxp, weights.shared_w2),
        b_gate=enc(weights.b_gate),
        score_bias=enc(weights.score_bias),
        b1=enc(weights.b1),
        bv=enc(weights.bv),
        b2=enc(weights.b2),
        shared_gate=enc(weights.shared_gate),
    )


# The margin for float64 rounding in the bound below (sums of up to 2^20 terms).
_WRAP_MARGIN = 1.0 - 2.0**-30


def check_no_wrap(fxp: FixedPoint, a: RingVec, b: RingVec, *, matmul: bool) -> None:
    """SpecError unless every product before truncation is below ``2^(l-2)`` in magnitude.

    The bound is ``|a| @ |b|`` (``|a| * |b|`` element-wise) on the signed values, computed in
    float64: below ``2^(l-2)`` the ring product equals the integer one (nothing wrapped) and the
    secure truncation's precondition holds (spec §30.4), so model and protocol agree exactly.
    Implements the range rule of spec §6.3.0 (spec/06-models.md#630-fixed-point-ranges).
    """
    ring = fxp.ring
    fa = np.abs(ring.to_signed(np.asarray(a)).astype(np.float64))
    fb = np.abs(ring.to_signed(np.asarray(b)).astype(np.float64))
    bound = fa @ fb if matmul else fa * fb
    limit = 2.0 ** (ring.bits - 2)
    if bound.size and float(bound.max()) >= limit * _WRAP_MARGIN:
        raise SpecError(
            f"a fixed-point product before truncation may reach 2^{ring.bits - 2} "
            f"(bound 2^{np.log2(float(bound.max())):.1f}): the inputs are outside the range where "
            "the model's arithmetic is exact (spec §6.3.0)"
        )


def matmul_fixed(fxp: FixedPoint, a: RingVec, b: RingVec) -> RingVec:
    """trunc(a @ b): the exact ring product, then one truncation per output element."""
    check_no_wrap(fxp, a, b, matmul=True)
    return fxp_trunc(fxp, fxp.ring.matmul(a, np.ascontiguousarray(b)))


def mul_fixed(fxp: FixedPoint, a: RingVec, b: RingVec) -> RingVec:
    """Element-wise fixed-point product: trunc(a * b)."""
    check_no_wrap(fxp, a, b, matmul=False)
    return fxp_trunc(fxp, fxp.ring.mul(a, b))


def activation_fixed(kind: ExpertKind, fxp: FixedPoint, u: RingVec) -> RingVec:
    """The expert kind's activation: its piecewise table evaluated by ``piecewise_fixed``."""
    return piecewise_fixed(ACTIVATION_TABLES[kind], fxp, u)


def expert_tables(config: MoEConfig) -> tuple[PiecewiseTable, PiecewiseTable | None]:
    """The table of the expert kind's activation and, for ``gptoss``, the table of its up half
    c(u) (spec §6.3.4 step 3); ``SpecError`` naming the field unless ``swiglu_alpha`` and
    ``swiglu_limit`` are the values the gptoss tables are fitted for."""
    if config.expert_kind != "gptoss":
        return ACTIVATION_TABLES[config.expert_kind], None
    for name, fitted in (("swiglu_alpha", GPTOSS_ALPHA), ("swiglu_limit", GPTOSS_LIMIT)):
        if getattr(config, name) != fitted:
            raise SpecError(
                f"MoEConfig.{name} = {getattr(config, name)!r}: the gptoss tables are fitted "
                f"for swiglu_alpha = {GPTOSS_ALPHA} and swiglu_limit = {GPTOSS_LIMIT} only "
                "(spec §6.2, Tables)"
            )
    return GPTOSS_ACT, GPTOSS_CLIP


def append_column(a: RingVec, column: RingVec | int) -> RingVec:
    """``a`` with one more entry on its last axis: ``column`` (one value per row, or one value
    for all). With a token column ``enc(1)`` and a bias as the weights' column, a product
    ``mm`` adds the bias exactly (spec §6.3.4 step 1)."""
    arr = np.asarray(a, dtype=np.uint64)
    values = np.asarray(column, dtype=np.uint64)
    col = np.broadcast_to(values[..., None] if values.ndim else values, (*arr.shape[:-1], 1))
    return np.concatenate([arr, col], axis=-1)


def hidden_fixed(config: MoEConfig, u: RingVec, g: RingVec | None) -> RingVec:
    """The hidden vector from the first products: ``act(u)`` (``relu``), ``mul(act(u), g)``, or
    for ``gptoss`` ``mul(a(u), c(g))`` (spec §6.3.4 steps 2-3)."""
    fxp = config.fxp
    act, up = expert_tables(config)
    a = piecewise_fixed(act, fxp, u)
    if g is None:
        return a
    return mul_fixed(fxp, a, g if up is None else piecewise_fixed(up, fxp, g))
def sigmoid_fixed(fxp: FixedPoint, x: RingVec) -> RingVec:
    """sigma(x) = 1 / (1 + e^-x) by the fitted sigmoid table, element-wise on fixed-point x.

    Implements spec §6.2.3 `sigmoid_fixed` (spec/06-models.md#sigmoid_fixed).
    """
    return piecewise_fixed(SIGMOID, fxp, x)


def ffn_fixed(
    config: MoEConfig,
    w1: RingVec,
    v: RingVec | None,
    w2: RingVec,
    x: RingVec,
    biases: tuple[RingVec, RingVec | None, RingVec] | None = None,
) -> RingVec:
    """One expert on tokens x (T, d_model) in fixed point; ``biases`` = (b1, bv, b2) encoded,
    with ``expert_bias``.

    Implements spec §6.3.4 `ffn_fixed` (spec/06-models.md#ffn_fixed).
    """
    fxp = config.fxp
    if config.gated and v is None:
        raise SpecError(f"{config.expert_kind} experts need V")
    # Step 1 (expert_bias): the tokens get a last entry enc(1), W1, V and W2 their bias as last
    # column, so that every product below adds its bias exactly.
    one = int(fxp_encode(fxp, 1.0))
    if biases is not None:
        b1, bv, b2 = biases
        x = append_column(x, one)
        w1, w2 = append_column(w1, b1), append_column(w2, b2)
        if v is not None:
            if bv is None:
                raise SpecError(f"{config.expert_kind} experts with biases need bv")
            v = append_column(v, bv)
    # Step 2: u = trunc(x W1^T); gated kinds: g = trunc(x V^T).
    u = matmul_fixed(fxp, x, w1.T)
    g = None if v is None else matmul_fixed(fxp, x, v.T)
    # Step 3: the hidden vector.
    h = hidden_fixed(config, u, g)
    # Step 4: out = trunc(h W2^T) (h with its last entry enc(1) under expert_bias).
    if biases is not None:
        h = append_column(h, one)
    return matmul_fixed(fxp, h, w2.T)


def exp_fixed(fxp: FixedPoint, z: RingVec) -> RingVec:
    """BumbleBee's exp for z <= 0: 0 if z < -14, else t = trunc_5(z) + 1, squared 5 times.

    Implements spec §6.4.1 `exp_fixed` (spec/06-models.md#exp_fixed).
    """
    ring = fxp.ring
    # Step 1: t = z / 2^5 + 1 (an exact floor shift by 5 bits, then adding 1.0).
    t = ring.add(fxp_trunc(fxp, z, EXP_ITERATIONS), fxp_encode(fxp, 1.0))
    # Step 2: five squarings, each truncated by f. Unchecked: they stay in [0, 1] for
    # z >= -14, and below that they may wrap but step 3 discards them (as the protocol does).
    for _ in range(EXP_ITERATIONS):
        t = fxp_trunc(fxp, ring.mul(t, t))
    # Step 3: clip: 0 where signed(z) < signed(enc(-14)).
    below = ring.to_signed(z) < ring.to_signed(fxp_encode(fxp, EXP_CLIP))
    out: RingVec = np.where(below, np.uint64(0), t).astype(np.uint64)
    return out


# fit_table's least-squares quadratic of 1/u on [1/2, 1] (spec §6.2.2 steps 1-3), each a
# multiple of 2^-32; tests refit it. Relative error at most 0.0188 on the interval.
RECIPROCAL_COEFFS = (2.6192088334355503, -5.83541305270046, 4.234982376918197)
RECIPROCAL_NEWTON = 2  # Newton steps y <- y (2 - u y)


def reciprocal_segments(fxp: FixedPoint, bound: int) -> int:
    """K = max(1, ceil(log2 bound)) segments (2^(e-1), 2^e], e = 1 .. K (the first closed at 1)."""
    check_bound(bound, "reciprocal")
    count = max(1, (bound - 1).bit_length())
    if count > fxp.frac_bits:
        raise SpecError(f"reciprocal needs bound <= 2^f, got {bound}")
    return count


def reciprocal_fixed(fxp: FixedPoint, s: RingVec, bound: int | None = None) -> RingVec:
    """1 / s in fixed point for 1 <= s <= bound: the mirror of the secure iteration.

    Implements spec §6.4.2 `reciprocal_fixed` (spec/06-models.md#reciprocal_fixed). The result
    does not depend on ``bound`` (only the secure protocol's number of comparisons does); without
    it the bound is the largest s.
    """
    ring = fxp.ring
    check_fxp(fxp, "reciprocal_fixed")
    s = ring.check(np.asarray(s), "s")
    signed = ring.to_signed(s)
    one = 1 << fxp.frac_bits
    if np.any(signed < one):
        raise SpecError("reciprocal_fixed needs s >= 1.0")
    if bound is None:
        bound = max(1, -(-int(signed.max(initial=one)) // one))
    if np.any(signed > bound * one):
        raise SpecError(f"reciprocal_fixed needs s <= bound = {bound}")
    count = reciprocal_segments(fxp, bound)
    # Step 1: the segment 2^(e-1) < s <= 2^e (e = 1 for s <= 2).
    e = segment_exponent(fxp, s, 1, 1, count)
    scale = pow2_fixed(fxp, -e)
    # Step 2: u = trunc(s enc(2^-e)), in (1/2, 1].
    u = fxp_trunc(fxp, ring.mul(s, scale))
    # Step 3: the quadratic start.
    y = quadratic_fixed(fxp, RECIPROCAL_COEFFS, u)
    # Step 4: Newton, y <- trunc(y (enc(2) - trunc(u y))).
    two = np.full_like(u, fxp_encode(fxp, 2.0))
    for _ in range(RECIPROCAL_NEWTON):
        y = mul_fixed(fxp, y, ring.sub(two, mul_fixed(fxp, u, y)))
    # Step 5: r = trunc(y enc(2^-e)).
    return mul_fixed(fxp, y, scale)


def softmax_fixed(fxp: FixedPoint, logits: RingVec) -> RingVec:
    """Softmax over the last axis: subtract the row max, exp_fixed, sum, reciprocal, multiply.

    Implements spec §6.4.3 `softmax_fixed` (spec/06-models.md#softmax_fixed).
    """
    ring = fxp.ring
    # Step 1: m = max signed(z_i); z_i - m <= 0.
    signed = ring.to_signed(logits)
    z = ring.sub(logits, ring.from_int(signed.max(axis=-1, keepdims=True)))
    # Step 2: e_i = exp_fixed(z_i - m).
    e = exp_fixed(fxp, z)
    # Step 3: s = sum e_i in the ring.
    s = ring.reduce(np.asarray(np.sum(e, axis=-1, keepdims=True, dtype=np.uint64)))
    # Step 4: r = reciprocal_fixed(s) (s <= n: each term is at most 1); p_i = trunc(e_i * r).
    return mul_fixed(fxp, e, reciprocal_fixed(fxp, s, logits.shape[-1]))


def router_logits_fixed(config: MoEConfig, fw: FixedWeights, x: RingVec) -> RingVec:
    """z = mm(x, w_gate), plus enc(b_gate) with ``router_bias`` (spec §6.3.5 step 1)."""
    z = matmul_fixed(config.fxp, x, fw.w_gate)
    if config.router_bias:
        if fw.b_gate is None:
            raise SpecError("router_bias needs b_gate")
        z = config.fxp.ring.add(z, np.broadcast_to(fw.b_gate, z.shape))
    return z


def scores_fixed(config: MoEConfig, z: RingVec) -> RingVec:
    """The router scores p: sigmoid_fixed(z) (sigmoid kinds) or softmax_fixed(z) (spec §6.3.5)."""
    return sigmoid_fixed(config.fxp, z) if config.sigmoid_scoring else softmax_fixed(config.fxp, z)


def group_keys_fixed(config: MoEConfig, keys: RingVec) -> RingVec:
    """Each group's key (T, n_groups): the ring sum of its two largest keys (``top2_sum``) or
    its largest (``max``), on the signed values (spec §6.3.5 step 3)."""
    ring = config.fxp.ring
    t, n = keys.shape
    grouped = ring.to_signed(keys).reshape(t, config.n_groups, n // config.n_groups)
    if config.group_score == "max":
        return ring.from_int(grouped.max(axis=-1))
    top = np.sort(grouped, axis=-1)[..., -2:]
    return ring.add(ring.from_int(top[..., 0]), ring.from_int(top[..., 1]))


def selection_keys_fixed(config: MoEConfig, fw: FixedWeights, z: RingVec) -> RingVec:
    """The keys top-k selects on (spec §6.3.5 steps 2-3): z itself for the plain router, else
    the scores (+ enc(score_bias)), the experts outside the topk_groups best groups set to 0."""
    ring = config.fxp.ring
    if not config.score_bias and config.n_groups == 1:
        return z
    keys = scores_fixed(config, z)
    if config.score_bias:
        if fw.score_bias is None:
            raise SpecError("score_bias needs its array")
        keys = ring.add(keys, np.broadcast_to(fw.score_bias, keys.shape))
    if config.n_groups == 1 or config.topk_groups == config.n_groups:
        return keys
    chosen = topk_order(ring.to_signed(group_keys_fixed(config, keys)), config.topk_groups)
    keep = np.zeros((keys.shape[0], config.n_groups), dtype=bool)
    np.put_along_axis(keep, chosen, True, axis=-1)
    size = config.n_experts // config.n_groups
    out: RingVec = np.where(np.repeat(keep, size, axis=1), keys, np.uint64(0)).astype(np.uint64)
    return out


# sigmoid_topk divides by the sum S of the k selected scores as reciprocal(2^c max(S, 2^-c))
# (spec §6.3.5 step 4): the reciprocal needs its argument >= 1.
SIGMOID_NORM_SHIFT = 6


def sigmoid_norm_fixed(fxp: FixedPoint, q: RingVec) -> RingVec:
    """g = q / sum(q) per row of the selected scores q (T, k), as the secure protocol computes
    it: S' = max(S, enc(2^-c)), r = reciprocal_fixed(2^c S', k 2^c), g = trunc(2^c q r)."""
    ring, c = fxp.ring, SIGMOID_NORM_SHIFT
    k = q.shape[-1]
    total = ring.reduce(np.sum(q, axis=-1, dtype=np.uint64))
    floor = 1 << (fxp.frac_bits - c)
    clamped = np.where(ring.to_signed(total) < floor, np.uint64(floor), total).astype(np.uint64)
    lift = np.full_like(clamped, 1 << c)
    r = reciprocal_fixed(fxp, ring.mul(clamped, lift), k << c)
    return mul_fixed(fxp, ring.mul(q, np.full_like(q, 1 << c)), np.repeat(r[:, None], k, axis=1))


def gates_fixed(config: MoEConfig, z: RingVec, experts: Ints) -> RingVec:
    """The gates of the selected experts per ``gate_norm``, times ``routed_scaling`` (spec
    §6.3.5 steps 4-5)."""
    fxp = config.fxp
    chosen = np.take_along_axis(z, experts, axis=-1)
    if config.gate_norm == "softmax":
        gates = np.take_along_axis(softmax_fixed(fxp, z), experts, axis=-1)
    elif config.gate_norm == "softmax_topk":
        gates = softmax_fixed(fxp, chosen)
    else:
        gates = sigmoid_fixed(fxp, chosen)
        if config.gate_norm == "sigmoid_topk":
            gates = sigmoid_norm_fixed(fxp, gates)
    if config.routed_scaling != 1.0:
        gates = mul_fixed(fxp, gates, np.full_like(gates, fxp_encode(fxp, config.routed_scaling)))
    return gates


def route_fixed(config: MoEConfig, fw: FixedWeights, x: RingVec) -> tuple[Ints, RingVec]:
    """Router logits, selection keys, top-k and gates in fixed point.

    Implements spec §6.3.5 `route_fixed` (spec/06-models.md#route_fixed).
    """
    # Step 1: z = mm(x, w_gate) (+ enc(b_gate)).
    z = router_logits_fixed(config, fw, x)
    # Steps 2-3: the selection keys, then top-k on their signed values, ties to the lower index.
    keys = selection_keys_fixed(config, fw, z)
    experts = topk_order(config.fxp.ring.to_signed(keys), config.top_k)
    # Steps 4-5: gates.
    return experts, gates_fixed(config, z, experts)


def moe_fixed(config: MoEConfig, weights: MoEWeights | FixedWeights, x: RingVec) -> FixedOutput:
    """The MoE layer in fixed point on encoded tokens x (T, d_model), bit-exact.

    Implements spec §6.3.3 `moe_fixed` (spec/06-models.md#moe_fixed).
    """
    fxp = config.fxp
    config.require_plain("moe_fixed")
    # Step 1: encode the weights (x arrives encoded).
    fw = encode_weights(config, weights) if isinstance(weights, MoEWeights) else weights
    x = fxp.ring.check(np.asarray(x), "x")
    if x.ndim != 2 or x.shape[1] != config.d_model or x.shape[0] < 1:
        raise SpecError(f"x must have shape (tokens >= 1, {config.d_model}), got {x.shape}")
    # Step 2: route.
    experts, gates = route_fixed(config, fw, x)
    # Step 3: each token's selected experts, each output times its gate (truncated; with
    # gate_on_input the input instead), summed in slot order.
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        for slot in range(config.top_k):
            i = int(experts[t, slot])
            v = None if fw.v is None else fw.v[i]
            xt = x[t : t + 1]
            if config.gate_on_input:
                # Llama4: the expert runs on trunc(g x) and adds its output with weight 1.
                xt = mul_fixed(fxp, np.full_like(xt, gates[t, slot]), xt)
            out = ffn_fixed(config, fw.w1[i], v, fw.w2[i], xt, fw.expert_biases(i))[0]
            if not config.gate_on_input:
                out = mul_fixed(fxp, np.full_like(out, gates[t, slot]), out)
            y[t] = fxp.ring.add(y[t], out)
    # Step 4: shared experts, weight 1 (no multiplication, no truncation), their sum times
    # sigmoid_fixed(mm(x, shared_gate)) with shared_gate.
    shared = np.zeros_like(x)
    for j in range(config.n_shared_experts):
        sv = None if fw.shared_v is None else fw.shared_v[j]
        shared = fxp.ring.add(shared, ffn_fixed(config, fw.shared_w1[j], sv, fw.shared_w2[j], x))
    if config.shared_gate:
        if fw.shared_gate is None:
            raise SpecError("shared_gate needs the shared_gate vector")
        c = sigmoid_fixed(fxp, matmul_fixed(fxp, x, fw.shared_gate[:, None]))
        shared = mul_fixed(fxp, np.broadcast_to(c, shared.shape), shared)
    y = fxp.ring.add(y, shared)
    return FixedOutput(y, experts, gates, fxp.decode(y), fxp.decode(gates))
