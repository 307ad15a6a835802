"""Vector table of the cost formulas (spec §30.0, §40.4, §50.5): configuration -> bytes.

Every case is local: a protocol (or layer, or model) with its public shape in ``inputs``; the
file's local function evaluates the formula it names to its payload bytes per phase and
direction and its rounds (by the causal rule of spec §4.2), the case's ``outputs``; the MoE
layer and the projections of ``secmoe cost`` add the same per named step, in call order.
"""

from __future__ import annotations

from collections.abc import Callable

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_config
from secmoe.model.tables import TABLES
from secmoe.model.transformer import TransformerConfig, tiny_config
from secmoe.moe.cost import Step, demo_steps, moe_steps
from secmoe.moe.projection import PRESETS, step_report
from secmoe.protocols.cost import (
    Pattern,
    and_bits_cost,
    b2a_cost,
    lt_public_many_cost,
    millionaire_cost,
    msb_cost,
    mul_cost,
    mux_cost,
    onehot_cost,
    piecewise_cost,
    seq,
    square_cost,
    summary,
    trunc_cost,
)
from secmoe.protocols.linear import matmul_cost, matmul_ss_cost
from secmoe.protocols.norm import layernorm_cost, rmsnorm_cost
from secmoe.protocols.softmax import exp_cost, reciprocal_cost, softmax_cost
from secmoe.protocols.topk import argmax_cost, maximum_cost, topk_cost
from secmoe.transformer.block import attention_cost, transformer_block_cost
from secmoe.transformer.model import embed_cost, model_keys_cost, transformer_cost
from secmoe.vectors.play import CaseSpec, Group, param, table_file
from secmoe.vectors.registry import Json, Note

PROTOCOL = "cost.formulas"
L, F = 64, 18
NORMAL = Note("NORMAL", "an ordinary shape")


def pattern_json(p: Pattern) -> Json:
    """Bytes each way, per phase in first-use order, and the rounds of a pattern."""
    s = summary(p)
    return {
        "bytes": {"c2s": p.c2s, "s2c": p.s2c},
        "phases": {k: {"c2s": c, "s2c": v} for k, (c, v) in s.bytes.items()},
        "rounds": s.rounds,
    }


Formula = Callable[[Json, int, int], Pattern]  # (args, ring bits l, fraction bits f)

# The formula of each protocol of §30-§33, by its name in a case's inputs.
FORMULAS: dict[str, Formula] = {
    "mul": lambda a, l, f: mul_cost(a["n"], l),
    "and_bits": lambda a, l, f: and_bits_cost(a["n"]),
    "square": lambda a, l, f: square_cost(a["n"], l),
    "b2a": lambda a, l, f: b2a_cost(a["n"], l),
    "mux": lambda a, l, f: mux_cost(a["n"], l),
    "millionaire": lambda a, l, f: millionaire_cost(a["n"], a["bits"], fan=a["fan"]),
    "msb": lambda a, l, f: msb_cost(a["n"], l, a.get("width")),
    "lt_public_many": lambda a, l, f: lt_public_many_cost(a["n"], a["k"], l),
    "onehot": lambda a, l, f: onehot_cost(a["n"], a["entries"]),
    "trunc": lambda a, l, f: trunc_cost(a["n"], l, a["s"]),
    "piecewise": lambda a, l, f: piecewise_cost(a["n"], TABLES[a["table"]], l, f),
    "matmul": lambda a, l, f: matmul_cost(a["tokens"], a["d_in"], a["d_out"], l, f),
    "matmul_ss": lambda a, l, f: matmul_ss_cost(a["a"], a["b"], a["c"], l, f),
    "maximum": lambda a, l, f: maximum_cost(a["rows"], a["n"], l),
    "argmax": lambda a, l, f: argmax_cost(a["rows"], a["n"], l),
    "topk": lambda a, l, f: topk_cost(a["rows"], a["n"], a["k"], l, a["onehot"]),
    "exp": lambda a, l, f: exp_cost(a["n"], l, f),
    "reciprocal": lambda a, l, f: reciprocal_cost(a["n"], a["bound"], l, f),
    "softmax": lambda a, l, f: softmax_cost(a["rows"], a["n"], l, f),
    "layernorm": lambda a, l, f: layernorm_cost(a["t"], a["d"], l, f),
    "rmsnorm": lambda a, l, f: rmsnorm_cost(a["t"], a["d"], l, f),
}
# Each protocol of §30-§33 at one shape (l = 64, f = 18), in the file's order.
PROTOCOL_SHAPES: list[tuple[str, Json]] = [
    ("mul", {"n": 5}),
    ("and_bits", {"n": 9}),
    ("square", {"n": 3}),
    ("b2a", {"n": 7}),
    ("mux", {"n": 6}),
    ("millionaire", {"n": 4, "bits": 17, "fan": 1}),
    ("millionaire", {"n": 3, "bits": 63, "fan": 2}),
    ("msb", {"n": 4}),
    ("msb", {"n": 4, "width": 40}),
    ("lt_public_many", {"n": 2, "k": 3}),
    ("onehot", {"n": 2, "entries": 8}),
    ("trunc", {"n": 5, "s": F}),
    ("piecewise", {"n": 4, "table": "gelu"}),
    ("piecewise", {"n": 4, "table": "relu"}),
    ("matmul", {"tokens": 2, "d_in": 4, "d_out": 8}),
    ("matmul_ss", {"a": 2, "b": 4, "c": 3}),
    ("maximum", {"rows": 2, "n": 5}),
    ("argmax", {"rows": 2, "n": 5}),
    ("topk", {"rows": 1, "n": 8, "k": 2, "onehot": True}),
    ("exp", {"n": 4}),
    ("reciprocal", {"n": 2, "bound": 8}),
    ("softmax", {"rows": 2, "n": 4}),
    ("layernorm", {"t": 2, "d": 4}),
    ("rmsnorm", {"t": 2, "d": 4}),
]

# The model steps of spec §50.5, by name: (the tiny model's configuration, args) -> pattern.
MODEL_FORMULAS: dict[str, Callable[[TransformerConfig, Json], Pattern]] = {
    "model_keys": lambda c, a: model_keys_cost(c, fresh_ot=a["fresh_ot"]),
    "embed": lambda c, a: embed_cost(c, a["tokens"]),
    "attention": lambda c, a: attention_cost(c, a["tokens"]),
    "transformer_block": lambda c, a: transformer_block_cost(c, a["tokens"]),
    "transformer": lambda c, a: transformer_cost(c, a["tokens"], fresh_ot=a["fresh_ot"]),
}
MODEL_RUNS: list[tuple[str, Json]] = [
    ("model_keys", {"fresh_ot": False}),
    ("model_keys", {"fresh_ot": True}),
    ("embed", {"tokens": 4}),
    ("attention", {"tokens": 4}),
    ("transformer_block", {"tokens": 3}),
    ("transformer", {"tokens": 2, "fresh_ot": False}),
    ("transformer", {"tokens": 4, "fresh_ot": True}),
]
# The layer runs of group 2: the MoE layer (every set-up), or the demo's delivery (§40.5).
DEMO_RUN = "demo_client/demo_server"


def _layer_json(steps: list[Step]) -> Json:
    """The layer's pattern, and the same numbers per named step in call order."""
    out = pattern_json(seq(p for _, p in steps))
    out["steps"] = {
        name: {
            "bytes": {"c2s": r["bytes_c2s"], "s2c": r["bytes_s2c"]},
            "phases": {
                k: {"c2s": v["bytes_c2s"], "s2c": v["bytes_s2c"]} for k, v in r["phases"].items()
            },
            "rounds": r["rounds"],
        }
        for name, r in step_report(steps).items()
    }
    return out


def _cost(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """The case's formula: a layer run (``run``), a model step (``config`` of the transformer)
    or a protocol at ``args`` over the ring of its inputs."""
    if "run" in inputs:
        config, tokens = MoEConfig(**inputs["config"]), int(inputs["tokens"])
        if inputs["run"] not in ("moe", DEMO_RUN):
            raise SpecError(f"unknown layer run {inputs['run']!r}")
        demo = inputs["run"] == DEMO_RUN
        steps = demo_steps(config, tokens) if demo else moe_steps(config, tokens, True, True)
        return _layer_json(steps), None
    name = str(inputs["protocol"])
    if "config" in inputs:
        model = transformer_config_of(inputs["config"])
        return pattern_json(MODEL_FORMULAS[name](model, inputs["args"])), None
    bits, frac = param(inputs, "ring_bits"), param(inputs, "frac_bits")
    return pattern_json(FORMULAS[name](inputs["args"], bits, frac)), None


def _protocol_cases() -> list[CaseSpec]:
    cases = []
    seen: dict[str, int] = {}
    for name, args in PROTOCOL_SHAPES:
        index = seen.get(name, 0)
        seen[name] = index + 1
        inputs = {"protocol": name, "args": args, "ring_bits": L, "frac_bits": F}
        cases.append(
            CaseSpec(
                f"{PROTOCOL}/protocols/{name}/{index}",
                f"{name} at {args}, warm OT sessions",
                inputs,
            )
        )
    return cases


def _layer_case(case_id: str, comment: str, config: MoEConfig, tokens: int, run: str) -> CaseSpec:
    return CaseSpec(case_id, comment, {"run": run, "config": config.as_dict(), "tokens": tokens})


def _layer_cases() -> list[CaseSpec]:
    cases = [
        _layer_case(f"{PROTOCOL}/moe/{name}", f"secmoe cost --preset {name}", config, 1, "moe")
        for name, config in PRESETS.items()
    ]
    small = MoEConfig(d_model=8, d_ff=16, n_experts=4, top_k=2, expert_kind="swiglu")
    shared = MoEConfig(d_model=8, d_ff=16, n_experts=4, n_shared_experts=1, d_ff_shared=8)
    demo = default_config()
    cases += [
        _layer_case(f"{PROTOCOL}/moe/swiglu_top2", "swiglu top-2, 3 tokens", small, 3, "moe"),
        _layer_case(f"{PROTOCOL}/moe/shared", "geglu top-1, one shared expert", shared, 2, "moe"),
        _layer_case(f"{PROTOCOL}/demo/t1", "secmoe cost (the demo, 1 token)", demo, 1, DEMO_RUN),
        _layer_case(f"{PROTOCOL}/demo/t4", "secmoe cost --tokens 4", demo, 4, DEMO_RUN),
    ]
    return cases


def transformer_config_json(c: TransformerConfig) -> Json:
    """Every field of a transformer configuration, the MoE layer's as ``MoEConfig`` fields."""
    return {
        "vocab_size": c.vocab_size,
        "n_heads": c.n_heads,
        "n_blocks": c.n_blocks,
        "max_len": c.max_len,
        "head": c.head,
        "n_classes": c.n_classes,
        "causal": c.causal,
        "ln_eps": repr(float(c.ln_eps)),
        "moe": c.moe.as_dict(),
    }


def transformer_config_of(config: Json) -> TransformerConfig:
    """The inverse of :func:`transformer_config_json`."""
    fields = {k: v for k, v in config.items() if k not in ("moe", "ln_eps")}
    return TransformerConfig(
        moe=MoEConfig(**config["moe"]), ln_eps=float(config["ln_eps"]), **fields
    )


def _transformer_cases() -> list[CaseSpec]:
    config = transformer_config_json(tiny_config())
    return [
        CaseSpec(
            f"{PROTOCOL}/transformer/{name}/{i}",
            f"{name} of the tiny model, {args}",
            {"protocol": name, "args": args, "config": config},
        )
        for i, (name, args) in enumerate(MODEL_RUNS)
    ]


def _cost_groups() -> list[Group]:
    params: Json = {"ring_bits": L, "frac_bits": F}
    return [
        Group(params, _protocol_cases()),
        Group(params, _layer_cases()),
        Group(params, _transformer_cases()),
    ]


table_file(
    PROTOCOL,
    "cost/formulas.json",
    section="40.4",
    anchor="spec/40-moe.md#404-cost",
    params={"ring_bits": L, "frac_bits": F, "ot_engine": "iknp"},
    header=[
        "The cost formulas: a protocol, layer or model at a public shape -> payload bytes each",
        "way (c2s, s2c), per phase in the order phases are first used, and rounds (spec 4.2's",
        "causal rule over the composed message pattern). Group 1: the protocols of spec 30-33",
        "with warm OT sessions (inputs.args name the formula's arguments). Group 2: one MoE",
        "layer in a fresh session (OT and HE set-ups included; secmoe cost --preset/--json) and",
        "the demo's delivery (spec 40.5), with the same numbers per named step in call order",
        "(outputs.steps). Group 3: the model steps of spec 50.5 on the tiny model.",
    ],
    notes={"Normal": NORMAL},
    fn=_cost,
    groups=_cost_groups,
)
