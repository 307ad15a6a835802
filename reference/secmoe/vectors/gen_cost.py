"""Vector generator for the cost formulas (spec §30.0, §40.4, §50.5): configuration -> bytes.

Every case is local: a protocol (or layer, or model) with its public shape in ``inputs``, and
the formula's payload bytes per phase and direction and its rounds (by the causal rule of
spec §4.2) in ``outputs``; the MoE layer and the projections of ``secmoe cost`` add the same
per named step, in call order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secmoe.model.config import MoEConfig
from secmoe.model.default import default_config
from secmoe.model.tables import TABLES
from secmoe.model.transformer import TransformerConfig, tiny_config
from secmoe.moe.cost import demo_steps, moe_steps
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
from secmoe.vectors.build import local_case
from secmoe.vectors.registry import Json, Note, register

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


# (name, arguments, formula): each protocol of §30-§33 at one shape, l = 64, f = 18.
PROTOCOL_SHAPES: list[tuple[str, dict[str, Any], Callable[[], Pattern]]] = [
    ("mul", {"n": 5}, lambda: mul_cost(5, L)),
    ("and_bits", {"n": 9}, lambda: and_bits_cost(9)),
    ("square", {"n": 3}, lambda: square_cost(3, L)),
    ("b2a", {"n": 7}, lambda: b2a_cost(7, L)),
    ("mux", {"n": 6}, lambda: mux_cost(6, L)),
    ("millionaire", {"n": 4, "bits": 17, "fan": 1}, lambda: millionaire_cost(4, 17)),
    ("millionaire", {"n": 3, "bits": 63, "fan": 2}, lambda: millionaire_cost(3, 63, fan=2)),
    ("msb", {"n": 4}, lambda: msb_cost(4, L)),
    ("msb", {"n": 4, "width": 40}, lambda: msb_cost(4, L, 40)),
    ("lt_public_many", {"n": 2, "k": 3}, lambda: lt_public_many_cost(2, 3, L)),
    ("onehot", {"n": 2, "entries": 8}, lambda: onehot_cost(2, 8)),
    ("trunc", {"n": 5, "s": F}, lambda: trunc_cost(5, L, F)),
    ("piecewise", {"n": 4, "table": "gelu"}, lambda: piecewise_cost(4, TABLES["gelu"], L, F)),
    ("piecewise", {"n": 4, "table": "relu"}, lambda: piecewise_cost(4, TABLES["relu"], L, F)),
    ("matmul", {"tokens": 2, "d_in": 4, "d_out": 8}, lambda: matmul_cost(2, 4, 8, L, F)),
    ("matmul_ss", {"a": 2, "b": 4, "c": 3}, lambda: matmul_ss_cost(2, 4, 3, L, F)),
    ("maximum", {"rows": 2, "n": 5}, lambda: maximum_cost(2, 5, L)),
    ("argmax", {"rows": 2, "n": 5}, lambda: argmax_cost(2, 5, L)),
    ("topk", {"rows": 1, "n": 8, "k": 2, "onehot": True}, lambda: topk_cost(1, 8, 2, L, True)),
    ("exp", {"n": 4}, lambda: exp_cost(4, L, F)),
    ("reciprocal", {"n": 2, "bound": 8}, lambda: reciprocal_cost(2, 8, L, F)),
    ("softmax", {"rows": 2, "n": 4}, lambda: softmax_cost(2, 4, L, F)),
    ("layernorm", {"t": 2, "d": 4}, lambda: layernorm_cost(2, 4, L, F)),
    ("rmsnorm", {"t": 2, "d": 4}, lambda: rmsnorm_cost(2, 4, L, F)),
]


def _protocol_cases() -> list[Json]:
    cases: list[Json] = []
    seen: dict[str, int] = {}
    for name, args, formula in PROTOCOL_SHAPES:
        index = seen.get(name, 0)
        seen[name] = index + 1
        cases.append(
            local_case(
                f"{PROTOCOL}/protocols/{name}/{index}",
                f"{name} at {args}, warm OT sessions",
                flags=["Normal"],
                inputs={"protocol": name, "args": args, "ring_bits": L, "frac_bits": F},
                outputs=pattern_json(formula()),
            )
        )
    return cases


def _layer_case(case_id: str, comment: str, config: MoEConfig, tokens: int, demo: bool) -> Json:
    steps = demo_steps(config, tokens) if demo else moe_steps(config, tokens, True, True)
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
    what = "demo_client/demo_server" if demo else "moe"
    return local_case(
        case_id,
        comment,
        flags=["Normal"],
        inputs={"run": what, "config": config.as_dict(), "tokens": tokens},
        outputs=out,
    )


def _layer_cases() -> list[Json]:
    cases = [
        _layer_case(f"{PROTOCOL}/moe/{name}", f"secmoe cost --preset {name}", config, 1, demo=False)
        for name, config in PRESETS.items()
    ]
    small = MoEConfig(d_model=8, d_ff=16, n_experts=4, top_k=2, expert_kind="swiglu")
    shared = MoEConfig(d_model=8, d_ff=16, n_experts=4, n_shared_experts=1, d_ff_shared=8)
    cases += [
        _layer_case(f"{PROTOCOL}/moe/swiglu_top2", "swiglu top-2, 3 tokens", small, 3, False),
        _layer_case(f"{PROTOCOL}/moe/shared", "geglu top-1, one shared expert", shared, 2, False),
        _layer_case(
            f"{PROTOCOL}/demo/t1", "secmoe cost (the demo, 1 token)", default_config(), 1, True
        ),
        _layer_case(f"{PROTOCOL}/demo/t4", "secmoe cost --tokens 4", default_config(), 4, True),
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


def _transformer_cases() -> list[Json]:
    c = tiny_config()
    runs: list[tuple[str, dict[str, Any], Pattern]] = [
        ("model_keys", {"fresh_ot": False}, model_keys_cost(c)),
        ("model_keys", {"fresh_ot": True}, model_keys_cost(c, fresh_ot=True)),
        ("embed", {"tokens": 4}, embed_cost(c, 4)),
        ("attention", {"tokens": 4}, attention_cost(c, 4)),
        ("transformer_block", {"tokens": 3}, transformer_block_cost(c, 3)),
        ("transformer", {"tokens": 2, "fresh_ot": False}, transformer_cost(c, 2)),
        ("transformer", {"tokens": 4, "fresh_ot": True}, transformer_cost(c, 4, fresh_ot=True)),
    ]
    cases: list[Json] = []
    for i, (name, args, p) in enumerate(runs):
        cases.append(
            local_case(
                f"{PROTOCOL}/transformer/{name}/{i}",
                f"{name} of the tiny model, {args}",
                flags=["Normal"],
                inputs={"protocol": name, "args": args, "config": transformer_config_json(c)},
                outputs=pattern_json(p),
            )
        )
    return cases


@register(
    PROTOCOL,
    "cost/formulas.json",
    section="40.4",
    anchor="spec/40-moe.md#404-cost",
    params={"ring_bits": L, "frac_bits": F, "ot_engine": "iknp"},
    mode="local",
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
)
def _cost_vectors() -> list[Json]:
    params: Json = {"ring_bits": L, "frac_bits": F}
    return [
        {"params": params, "tests": _protocol_cases()},
        {"params": params, "tests": _layer_cases()},
        {"params": params, "tests": _transformer_cases()},
    ]
