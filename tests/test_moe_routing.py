"""The routing families of today's checkpoints (spec §6.3.5, §40.3.2-40.3.5): the secure layer
equals moe_fixed bit for bit and costs its formula, the fixed-point model tracks the float one,
and the server's view depends neither on the input nor on the routing."""

from __future__ import annotations

import pytest
from test_moe import check_exact, tokens, weights

from secmoe.model.config import MoEConfig

SMALL = {"d_model": 8, "d_ff": 8, "n_experts": 8, "expert_kind": "swiglu"}
FAMILIES = {
    # DeepSeek-V3 / GLM4-MoE / Kimi-K2: sigmoid scores, score bias, groups by top-2 sums,
    # renormalised, scaled.
    "deepseek-v3": MoEConfig(
        **SMALL,  # type: ignore[arg-type]
        top_k=2,
        gate_norm="sigmoid_topk",
        score_bias=True,
        n_groups=4,
        topk_groups=2,
        routed_scaling=2.5,
    ),
    # DeepSeek-V2: softmax scores, groups by their maximum, scaled, not renormalised.
    "deepseek-v2": MoEConfig(
        **SMALL,  # type: ignore[arg-type]
        top_k=2,
        n_groups=4,
        topk_groups=2,
        group_score="max",
        routed_scaling=1.5,
    ),
    # GPT-OSS routing: router bias, softmax over the selected logits.
    "router-bias": MoEConfig(**SMALL, top_k=2, gate_norm="softmax_topk", router_bias=True),  # type: ignore[arg-type]
    # Sigmoid gates on the selected logits (no bias, no groups: top-k on the logits).
    "sigmoid": MoEConfig(**SMALL, top_k=2, gate_norm="sigmoid"),  # type: ignore[arg-type]
    # Llama4: top-1 sigmoid gate on the expert's input, a shared expert.
    "llama4": MoEConfig(
        **SMALL,  # type: ignore[arg-type]
        gate_norm="sigmoid",
        gate_on_input=True,
        n_shared_experts=1,
    ),
}
X = [0.3 * ((7 * j) % 11 - 5) for j in range(3 * 8)]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_equals_the_fixed_point_model(name: str) -> None:
    config = FAMILIES[name]
    check_exact(config, weights(config, 5), tokens(config, X), 5)
