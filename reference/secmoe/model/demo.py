"""The plaintext demo: the fixed-point MoE layer on the default model, next to the float one."""

from __future__ import annotations

from typing import Any

import numpy as np

from secmoe.errors import SpecError
from secmoe.model.default import default_config, default_inputs, default_weights, weights_digest
from secmoe.model.fixed import moe_fixed
from secmoe.model.plain import moe_float


def plaintext_demo(tokens: int = 4) -> dict[str, Any]:
    """Run both references on ``tokens`` default inputs; return a JSON-able summary.

    Keys: ``mode``, ``config``, ``weights_sha256`` (spec §6.5), ``tokens`` (per token: experts
    and gates from both references, the output's norm and first four entries),
    ``routing_agreement`` (fraction of (token, slot) pairs where both pick the same expert),
    ``output_stats`` (of the fixed-point output) and the max / mean absolute error of the
    fixed-point output against the float one.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise SpecError(f"tokens must be a positive integer, got {tokens!r}")
    config = default_config()
    weights = default_weights(config)
    x = default_inputs(config, tokens)
    y_float, routing = moe_float(config, weights, x)
    fixed = moe_fixed(config, weights, config.fxp.encode(x))
    y_fixed = fixed.y_decoded
    err = np.abs(y_fixed - y_float)
    return {
        "mode": "plaintext",
        "config": config.as_dict(),
        "weights_sha256": weights_digest(weights),
        "tokens": [
            {
                "experts_float": [int(e) for e in routing.experts[t]],
                "experts_fixed": [int(e) for e in fixed.experts[t]],
                "gates_float": [round(float(g), 6) for g in routing.gates[t]],
                "gates_fixed": [round(float(g), 6) for g in fixed.gates_decoded[t]],
                "output_fixed_head": [round(float(v), 6) for v in y_fixed[t, :4]],
                "output_norm": round(float(np.linalg.norm(y_fixed[t])), 6),
            }
            for t in range(tokens)
        ],
        "routing_agreement": float(np.mean(routing.experts == fixed.experts)),
        "output_stats": {
            "mean": float(y_fixed.mean()),
            "std": float(y_fixed.std()),
            "max_abs": float(np.abs(y_fixed).max()),
        },
        "max_abs_error_fixed_vs_float": float(err.max()),
        "mean_abs_error_fixed_vs_float": float(err.mean()),
    }


def format_summary(d: dict[str, Any]) -> str:
    """A human-readable table of a :func:`plaintext_demo` result."""
    c = d["config"]
    lines = [
        f"default model: d_model {c['d_model']}, d_ff {c['d_ff']}, {c['n_experts']} "
        f"{c['expert_kind']} experts, top-{c['top_k']} ({c['gate_norm']} gate), "
        f"Z_2^{c['ring_bits']} with {c['frac_bits']} fractional bits",
        f"weights sha256 {d['weights_sha256']}",
        f"{'token':>5}  {'expert (fixed/float)':>20}  {'gate fixed':>10}  {'gate float':>10}  "
        f"{'|y|':>9}  y[0:4] (fixed)",
    ]
    for i, t in enumerate(d["tokens"]):
        ex = f"{t['experts_fixed']}/{t['experts_float']}"
        lines.append(
            f"{i:>5}  {ex:>20}  {t['gates_fixed'][0]:>10.6f}  {t['gates_float'][0]:>10.6f}  "
            f"{t['output_norm']:>9.5f}  {' '.join(f'{v:+.5f}' for v in t['output_fixed_head'])}"
        )
    s = d["output_stats"]
    lines.append(
        f"output (fixed point): mean {s['mean']:+.5f}, std {s['std']:.5f}, "
        f"max |y| {s['max_abs']:.5f}"
    )
    lines.append(
        f"routing agreement {d['routing_agreement']:.0%}; fixed point vs float: max abs error "
        f"{d['max_abs_error_fixed_vs_float']:.2e}, mean {d['mean_abs_error_fixed_vs_float']:.2e}"
    )
    return "\n".join(lines)
