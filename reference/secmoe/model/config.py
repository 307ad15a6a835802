"""MoE layer configuration and weights (spec/06-models.md#moeconfig)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import SpecError

ExpertKind = Literal["geglu", "swiglu", "relu", "gptoss"]
GateNorm = Literal["softmax", "softmax_topk", "sigmoid", "sigmoid_topk"]
GroupScore = Literal["top2_sum", "max"]
EXPERT_KINDS: tuple[ExpertKind, ...] = ("geglu", "swiglu", "relu", "gptoss")
GATE_NORMS: tuple[GateNorm, ...] = ("softmax", "softmax_topk", "sigmoid", "sigmoid_topk")
GROUP_SCORES: tuple[GroupScore, ...] = ("top2_sum", "max")
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


_FAMILY_FIELDS = frozenset(
    {
        "router_bias",
        "score_bias",
        "n_groups",
        "topk_groups",
        "group_score",
        "routed_scaling",
        "gate_on_input",
        "shared_gate",
        "expert_bias",
        "swiglu_alpha",
        "swiglu_limit",
    }
)
# Whether the fixed-point model, the secure layer and its cost formula implement a field of
# nonplain_fields (spec §6.1.1); require_plain refuses the others by name. One line per field.
IMPLEMENTED: dict[str, bool] = {
    # routing (spec §6.3.5, §40.3.2)
    "gate_norm": True,
    "router_bias": True,
    "score_bias": True,
    "n_groups": True,
    "topk_groups": True,
    "group_score": True,
    "routed_scaling": True,
    "gate_on_input": True,
    # experts (spec §6.3.4, §40.3.1)
    "expert_kind": True,
    "shared_gate": True,
    "expert_bias": True,
    "swiglu_alpha": True,
    "swiglu_limit": True,
}


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
    # Routing families of today's checkpoints (spec §6.1.1, second table). The defaults are the
    # plain softmax router above, so older configurations mean what they meant.
    router_bias: bool = False
    score_bias: bool = False
    n_groups: int = 1
    topk_groups: int = 1
    group_score: GroupScore = "top2_sum"
    routed_scaling: float = 1.0
    gate_on_input: bool = False
    shared_gate: bool = False
    expert_bias: bool = False
    swiglu_alpha: float = 1.702
    swiglu_limit: float = 7.0

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
        self._check_routing_families()
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

    def _check_routing_families(self) -> None:
        for name in ("router_bias", "score_bias", "gate_on_input", "shared_gate", "expert_bias"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"MoEConfig.{name} must be a bool, got {getattr(self, name)!r}")
        check_int("MoEConfig", "n_groups", self.n_groups)
        check_int("MoEConfig", "topk_groups", self.topk_groups)
        if self.n_experts % self.n_groups:
            raise SpecError(
                f"MoEConfig.n_groups = {self.n_groups} does not divide n_experts = {self.n_experts}"
            )
        if self.topk_groups > self.n_groups:
            raise SpecError(
                f"MoEConfig.topk_groups = {self.topk_groups} exceeds n_groups = {self.n_groups}"
            )
        group_size = self.n_experts // self.n_groups
        if self.n_groups > 1 and self.topk_groups * group_size < self.top_k:
            raise SpecError(
                f"MoEConfig: topk_groups * (n_experts / n_groups) = {self.topk_groups * group_size}"
                f" experts cannot hold top_k = {self.top_k}"
            )
        if self.n_groups > 1 and self.group_score == "top2_sum" and group_size < 2:
            raise SpecError("MoEConfig.group_score top2_sum needs at least 2 experts per group")
        if self.group_score not in GROUP_SCORES:
            raise SpecError(
                f"MoEConfig.group_score must be one of {GROUP_SCORES}, got {self.group_score!r}"
            )
        if self.score_bias and self.gate_norm not in ("sigmoid", "sigmoid_topk"):
            raise SpecError("MoEConfig.score_bias applies to sigmoid scoring only")
        for name in ("routed_scaling", "swiglu_alpha", "swiglu_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"MoEConfig.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise SpecError(f"MoEConfig.{name} must be finite and > 0, got {value!r}")
        if self.gate_on_input and self.top_k != 1:
            raise SpecError("MoEConfig.gate_on_input (Llama4) needs top_k = 1")
        if self.shared_gate and self.n_shared_experts == 0:
            raise SpecError("MoEConfig.shared_gate gates shared experts, but there are none")

    @property
    def sigmoid_scoring(self) -> bool:
        """Whether router scores are sigmoid(logits) rather than a softmax."""
        return self.gate_norm in ("sigmoid", "sigmoid_topk")

    @property
    def plain_routing(self) -> bool:
        """Whether the layer uses only the routing and expert kinds of §6.1.1's first table."""
        return (
            self.gate_norm in ("softmax", "softmax_topk")
            and self.expert_kind != "gptoss"
            and not (self.router_bias or self.score_bias or self.gate_on_input)
            and not (self.shared_gate or self.expert_bias)
            and self.n_groups == 1
            and self.routed_scaling == 1.0
        )

    def nonplain_fields(self) -> list[str]:
        """The routing-family fields set away from their defaults (spec §6.1.1, second table)."""
        names = [
            f.name
            for f in fields(self)
            if f.name in _FAMILY_FIELDS and getattr(self, f.name) != f.default
        ]
        if self.gate_norm not in ("softmax", "softmax_topk"):
            names.insert(0, "gate_norm")
        if self.expert_kind == "gptoss":
            names.insert(0, "expert_kind")
        return names

    def require_plain(self, where: str, *, baseline: bool = False) -> None:
        """``SpecError`` unless ``where`` can run this configuration: until the fixed-point and
        secure forms of a routing family exist (``IMPLEMENTED``), it is refused by name, never
        run as another. The baselines (``baseline``, spec §41) implement none of them."""
        extra = [n for n in self.nonplain_fields() if baseline or not IMPLEMENTED[n]]
        if extra:
            raise SpecError(f"{where} does not yet implement MoEConfig fields {extra}")

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

    def as_dict(self) -> dict[str, int | str | float | bool]:
        """Every field, for reports and vector files; the routing-family fields only where they
        differ from their defaults, so that the plain configurations' records are unchanged."""
        out: dict[str, int | str | float | bool] = {
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
        for f in fields(self):
            if f.name not in out and getattr(self, f.name) != f.default:
                out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True)
class MoEWeights:
    """Router and experts as float64 arrays, experts stacked along axis 0.

    ``w_gate`` (d_model, n_experts): logits are ``x @ w_gate``. Routed experts: ``w1`` and ``v``
    (n_experts, d_ff, d_model), ``w2`` (n_experts, d_model, d_ff), so that expert i computes
    ``w2[i] @ (act(w1[i] @ x) * (v[i] @ x))``. Shared experts: ``shared_w1``, ``shared_v``
    (n_shared, d_ff_shared, d_model) and ``shared_w2`` (n_shared, d_model, d_ff_shared). The
    ``v`` arrays are None for ReLU experts. The routing-family arrays (spec §6.1.1, second
    table) are present exactly when their configuration flag is set: ``b_gate`` (n_experts,)
    with ``router_bias``; ``score_bias`` (n_experts,) with ``score_bias``; ``b1``, ``bv``
    (n_experts, d_ff) and ``b2`` (n_experts, d_model) with ``expert_bias``; ``shared_gate``
    (d_model,) with ``shared_gate``.
    """

    w_gate: Floats
    w1: Floats
    v: Floats | None
    w2: Floats
    shared_w1: Floats
    shared_v: Floats | None
    shared_w2: Floats
    b_gate: Floats | None = None
    score_bias: Floats | None = None
    b1: Floats | None = None
    bv: Floats | None = None
    b2: Floats | None = None
    shared_gate: Floats | None = None

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
        optional: tuple[tuple[str, bool, tuple[int, ...]], ...] = (
            ("b_gate", config.router_bias, (n,)),
            ("score_bias", config.score_bias, (n,)),
            ("b1", config.expert_bias, (n, ff)),
            ("bv", config.expert_bias and config.gated, (n, ff)),
            ("b2", config.expert_bias, (n, d)),
            ("shared_gate", config.shared_gate, (d,)),
        )
        for part, present, part_shape in optional:
            a = getattr(self, part)
            if present:
                _need(part, a, part_shape)
            elif a is not None:
                raise SpecError(f"MoEWeights.{part} is given but the configuration does not use it")


def _need(name: str, a: object, shape: tuple[int, ...]) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise SpecError(f"MoEWeights.{name} must be a float64 array of shape {shape}, got {got}")
    if not np.all(np.isfinite(a)):
        raise SpecError(f"MoEWeights.{name} has NaN or infinite entries")
