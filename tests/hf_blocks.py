"""Tiny checkpoints in each Hugging Face MoE family's published naming, with their config.json,
and a float reference of each family's published MoE block, written here in numpy from the
published semantics (the families' modeling code, read for its arithmetic) and independent of
``secmoe.model.plain``: the loader is right when ``moe_float`` of the loaded layer equals these.

Each reference returns ``(y, experts)``: the block's output (T, d) and, per token, the sorted
indices of the experts it routes to (T, k).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secmoe.model.safetensors import write_safetensors

Arr = np.ndarray
Reference = Callable[[Arr], tuple[Arr, Arr]]
D = 8  # d_model of every case


def silu(u: Arr) -> Arr:
    out: Arr = u / (1.0 + np.exp(-u))
    return out


def gelu(u: Arr) -> Arr:
    erf = np.vectorize(math.erf)
    out: Arr = 0.5 * u * (1.0 + erf(u / math.sqrt(2.0)))
    return out


def sigmoid(u: Arr) -> Arr:
    out: Arr = 1.0 / (1.0 + np.exp(-u))
    return out


def softmax(z: Arr) -> Arr:
    e = np.exp(z - z.max())
    out: Arr = e / e.sum()
    return out


def top(scores: Arr, k: int) -> Arr:
    """torch.topk's indices (distinct random scores: no ties)."""
    out: Arr = np.argsort(-scores, kind="stable")[:k]
    return out


@dataclass
class Case:
    """One family's tiny checkpoint: its config.json, tensors, the MoE layer, the reference, the
    MoEConfig fields the loader must derive, and the fields the secure layer does not yet run."""

    name: str
    family: str
    config: dict[str, object]
    tensors: dict[str, Arr]
    layer: int
    reference: Reference
    expect: dict[str, object]
    nonplain: tuple[str, ...] = ()

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        write_safetensors(folder / "model.safetensors", self.tensors, "F32")
        (folder / "config.json").write_text(json.dumps(self.config, indent=2))
        return folder


class _Gen:
    """Weights exactly representable in F32 (the file's dtype), so references use the stored
    values."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int, scale: float = 0.4) -> Arr:
        a = self.rng.uniform(-scale, scale, shape).astype(np.float32).astype(np.float64)
        return a


def tokens(t: int = 3, seed: int = 99) -> Arr:
    x: Arr = np.random.default_rng(seed).uniform(-2, 2, (t, D))
    return x.astype(np.float32).astype(np.float64)


def glu(w_gate: Arr, w_up: Arr, w_down: Arr, x: Arr, act: Callable[[Arr], Arr] = silu) -> Arr:
    """An MLP in the nn.Linear (out, in) layout: down(act(gate x) * up x)."""
    out: Arr = w_down @ (act(w_gate @ x) * (w_up @ x))
    return out


def _run(
    x: Arr, k: int, route: Callable[[Arr], tuple[Arr, Arr]], block: Callable[..., Arr]
) -> tuple[Arr, Arr]:
    """Per token: ``route`` gives (experts, weights); ``block(t, experts, weights)`` the output."""
    ys, chosen = [], []
    for xt in x:
        idx, w = route(xt)
        ys.append(block(xt, idx, w))
        chosen.append(np.sort(idx))
    return np.array(ys), np.array(chosen).reshape(len(x), k)


# --- softmax routers over per-expert GLU MLPs (Mixtral, Qwen, OLMoE, DeepSeek-V2) -------------


def _per_expert(
    g: _Gen, p: str, e: int, ff: int, parts: tuple[str, str, str], style: str = "{p}experts.{i}."
) -> dict[str, Arr]:
    out = {}
    for i in range(e):
        q = style.format(p=p, i=i)
        out[q + parts[0] + ".weight"] = g(ff, D)
        out[q + parts[1] + ".weight"] = g(ff, D)
        out[q + parts[2] + ".weight"] = g(D, ff)
    return out


def mixtral(model_type: str = "mixtral", layer: int = 0, seed: int = 1) -> Case:
    g, e, ff, k = _Gen(seed), 4, 6, 2
    p = f"model.layers.{layer}.block_sparse_moe."
    t = {p + "gate.weight": g(e, D, scale=0.6)} | _per_expert(g, p, e, ff, ("w1", "w3", "w2"))

    def route(xt: Arr) -> tuple[Arr, Arr]:
        probs = softmax(t[p + "gate.weight"] @ xt)
        idx = top(probs, k)
        return idx, probs[idx] / probs[idx].sum()

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        q = p + "experts.{}."
        return sum(
            wi
            * glu(
                t[q.format(i) + "w1.weight"],
                t[q.format(i) + "w3.weight"],
                t[q.format(i) + "w2.weight"],
                xt,
            )
            for i, wi in zip(idx, w, strict=True)
        )

    config = {
        "model_type": model_type,
        "architectures": ["MixtralForCausalLM"],
        "num_local_experts": e,
        "num_experts_per_tok": k,
        "hidden_act": "silu",
    }
    return Case(
        model_type,
        model_type,
        config,
        t,
        layer,
        lambda x: _run(x, k, route, block),
        {"top_k": 2, "gate_norm": "softmax_topk", "expert_kind": "swiglu", "n_experts": 4},
    )


def switch(capacity: int = 64) -> Case:
    g, e, ff = _Gen(2), 4, 6
    p = "encoder.block.1.layer.1.mlp."
    t = {p + "router.classifier.weight": g(e, D, scale=0.6)}
    for i in range(e):
        t[f"{p}experts.expert_{i}.wi.weight"] = g(ff, D)
        t[f"{p}experts.expert_{i}.wo.weight"] = g(D, ff)

    def route(xt: Arr) -> tuple[Arr, Arr]:
        probs = softmax(t[p + "router.classifier.weight"] @ xt)
        i = int(np.argmax(probs))
        return np.array([i]), np.array([probs[i]])

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        i = int(idx[0])
        h = np.maximum(t[f"{p}experts.expert_{i}.wi.weight"] @ xt, 0.0)
        out: Arr = w[0] * (t[f"{p}experts.expert_{i}.wo.weight"] @ h)
        return out

    def reference(x: Arr) -> tuple[Arr, Arr]:
        # A token past the capacity of its expert (counted in sequence order) gets no expert
        # output: SwitchTransformersSparseMLP starts from zeros ("If a token gets dropped, we
        # just set it to zero"), so the layer passes only the residual on. (transformers 4.2x
        # started from a copy of the input instead: p * x; spec §6.8.4.)
        y, chosen = _run(x, 1, route, block)
        for s in range(len(x)):
            i = int(chosen[s, 0])
            if int(np.sum(chosen[: s + 1, 0] == i)) > capacity:
                y[s] = 0.0
        return y, chosen

    config = {
        "model_type": "switch_transformers",
        "num_experts": e,
        "expert_capacity": capacity,
        "dense_act_fn": "relu",
        "is_gated_act": False,
        "d_model": D,
        "d_ff": ff,
    }
    name = "switch" if capacity >= 64 else "switch_capacity"
    return Case(
        name,
        "switch",
        config,
        t,
        1,
        reference,
        {"top_k": 1, "gate_norm": "softmax", "expert_kind": "relu", "n_experts": 4},
    )


def _softmax_glu(
    name: str,
    model_type: str,
    *,
    seed: int,
    e: int = 6,
    k: int = 2,
    norm: bool | None = False,
    shared: str | None = None,
    shared_gate: bool = False,
    n_shared: int = 1,
    groups: tuple[int, int] | None = None,
    scaling: float = 1.0,
    layer: int = 1,
) -> Case:
    """The softmax-then-top-k blocks named model.layers.N.mlp.{gate,experts.i.*_proj}: Qwen2/3-MoE,
    Qwen3-Next, OLMoE, FlexOlmo, DeepSeek-V2."""
    g, ff = _Gen(seed), 4
    p = f"model.layers.{layer}.mlp."
    t = {p + "gate.weight": g(e, D, scale=0.6)} | _per_expert(
        g, p, e, ff, ("gate_proj", "up_proj", "down_proj")
    )
    sff = 5 if shared == "shared_expert." else ff * n_shared
    if shared is not None:
        t |= _per_expert(g, p, 1, sff, ("gate_proj", "up_proj", "down_proj"), "{p}" + shared)
    if shared_gate:
        t[p + "shared_expert_gate.weight"] = g(1, D)

    def route(xt: Arr) -> tuple[Arr, Arr]:
        probs = softmax(t[p + "gate.weight"] @ xt)
        keys = probs
        if groups is not None:  # DeepSeek-V2 group_limited_greedy: groups by their best score
            n_group, topk_group = groups
            best = probs.reshape(n_group, -1).max(axis=1)
            keep = np.zeros(n_group, bool)
            keep[top(best, topk_group)] = True
            keys = np.where(np.repeat(keep, e // n_group), probs, 0.0)
        idx = top(keys, k)
        w = probs[idx]
        if norm:
            w = w / w.sum()
        return idx, w * scaling

    def mlp(q: str, xt: Arr) -> Arr:
        return glu(
            t[q + "gate_proj.weight"], t[q + "up_proj.weight"], t[q + "down_proj.weight"], xt
        )

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        y = sum(wi * mlp(f"{p}experts.{i}.", xt) for i, wi in zip(idx, w, strict=True))
        if shared is not None:
            s = mlp(p + shared, xt)
            if shared_gate:
                s = sigmoid(t[p + "shared_expert_gate.weight"] @ xt)[0] * s
            y = y + s
        out: Arr = y
        return out

    config: dict[str, object] = {
        "model_type": model_type,
        "num_experts_per_tok": k,
        "hidden_act": "silu",
        "moe_intermediate_size": ff,
    }
    if model_type == "deepseek_v2":
        config |= {
            "n_routed_experts": e,
            "n_shared_experts": n_shared,
            "scoring_func": "softmax",
            "routed_scaling_factor": scaling,
            "norm_topk_prob": False,
            "topk_method": "greedy" if groups is None else "group_limited_greedy",
        }
        if groups is not None:
            config |= {"n_group": groups[0], "topk_group": groups[1]}
    else:
        config |= {"num_experts": e}
        if norm is not None:
            config["norm_topk_prob"] = norm
        if shared is not None:
            config["shared_expert_intermediate_size"] = sff
    expect: dict[str, object] = {
        "top_k": k,
        "gate_norm": "softmax_topk" if norm else "softmax",
        "expert_kind": "swiglu",
        "n_experts": e,
        "n_shared_experts": 0 if shared is None else 1,
        "shared_gate": shared_gate,
    }
    nonplain: list[str] = []
    if shared_gate:
        nonplain.append("shared_gate")
    if groups is not None:
        expect |= {"n_groups": groups[0], "topk_groups": groups[1], "group_score": "max"}
        nonplain += ["n_groups", "topk_groups", "group_score"]
    if scaling != 1.0:
        expect["routed_scaling"] = scaling
        nonplain.append("routed_scaling")
    return Case(
        name,
        model_type,
        config,
        t,
        layer,
        lambda x: _run(x, k, route, block),
        expect,
        tuple(nonplain),
    )


def qwen2_moe() -> Case:
    return _softmax_glu(
        "qwen2_moe", "qwen2_moe", seed=3, k=2, norm=False, shared="shared_expert.", shared_gate=True
    )


def qwen3_moe(norm: bool) -> Case:
    return _softmax_glu(
        f"qwen3_moe_norm_{str(norm).lower()}", "qwen3_moe", seed=4 + norm, k=2, norm=norm
    )


def olmoe() -> Case:
    return _softmax_glu("olmoe", "olmoe", seed=6, e=8, k=2, norm=False, layer=0)


def flex_olmo() -> Case:
    return _softmax_glu("flex_olmo", "flex_olmo", seed=7, e=4, k=2, norm=True)


def qwen3_next() -> Case:
    return _softmax_glu(
        "qwen3_next",
        "qwen3_next",
        seed=8,
        k=2,
        norm=True,
        shared="shared_expert.",
        shared_gate=True,
    )


def deepseek_v2(grouped: bool) -> Case:
    if not grouped:
        return _softmax_glu(
            "deepseek_v2",
            "deepseek_v2",
            seed=9,
            e=6,
            k=2,
            norm=None,
            shared="shared_experts.",
            n_shared=2,
        )
    return _softmax_glu(
        "deepseek_v2_grouped",
        "deepseek_v2",
        seed=10,
        e=8,
        k=2,
        norm=None,
        shared="shared_experts.",
        n_shared=1,
        groups=(4, 2),
        scaling=2.5,
    )


# --- sigmoid routers with a score-correction bias (DeepSeek-V3, GLM4-MoE) ---------------------


def sigmoid_grouped(model_type: str, n_group: int, topk_group: int, seed: int) -> Case:
    g, e, ff, k, scaling = _Gen(seed), 8, 4, 2, 2.5
    p = "model.layers.1.mlp."
    t = {p + "gate.weight": g(e, D, scale=0.6), p + "gate.e_score_correction_bias": g(e, scale=0.2)}
    t |= _per_expert(g, p, e, ff, ("gate_proj", "up_proj", "down_proj"))
    t |= _per_expert(g, p, 1, 2 * ff, ("gate_proj", "up_proj", "down_proj"), "{p}shared_experts.")

    def route(xt: Arr) -> tuple[Arr, Arr]:
        scores = sigmoid(t[p + "gate.weight"] @ xt)
        choice = scores + t[p + "gate.e_score_correction_bias"]
        grouped = choice.reshape(n_group, -1)
        group_scores = np.sort(grouped, axis=1)[:, -2:].sum(axis=1)
        keep = np.zeros(n_group, bool)
        keep[top(group_scores, topk_group)] = True
        idx = top(np.where(np.repeat(keep, e // n_group), choice, 0.0), k)
        w = scores[idx]
        w = w / (w.sum() + 1e-20)
        return idx, w * scaling

    def mlp(q: str, xt: Arr) -> Arr:
        return glu(
            t[q + "gate_proj.weight"], t[q + "up_proj.weight"], t[q + "down_proj.weight"], xt
        )

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        y = sum(wi * mlp(f"{p}experts.{i}.", xt) for i, wi in zip(idx, w, strict=True))
        out: Arr = y + mlp(p + "shared_experts.", xt)
        return out

    config = {
        "model_type": model_type,
        "n_routed_experts": e,
        "num_experts_per_tok": k,
        "n_shared_experts": 2,
        "moe_intermediate_size": ff,
        "n_group": n_group,
        "topk_group": topk_group,
        "norm_topk_prob": True,
        "routed_scaling_factor": scaling,
        "hidden_act": "silu",
        "first_k_dense_replace": 1,
    }
    if model_type == "deepseek_v3":
        config |= {"scoring_func": "sigmoid", "topk_method": "noaux_tc"}
    expect: dict[str, object] = {
        "top_k": k,
        "gate_norm": "sigmoid_topk",
        "score_bias": True,
        "routed_scaling": scaling,
        "n_shared_experts": 1,
    }
    nonplain = ["gate_norm", "score_bias"]
    if n_group > 1:
        expect |= {"n_groups": n_group, "topk_groups": topk_group, "group_score": "top2_sum"}
        nonplain += ["n_groups", "topk_groups"]
    nonplain.append("routed_scaling")
    return Case(
        model_type,
        model_type,
        config,
        t,
        1,
        lambda x: _run(x, k, route, block),
        expect,
        tuple(nonplain),
    )


def deepseek_v3() -> Case:
    return sigmoid_grouped("deepseek_v3", 4, 2, 11)


def glm4_moe() -> Case:
    return sigmoid_grouped("glm4_moe", 1, 1, 12)


# --- fused expert layouts ---------------------------------------------------------------------


def gpt_oss() -> Case:
    g, e, ff, k, limit, alpha = _Gen(13), 4, 6, 2, 7.0, 1.702
    p = "model.layers.0.mlp."
    t = {
        p + "router.weight": g(e, D, scale=0.6),
        p + "router.bias": g(e, scale=0.3),
        p + "experts.gate_up_proj": g(e, D, 2 * ff, scale=1.5),  # x @ W layout, interleaved
        p + "experts.gate_up_proj_bias": g(e, 2 * ff, scale=0.5),
        p + "experts.down_proj": g(e, ff, D),
        p + "experts.down_proj_bias": g(e, D, scale=0.2),
    }

    def route(xt: Arr) -> tuple[Arr, Arr]:
        logits = t[p + "router.weight"] @ xt + t[p + "router.bias"]
        idx = top(logits, k)
        return idx, softmax(logits[idx])

    def expert(i: int, xt: Arr) -> Arr:
        gate_up = xt @ t[p + "experts.gate_up_proj"][i] + t[p + "experts.gate_up_proj_bias"][i]
        gate = np.minimum(gate_up[0::2], limit)
        up = np.clip(gate_up[1::2], -limit, limit)
        h = (up + 1.0) * (gate * sigmoid(gate * alpha))
        out: Arr = h @ t[p + "experts.down_proj"][i] + t[p + "experts.down_proj_bias"][i]
        return out

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        return sum(wi * expert(int(i), xt) for i, wi in zip(idx, w, strict=True))

    config = {
        "model_type": "gpt_oss",
        "num_local_experts": e,
        "num_experts_per_tok": k,
        "swiglu_limit": limit,
        "intermediate_size": ff,
    }
    expect = {
        "top_k": k,
        "gate_norm": "softmax_topk",
        "expert_kind": "gptoss",
        "router_bias": True,
        "expert_bias": True,
    }
    return Case(
        "gpt_oss",
        "gpt_oss",
        config,
        t,
        0,
        lambda x: _run(x, k, route, block),
        expect,
        ("expert_kind", "router_bias", "expert_bias"),
    )


def granitemoe() -> Case:
    g, e, ff, k = _Gen(14), 4, 6, 2
    p = "model.layers.0.block_sparse_moe."
    t = {
        p + "router.layer.weight": g(e, D, scale=0.6),
        p + "input_linear.weight": g(e, 2 * ff, D),
        p + "output_linear.weight": g(e, D, ff),
    }

    def route(xt: Arr) -> tuple[Arr, Arr]:
        logits = t[p + "router.layer.weight"] @ xt
        idx = top(logits, k)
        return idx, softmax(logits[idx])

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        y = np.zeros(D)
        for i, wi in zip(idx, w, strict=True):
            h = t[p + "input_linear.weight"][i] @ xt
            y += wi * (t[p + "output_linear.weight"][i] @ (silu(h[:ff]) * h[ff:]))
        return y

    config = {
        "model_type": "granitemoe",
        "num_local_experts": e,
        "num_experts_per_tok": k,
        "hidden_act": "silu",
        "intermediate_size": ff,
    }
    return Case(
        "granitemoe",
        "granitemoe",
        config,
        t,
        0,
        lambda x: _run(x, k, route, block),
        {"top_k": k, "gate_norm": "softmax_topk", "expert_kind": "swiglu"},
    )


def dbrx() -> Case:
    g, e, ff, k = _Gen(15), 4, 6, 2
    p = "transformer.blocks.0.ffn."
    t = {
        p + "router.layer.weight": g(e, D, scale=0.6),
        p + "experts.mlp.w1": g(e * ff, D),
        p + "experts.mlp.v1": g(e * ff, D),
        p + "experts.mlp.w2": g(e * ff, D),
    }

    def route(xt: Arr) -> tuple[Arr, Arr]:
        probs = softmax(t[p + "router.layer.weight"] @ xt)
        idx = top(probs, k)
        w = probs[idx]
        return idx, w / np.abs(w).sum()  # moe_normalize_expert_weights = 1: the 1-norm

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        y = np.zeros(D)
        for i, wi in zip(idx, w, strict=True):
            rows = slice(i * ff, (i + 1) * ff)
            w1, v1, w2 = (t[p + f"experts.mlp.{n}"][rows] for n in ("w1", "v1", "w2"))
            y += wi * ((silu(xt @ w1.T) * (xt @ v1.T)) @ w2)
        return y

    config = {
        "model_type": "dbrx",
        "d_model": D,
        "ffn_config": {
            "moe_num_experts": e,
            "moe_top_k": k,
            "ffn_hidden_size": ff,
            "moe_normalize_expert_weights": 1,
            "ffn_act_fn": {"name": "silu"},
        },
    }
    return Case(
        "dbrx",
        "dbrx",
        config,
        t,
        0,
        lambda x: _run(x, k, route, block),
        {"top_k": k, "gate_norm": "softmax_topk", "expert_kind": "swiglu"},
    )


def llama4() -> Case:
    g, e, ff = _Gen(16), 4, 6
    p = "language_model.model.layers.1.feed_forward."
    t = {
        p + "router.weight": g(e, D, scale=0.6),
        p + "experts.gate_up_proj": g(e, D, 2 * ff),  # x @ W layout, gate then up
        p + "experts.down_proj": g(e, ff, D),
    } | _per_expert(g, p, 1, ff, ("gate_proj", "up_proj", "down_proj"), "{p}shared_expert.")

    def route(xt: Arr) -> tuple[Arr, Arr]:
        logits = t[p + "router.weight"] @ xt
        idx = top(logits, 1)
        return idx, sigmoid(logits[idx])

    def block(xt: Arr, idx: Arr, w: Arr) -> Arr:
        i = int(idx[0])
        routed_in = xt * w[0]  # Llama4 scales the expert's input, not its output
        gate_up = routed_in @ t[p + "experts.gate_up_proj"][i]
        routed = (gate_up[ff:] * silu(gate_up[:ff])) @ t[p + "experts.down_proj"][i]
        q = p + "shared_expert."
        shared = glu(
            t[q + "gate_proj.weight"], t[q + "up_proj.weight"], t[q + "down_proj.weight"], xt
        )
        out: Arr = shared + routed
        return out

    config = {
        "model_type": "llama4",
        "architectures": ["Llama4ForConditionalGeneration"],
        "text_config": {
            "model_type": "llama4_text",
            "num_local_experts": e,
            "num_experts_per_tok": 1,
            "hidden_act": "silu",
            "intermediate_size": ff,
            "interleave_moe_layer_step": 1,
        },
    }
    return Case(
        "llama4",
        "llama4",
        config,
        t,
        1,
        lambda x: _run(x, 1, route, block),
        {"top_k": 1, "gate_norm": "sigmoid", "gate_on_input": True, "n_shared_experts": 1},
        ("gate_norm", "gate_on_input"),
    )


def all_cases() -> list[Case]:
    return [
        mixtral(),
        mixtral("minimax", 1, seed=17),
        switch(),
        qwen2_moe(),
        qwen3_moe(False),
        qwen3_moe(True),
        olmoe(),
        flex_olmo(),
        qwen3_next(),
        deepseek_v2(False),
        deepseek_v2(True),
        deepseek_v3(),
        glm4_moe(),
        gpt_oss(),
        granitemoe(),
        dbrx(),
        llama4(),
    ]
