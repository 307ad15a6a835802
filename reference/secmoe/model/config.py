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
Floats = NDArray[np.float64]


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
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SpecError(f"MoEConfig.{name} must be a positive integer, got {value!r}")
        if self.top_k > self.n_experts:
            raise SpecError(f"top_k = {self.top_k} exceeds n_experts = {self.n_experts}")
        if self.expert_kind not in EXPERT_KINDS:
            raise SpecError(f"expert_kind must be one of {EXPERT_KINDS}, got {self.expert_kind!r}")
        if self.gate_norm not in GATE_NORMS:
            raise SpecError(f"gate_norm must be one of {GATE_NORMS}, got {self.gate_norm!r}")
        if not isinstance(self.n_shared_experts, int) or self.n_shared_experts < 0:
            raise SpecError("n_shared_experts must be a non-negative integer")
        if not isinstance(self.d_ff_shared, int) or self.d_ff_shared < 0:
            raise SpecError("d_ff_shared must be a non-negative integer (0 means d_ff)")
        self.fxp  # validates ring_bits and frac_bits  # noqa: B018

    @property
    def gated(self) -> bool:
        return self.expert_kind != "relu"

    @property
    def shared_ff(self) -> int:
        return self.d_ff_shared or self.d_ff

    @property
    def fxp(self) -> FixedPoint:
        return FixedPoint(Ring(self.ring_bits), self.frac_bits)


@dataclass(frozen=True)
class ExpertWeights:
    """One FFN expert: ``w1`` and ``v`` are (d_ff, d_model), ``w2`` is (d_model, d_ff); ``v`` is
    None for ReLU experts. The (out, in) layout is the one Hugging Face checkpoints use."""

    w1: Floats
    v: Floats | None
    w2: Floats


@dataclass(frozen=True)
class MoEWeights:
    """Router (n_experts, d_model), the routed experts and the shared experts."""

    w_gate: Floats
    experts: tuple[ExpertWeights, ...]
    shared: tuple[ExpertWeights, ...] = ()

    def check(self, config: MoEConfig) -> None:
        """Raise SpecError unless every array has the shape ``config`` implies."""

        def need(name: str, a: object, shape: tuple[int, ...]) -> None:
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != np.float64:
                got = getattr(a, "shape", type(a).__name__)
                raise SpecError(f"{name} must be a float64 array of shape {shape}, got {got}")
            if not np.all(np.isfinite(a)):
                raise SpecError(f"{name} has NaN or infinite entries")

        d, e = config.d_model, config.n_experts
        need("w_gate", self.w_gate, (e, d))
        if len(self.experts) != e:
            raise SpecError(f"{len(self.experts)} experts given, config says {e}")
        if len(self.shared) != config.n_shared_experts:
            raise SpecError(
                f"{len(self.shared)} shared experts given, config says {config.n_shared_experts}"
            )
        groups = (("expert", self.experts, config.d_ff), ("shared", self.shared, config.shared_ff))
        for prefix, experts, ff in groups:
            for i, ex in enumerate(experts):
                need(f"{prefix}[{i}].w1", ex.w1, (ff, d))
                need(f"{prefix}[{i}].w2", ex.w2, (d, ff))
                if config.gated:
                    need(f"{prefix}[{i}].v", ex.v, (ff, d))
                elif ex.v is not None:
                    raise SpecError(f"{prefix}[{i}].v must be None for ReLU experts")
