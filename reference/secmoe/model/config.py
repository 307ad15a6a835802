"""MoE layer configuration and weights (spec/06-models.md#moeconfig)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import SpecError

ExpertKind = Literal["geglu", "swiglu", "relu"]
GateNorm = Literal["softmax", "softmax_topk"]
EXPERT_KINDS: tuple[ExpertKind, ...] = ("geglu", "swiglu", "relu")
GATE_NORMS: tuple[GateNorm, ...] = ("softmax", "softmax_topk")
# A product of two fixed-point values carries 2f fractional bits before truncation; this many
# integer bits (sign included) must remain so that products of magnitude < 2^7 do not wrap.
PRODUCT_HEADROOM_BITS = 8
Floats = NDArray[np.float64]


def check_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else ``SpecError`` naming ``owner.name``."""
    # bool is an int subclass; True as a dimension is almost certainly a caller's mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class MoEConfig:
    """The shape and arithmetic of one MoE layer.

    Implements spec §6.1.1 `MoEConfig` (spec/06-models.md#moeconfig).

    ``expert_kind``: ``geglu`` and ``swiglu`` experts are ``W2 (act(W1 x) * (V x))`` with act =
    GeLU / SiLU; ``relu`` experts are ``W2 relu(W1 x)``. ``gate_norm``: ``softmax`` takes the
    selected experts' probabilities from a softmax over all experts (Switch); ``softmax_topk``
    renormalises over the k selected logits (Mixtral). Shared experts are always on, weight 1.
    """

    d_model: int
    d_ff: int
    n_experts: int
    top_k: int = 1
    expert_kind: ExpertKind = "geglu"
    gate_norm: GateNorm = "softmax"
    n_shared_experts: int = 0
    d_ff_shared: int = 0  # 0 means d_ff
    ring_bits: int = 64
    frac_bits: int = 18

    def __post_init__(self) -> None:
        for name in ("d_model", "d_ff", "n_experts", "top_k"):
            check_int("MoEConfig", name, getattr(self, name))
        if self.top_k > self.n_experts:
            raise SpecError(f"MoEConfig.top_k = {self.top_k} exceeds n_experts = {self.n_experts}")
        if self.expert_kind not in EXPERT_KINDS:
            raise SpecError(
                f"MoEConfig.expert_kind must be one of {EXPERT_KINDS}, got {self.expert_kind!r}"
            )
        if self.gate_norm not in GATE_NORMS:
            raise SpecError(
                f"MoEConfig.gate_norm must be one of {GATE_NORMS}, got {self.gate_norm!r}"
            )
        check_int("MoEConfig", "n_shared_experts", self.n_shared_experts, minimum=0)
        check_int("MoEConfig", "d_ff_shared", self.d_ff_shared, minimum=0)
        check_int("MoEConfig", "ring_bits", self.ring_bits)
        check_int("MoEConfig", "frac_bits", self.frac_bits)
        if self.ring_bits > 64:
            raise SpecError(f"MoEConfig.ring_bits must be at most 64, got {self.ring_bits}")
        need = 2 * self.frac_bits + PRODUCT_HEADROOM_BITS
        if self.ring_bits < need:
            raise SpecError(
                f"MoEConfig.ring_bits = {self.ring_bits} is too small for frac_bits = "
                f"{self.frac_bits}: products need ring_bits >= 2 * frac_bits + "
                f"{PRODUCT_HEADROOM_BITS} = {need}"
            )

    @property
    def gated(self) -> bool:
        return self.expert_kind != "relu"

    @property
    def shared_ff(self) -> int:
        """The shared experts' hidden width (``d_ff_shared``, or ``d_ff`` when it is 0)."""
        return self.d_ff_shared or self.d_ff

    @property
    def fxp(self) -> FixedPoint:
        return FixedPoint(Ring(self.ring_bits), self.frac_bits)

    def as_dict(self) -> dict[str, int | str]:
        """Every field, for reports and vector files."""
        return {
            "d_model": self.d_model,
            "d_ff": self.d_ff,
            "n_experts": self.n_experts,
            "top_k": self.top_k,
            "expert_kind": self.expert_kind,
            "gate_norm": self.gate_norm,
            "n_shared_experts": self.n_shared_experts,
            "d_ff_shared": self.d_ff_shared,
            "ring_bits": self.ring_bits,
            "frac_bits": self.frac_bits,
        }


@dataclass(frozen=True)
class MoEWeights:
    """Router and experts as float64 arrays, experts stacked along axis 0.

    ``w_gate`` (d_model, n_experts): logits are ``x @ w_gate``. Routed experts: ``w1`` and ``v``
    (n_experts, d_ff, d_model), ``w2`` (n_experts, d_model, d_ff), so that expert i computes
    ``w2[i] @ (act(w1[i] @ x) * (v[i] @ x))``. Shared experts: ``shared_w1``, ``shared_v``
    (n_shared, d_ff_shared, d_model) and ``shared_w2`` (n_shared, d_model, d_ff_shared). The
    ``v`` arrays are None for ReLU experts.
    """

    w_gate: Floats
    w1: Floats
    v: Floats | None
    w2: Floats
    shared_w1: Floats
    shared_v: Floats | None
    shared_w2: Floats

    def check(self, config: MoEConfig) -> None:
        """Raise SpecError unless every array has the dtype and shape ``config`` implies."""
        d, n, ff = config.d_model, config.n_experts, config.d_ff
        ns, sff = config.n_shared_experts, config.shared_ff
        _need("w_gate", self.w_gate, (d, n))
        _need("w1", self.w1, (n, ff, d))
        _need("w2", self.w2, (n, d, ff))
        _need("shared_w1", self.shared_w1, (ns, sff, d))
        _need("shared_w2", self.shared_w2, (ns, d, sff))
        for name, v, shape in (
            ("v", self.v, (n, ff, d)),
            ("shared_v", self.shared_v, (ns, sff, d)),
        ):
            if config.gated:
                _need(name, v, shape)
            elif v is not None:
                raise SpecError(f"MoEWeights.{name} must be None for ReLU experts")


def _need(name: str, a: object, shape: tuple[int, ...]) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise SpecError(f"MoEWeights.{name} must be a float64 array of shape {shape}, got {got}")
    if not np.all(np.isfinite(a)):
        raise SpecError(f"MoEWeights.{name} has NaN or infinite entries")
