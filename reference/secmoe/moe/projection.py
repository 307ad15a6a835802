"""Cost projections from the spec's formulas, without running the crypto (spec/40-moe.md §40.4).

``secmoe cost`` prints the bytes and rounds of exactly what ``secmoe demo`` runs, or of one MoE
layer at the shapes of published models, per token. Every number is the message pattern of
``secmoe.moe.cost``, which the tests compare with measured runs byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_config
from secmoe.moe.cost import Step, demo_steps, moe_steps
from secmoe.protocols.cost import Pattern, seq, summary

# Published shapes of one MoE layer (d_model, d_ff per routed expert, experts, top-k, ...).
# Switch-Base as the paper evaluates it (GeGLU experts, top-1); Mixtral-8x7B (Mistral AI, 2024:
# d 4096, d_ff 14336, 8 experts, top-2, SwiGLU, renormalised gates); DeepSeekMoE-16B (DeepSeek-AI,
# 2024: d 2048, 64 routed experts of d_ff 1408, top-6, 2 shared experts, softmax gates).
PRESETS: dict[str, MoEConfig] = {
    **{
        f"switch-base-{e}": MoEConfig(d_model=768, d_ff=3072, n_experts=e)
        for e in (8, 16, 32, 64, 128)
    },
    "mixtral-8x7b": MoEConfig(
        d_model=4096,
        d_ff=14336,
        n_experts=8,
        top_k=2,
        expert_kind="swiglu",
        gate_norm="softmax_topk",
    ),
    "deepseekmoe-16b": MoEConfig(
        d_model=2048,
        d_ff=1408,
        n_experts=64,
        top_k=6,
        expert_kind="swiglu",
        n_shared_experts=2,
        d_ff_shared=1408,
    ),
}


def step_report(steps: list[Step]) -> dict[str, dict[str, Any]]:
    """Per named step (call order): bytes each way, by phase, and the step's own rounds."""
    out: dict[str, dict[str, Any]] = {}
    for name, p in steps:
        s = summary(p)
        out[name] = {
            "bytes_c2s": p.c2s,
            "bytes_s2c": p.s2c,
            "bytes": p.c2s + p.s2c,
            "rounds": s.rounds,
            "phases": {k: {"bytes_c2s": c, "bytes_s2c": v} for k, (c, v) in s.bytes.items()},
        }
    return out


def _report(name: str, config: MoEConfig, tokens: int, steps: list[Step]) -> dict[str, Any]:
    pattern: Pattern = seq(p for _, p in steps)
    s = summary(pattern)
    return {
        "name": name,
        "tokens": tokens,
        "config": config.as_dict(),
        "bytes_c2s": pattern.c2s,
        "bytes_s2c": pattern.s2c,
        "rounds": s.rounds,
        "phases": {k: {"bytes_c2s": c, "bytes_s2c": v} for k, (c, v) in s.bytes.items()},
        "steps": step_report(steps),
    }


def demo_report(tokens: int, config: MoEConfig | None = None) -> dict[str, Any]:
    """The cost of ``secmoe demo --tokens T`` (a fresh session: OT and HE set-ups included), on
    the default model or on ``config`` (a checkpoint's layer)."""
    if tokens < 1:
        raise SpecError("tokens must be positive")
    config = config or default_config()
    return _report("demo", config, tokens, demo_steps(config, tokens))


def preset_report(name: str, tokens: int = 1) -> dict[str, Any]:
    """One MoE layer of a preset on ``tokens`` tokens in a fresh session (set-ups included)."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if tokens < 1:
        raise SpecError("tokens must be positive")
    config = PRESETS[name]
    return _report(name, config, tokens, moe_steps(config, tokens, fresh_he=True, fresh_ot=True))


def config_report(spec: str, tokens: int = 1) -> dict[str, Any]:
    """One MoE layer of the configuration ``spec`` (MoEConfig fields as a JSON object, inline or
    in a file) on ``tokens`` tokens in a fresh session."""
    text = Path(spec).read_text() if Path(spec).is_file() else spec
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"--config is neither a JSON object nor a JSON file: {exc}") from exc
    if not isinstance(fields, dict):
        raise SpecError("--config must be a JSON object of MoEConfig fields")
    try:
        config = MoEConfig(**fields)
    except TypeError as exc:
        raise SpecError(f"--config: {exc}") from exc
    if tokens < 1:
        raise SpecError("tokens must be positive")
    return _report(
        "config", config, tokens, moe_steps(config, tokens, fresh_he=True, fresh_ot=True)
    )


def format_reports(reports: list[dict[str, Any]]) -> str:
    """A table: name, tokens, MB each way, rounds."""
    lines = [f"{'':18s} {'tokens':>6s} {'MB c2s':>10s} {'MB s2c':>10s} {'rounds':>7s}"]
    for r in reports:
        lines.append(
            f"{r['name']:18s} {r['tokens']:6d} {r['bytes_c2s'] / 1e6:10.2f} "
            f"{r['bytes_s2c'] / 1e6:10.2f} {r['rounds']:7d}"
        )
    return "\n".join(lines)
