"""A checkpoint's ``config.json`` -> the MoE layer's configuration (spec/06-models.md#derive_moe_config).

Hugging Face checkpoints carry the routing in ``config.json`` (experts per token, top-k
normalisation, scoring function, groups, scaling, capacity, activation), not in the tensor
names; a layer loaded from its names alone can be a different model. This module reads the keys
of each family (spec §6.8.4, the table) and says which ``MoEConfig`` fields they give, or refuses
the checkpoint naming the key it cannot represent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from secmoe.errors import SpecError
from secmoe.model.safetensors import unique_keys

Family = Literal[
    "mixtral",
    "minimax",
    "switch",
    "qwen2_moe",
    "qwen3_moe",
    "qwen3_next",
    "olmoe",
    "flex_olmo",
    "deepseek_moe",
    "deepseek_v2",
    "deepseek_v3",
    "glm4_moe",
    "gpt_oss",
    "granitemoe",
    "dbrx",
    "llama4",
]
FAMILIES: tuple[Family, ...] = get_args(Family)
CONFIG_FILE = "config.json"
# model_type -> family, where they differ in spelling.
MODEL_TYPES: dict[str, Family] = {f: f for f in FAMILIES if f not in ("switch", "deepseek_moe")}
MODEL_TYPES |= {"switch_transformers": "switch", "llama4_text": "llama4"}
# Published MoE families whose block secmoe's model cannot represent, with the reason.
REFUSED: dict[str, str] = {
    "phimoe": "PhiMoE routes with sparsemixer: its first gate is a softmax over only the logits "
    "within a relative margin 2 * router_jitter_noise of the largest (the others masked), its "
    "second expert is chosen and gated the same way among the rest; router_jitter_noise shapes "
    "the gates at inference too, so they are not a softmax or sigmoid of the top-k logits",
    "jetmoe": "JetMoE's attention is a mixture of attention experts (MoA), and its MoE MLP adds "
    "a bias to the gated sum; neither is a secmoe layer",
    "nllb_moe": "NLLB-MoE's top-2 router drops tokens by expert_capacity "
    "(moe_eval_capacity_token_fraction at inference) and picks or keeps the second expert by "
    "second_expert_policy ('sampling' adds Gumbel noise, 'random' keeps it with probability "
    "2 p_2); secmoe routes every token to its top-k and cannot test expert loads, which the "
    "secret routing decides",
}
# hidden_act values -> expert_kind (HF's "gelu" is the exact erf GeLU, as secmoe's).
ACTIVATIONS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu"}


@dataclass
class Derived:
    """What a config.json says about the MoE layer: the ``MoEConfig`` fields it fixes, the key
    each came from, and the block properties the tensors must then show."""

    family: Family
    model_type: str
    fields: dict[str, object] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    n_experts: int | None = None  # the expert count the config states
    shared: bool | None = None  # whether the config says the layer has a shared expert
    expert_capacity: int | None = None  # Switch: tokens per expert per sequence
    first_moe_layer: int | None = None  # DeepSeek/GLM: first_k_dense_replace (lower are dense)
    missing: dict[str, str] = field(default_factory=dict)  # field -> a key config.json must state

    def set(self, name: str, value: object, key: str) -> None:
        self.fields[name] = value
        self.sources[name] = key


def config_path(checkpoint: Path) -> Path:
    """Where a checkpoint's config.json is: in the directory, or next to the file given."""
    return (checkpoint if checkpoint.is_dir() else checkpoint.parent) / CONFIG_FILE


def read_config(path: Path) -> dict[str, object]:
    """The JSON object of ``config.json`` (duplicate keys and NaN refused), or SpecError."""
    try:
        doc = json.loads(
            path.read_text(encoding="utf-8"),
            object_pairs_hook=unique_keys,
            parse_constant=_no_constant,
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SpecError(f"{path}: not a readable JSON config: {exc}") from exc
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a config.json must be a JSON object")
    return doc


def _no_constant(name: str) -> object:
    raise SpecError(f"config.json holds {name}, which is not JSON")


class _Keys:
    """Typed access to one config object; every error names the key."""

    def __init__(self, doc: dict[str, object], where: str, strict: bool = True) -> None:
        self.doc, self.where, self.strict = doc, where, strict

    def require(self, key: str, field: str, out: Derived) -> None:
        """A key whose default differs between the family's versions: a config.json must state
        it, or the caller must give the field (the family's defaults, without a config.json,
        are not held to this)."""
        if self.strict and key not in self.doc:
            out.missing[field] = key

    def raw(self, key: str) -> object:
        return self.doc.get(key)

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int | None:
        v = self.doc.get(key, default)
        if v is None:
            return None
        if type(v) is not int or v < minimum:
            raise SpecError(f"{self.where}: {key} = {v!r} is not an integer >= {minimum}")
        return v

    def number(self, key: str, default: float) -> float:
        v = self.doc.get(key, default)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SpecError(f"{self.where}: {key} = {v!r} is not a finite number")
        return float(v)

    def flag(self, key: str, default: bool) -> bool:
        v = self.doc.get(key, default)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise SpecError(f"{self.where}: {key} = {v!r} is not true or false")
        return v

    def text(self, key: str, default: str | None) -> str | None:
        v = self.doc.get(key, default)
        if v is not None and not isinstance(v, str):
            raise SpecError(f"{self.where}: {key} = {v!r} is not a string")
        return v


def family_of(doc: dict[str, object]) -> tuple[str, Family]:
    """(model_type, family) of a config.json, or SpecError naming what is refused."""
    model_type = doc.get("model_type")
    if not isinstance(model_type, str):
        archs = doc.get("architectures")
        raise SpecError(
            f"config.json has no model_type string (architectures: {archs!r}); pass family="
        )
    if model_type in REFUSED:
        raise SpecError(f"config.json model_type {model_type!r}: refused: {REFUSED[model_type]}")
    if model_type not in MODEL_TYPES:
        raise SpecError(
            f"config.json model_type {model_type!r} is not a MoE family secmoe knows (known: "
            f"{sorted(MODEL_TYPES)}; refused with a reason: {sorted(REFUSED)}); pass family= "
            "to load the tensors by their names anyway"
        )
    return model_type, MODEL_TYPES[model_type]


def derive_moe_config(doc: dict[str, object]) -> Derived:
    """The layer properties a config.json states.

    Implements spec §6.8.4 `derive_moe_config` (spec/06-models.md#derive_moe_config).
    """
    model_type, family = family_of(doc)
    quant = doc.get("quantization_config")
    if quant is not None:
        method = quant.get("quant_method") if isinstance(quant, dict) else quant
        raise SpecError(
            f"config.json quantization_config (quant_method {method!r}): quantised weights are "
            "not read (their scales live outside the float tensors); use a float checkpoint"
        )
    if family == "llama4" and model_type == "llama4":
        text = doc.get("text_config")
        if not isinstance(text, dict):
            raise SpecError("config.json: a llama4 config needs its text_config object")
        doc = text
    k = _Keys(doc, f"config.json ({model_type})")
    out = Derived(family, model_type)
    _DERIVERS[family](k, out)
    return out


def defaults(family: Family) -> Derived:
    """The family's defaults where there is no config.json (Hugging Face's configuration
    defaults); what the tensors show (shared experts, biases) is then taken from them."""
    out = Derived(family, "")
    _DERIVERS[family](_Keys({}, f"{family} defaults", strict=False), out)
    out.sources = dict.fromkeys(out.fields, "family default")
    out.shared, out.expert_capacity, out.first_moe_layer = None, None, None
    out.fields.pop("shared_gate", None)
    out.sources.pop("shared_gate", None)
    return out


def _experts_per_token(k: _Keys, out: Derived, default: int) -> None:
    top_k = k.integer("num_experts_per_tok", default, 1)
    out.set("top_k", top_k, "num_experts_per_tok")


def _activation(k: _Keys, out: Derived, key: str = "hidden_act", default: str = "silu") -> None:
    act = k.text(key, default)
    if act not in ACTIVATIONS:
        raise SpecError(
            f"{k.where}: {key} = {act!r}: secmoe's experts compute "
            f"{sorted(ACTIVATIONS)} (SiLU or the exact GeLU), not this activation"
        )
    out.set("expert_kind", ACTIVATIONS[act], key)


def _softmax_topk(k: _Keys, out: Derived, key: str, default: bool) -> None:
    norm = k.flag(key, default)
    out.set("gate_norm", "softmax_topk" if norm else "softmax", key)


def _mixtral(k: _Keys, out: Derived) -> None:
    out.n_experts = k.integer("num_local_experts", None, 1)
    _experts_per_token(k, out, 2)
    out.set("gate_norm", "softmax_topk", "model_type")
    _activation(k, out)
    out.shared = False


def _switch(k: _Keys, out: Derived) -> None:
    out.n_experts = k.integer("num_experts", None, 1)
    out.set("top_k", 1, "model_type")
    out.set("gate_norm", "softmax", "model_type")
    act = k.text("dense_act_fn", "relu")
    if act != "relu" or k.flag("is_gated_act", False):
        raise SpecError(
            f"{k.where}: dense_act_fn = {act!r} (is_gated_act {k.raw('is_gated_act')!r}): "
            "secmoe's Switch experts are ReLU, ungated"
        )
    out.set("expert_kind", "relu", "dense_act_fn")
    out.expert_capacity = k.integer("expert_capacity", 64, 1)
    out.shared = False


def _qwen(k: _Keys, out: Derived) -> None:
    out.n_experts = k.integer("num_experts", None, 1)
    k.require("num_experts_per_tok", "top_k", out)
    k.require("norm_topk_prob", "gate_norm", out)
    next_ = out.family == "qwen3_next"  # Qwen3NextConfig's defaults: 10 per token, normalised
    _experts_per_token(k, out, 10 if next_ else 4)
    _softmax_topk(k, out, "norm_topk_prob", next_)
    _activation(k, out)
    if out.family in ("qwen2_moe", "qwen3_next"):
        shared = k.integer("shared_expert_intermediate_size", 0)
        out.shared = bool(shared)
        if shared:
            out.set("shared_gate", True, "shared_expert_intermediate_size")
    else:
        out.shared = False


def _deepseek_groups(
    k: _Keys, out: Derived, score: str, default: tuple[int, int] | None
) -> None:
    """``n_group`` / ``topk_group``: the experts split into ``n_group`` equal groups, the
    ``topk_group`` best groups by ``score`` kept, the rest masked to 0 before the top-k."""
    n_default, topk_default = (None, None) if default is None else default
    n_group = k.integer("n_group", n_default, 1)
    topk_group = k.integer("topk_group", topk_default, 1)
    if n_group is None or topk_group is None:
        raise SpecError(
            f"{k.where}: group-limited routing needs n_group and topk_group (got "
            f"{k.raw('n_group')!r}, {k.raw('topk_group')!r})"
        )
    if n_group > 1:
        out.set("n_groups", n_group, "n_group")
        out.set("topk_groups", topk_group, "topk_group")
        out.set("group_score", score, "topk_method")


def _dense_layers(k: _Keys, out: Derived, default: int) -> None:
    # Hugging Face builds the MoE block for layer_idx >= first_k_dense_replace (moe_layer_freq,
    # a key of the original remote code, is not read by the Hugging Face classes).
    out.first_moe_layer = k.integer("first_k_dense_replace", default, 0)


def _deepseek_moe(k: _Keys, out: Derived) -> None:
    # DeepSeek-MoE (remote code, no Hugging Face model_type): known by its names only.
    _experts_per_token(k, out, 6)
    out.set("gate_norm", "softmax", "model_type")
    _activation(k, out)


def _deepseek_v2(k: _Keys, out: Derived) -> None:
    out.n_experts = k.integer("n_routed_experts", None, 1)
    k.require("num_experts_per_tok", "top_k", out)  # DeepseekV2Config's default is None
    _experts_per_token(k, out, 6)
    scoring = k.text("scoring_func", "softmax")
    if scoring != "softmax":
        raise SpecError(f"{k.where}: scoring_func = {scoring!r}: DeepSeek-V2 scores by softmax")
    if k.flag("norm_topk_prob", False):
        raise SpecError(
            f"{k.where}: norm_topk_prob = true: Hugging Face's DeepSeek-V2 block ignores it and "
            "the original code renormalises instead of scaling; refused as ambiguous"
        )
    out.set("gate_norm", "softmax", "scoring_func")
    method = k.text("topk_method", "greedy")
    if method == "group_limited_greedy":
        _deepseek_groups(k, out, "max", None)
    elif method != "greedy":
        raise SpecError(
            f"{k.where}: topk_method = {method!r}: DeepSeek-V2 has greedy and group_limited_greedy"
        )
    _scaling(k, out, 1.0)
    _activation(k, out)
    out.shared = bool(k.integer("n_shared_experts", 2, 0))
    _dense_layers(k, out, 0)


# The defaults of DeepseekV3Config and Glm4MoeConfig differ (same block, other sizes).
# (n_group, topk_group), routed_scaling_factor, first_k_dense_replace:
_SIGMOID_DEFAULTS: dict[str, tuple[tuple[int, int], float, int]] = {
    "deepseek_v3": ((8, 4), 2.5, 3),
    "glm4_moe": ((1, 1), 1.0, 1),
}


def _deepseek_v3(k: _Keys, out: Derived) -> None:
    groups, scaling, dense = _SIGMOID_DEFAULTS[out.family]
    out.n_experts = k.integer("n_routed_experts", None, 1)
    _experts_per_token(k, out, 8)
    # scoring_func and topk_method are keys of the original remote code, not of the Hugging
    # Face classes (which always score by sigmoid, noaux_tc); read where stated.
    scoring = k.text("scoring_func", "sigmoid")
    if scoring != "sigmoid":
        raise SpecError(f"{k.where}: scoring_func = {scoring!r}: this family scores by sigmoid")
    method = k.text("topk_method", "noaux_tc")
    if method != "noaux_tc":
        raise SpecError(f"{k.where}: topk_method = {method!r}: this family routes noaux_tc")
    norm = k.flag("norm_topk_prob", True)
    out.set("gate_norm", "sigmoid_topk" if norm else "sigmoid", "norm_topk_prob")
    out.set("score_bias", True, "e_score_correction_bias")
    _deepseek_groups(k, out, "top2_sum", groups)
    _scaling(k, out, scaling)
    _activation(k, out)
    out.shared = bool(k.integer("n_shared_experts", 1, 0))
    _dense_layers(k, out, dense)


def _scaling(k: _Keys, out: Derived, default: float) -> None:
    factor = k.number("routed_scaling_factor", default)
    if factor != 1.0:
        out.set("routed_scaling", factor, "routed_scaling_factor")


def _gpt_oss(k: _Keys, out: Derived) -> None:
    out.n_experts = k.integer("num_local_experts", None, 1)
    _experts_per_token(k, out, 4)
    out.set("gate_norm", "softmax_topk", "model_type")
    out.set("expert_kind", "gptoss", "model_type")
    out.set("router_bias", True, "model_type")
    out.set("expert_bias", True, "model_type")
    limit = k.number("swiglu_limit", 7.0)
    if limit != 7.0:
        out.set("swiglu_limit", limit, "swiglu_limit")
    out.shared = False


def _dbrx(k: _Keys, out: Derived) -> None:
    ffn = k.raw("ffn_config")
    f = _Keys(ffn if isinstance(ffn, dict) else {}, f"{k.where} ffn_config")
    out.n_experts = f.integer("moe_num_experts", None, 1)
    out.set("top_k", f.integer("moe_top_k", 1, 1), "ffn_config.moe_top_k")
    p = f.raw("moe_normalize_expert_weights") if "moe_normalize_expert_weights" in f.doc else 1
    if p is None:
        out.set("gate_norm", "softmax", "ffn_config.moe_normalize_expert_weights")
    elif isinstance(p, (int, float)) and not isinstance(p, bool) and p == 1:
        # The selected probabilities are positive, so their 1-norm is their sum.
        out.set("gate_norm", "softmax_topk", "ffn_config.moe_normalize_expert_weights")
    else:
        raise SpecError(
            f"{f.where}: moe_normalize_expert_weights = {p!r}: secmoe renormalises by the sum "
            "(p = 1) or not at all (null)"
        )
    act = f.raw("ffn_act_fn")
    name = act.get("name", "silu") if isinstance(act, dict) else "silu"
    _activation(_Keys({"name": name}, f.where + " ffn_act_fn"), out, "name")
    out.sources["expert_kind"] = "ffn_config.ffn_act_fn.name"
    out.shared = False


def _llama4(k: _Keys, out: Derived) -> None:
    out.n_experts = k.integer("num_local_experts", None, 1)
    _experts_per_token(k, out, 1)
    if out.fields["top_k"] != 1:
        raise SpecError(
            f"{k.where}: num_experts_per_tok = {out.fields['top_k']}: Llama4's sigmoid input "
            "gate is defined here for one expert per token"
        )
    out.set("gate_norm", "sigmoid", "model_type")
    out.set("gate_on_input", True, "model_type")
    _activation(k, out)
    out.shared = True


_DERIVERS = {
    "mixtral": _mixtral,
    "minimax": _mixtral,
    "switch": _switch,
    "qwen2_moe": _qwen,
    "qwen3_moe": _qwen,
    "qwen3_next": _qwen,
    "olmoe": _qwen,
    "flex_olmo": _qwen,
    "deepseek_moe": _deepseek_moe,
    "deepseek_v2": _deepseek_v2,
    "deepseek_v3": _deepseek_v3,
    "glm4_moe": _deepseek_v3,
    "gpt_oss": _gpt_oss,
    "granitemoe": _mixtral,  # the same keys and routing (top-k, then softmax over those k)
    "dbrx": _dbrx,
    "llama4": _llama4,
}
