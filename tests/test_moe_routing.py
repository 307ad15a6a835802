"""The routing families of today's checkpoints (spec §6.3.5, §40.3.2-40.3.5): the secure layer
equals moe_fixed bit for bit and costs its formula, the fixed-point model tracks the float one,
and the server's view depends neither on the input nor on the routing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bounded import layer_settings
from hypothesis import given
from hypothesis import strategies as st
from test_moe import check_exact, check_views, tokens, weights

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig, MoEWeights
from secmoe.model.default import default_inputs, default_weights
from secmoe.model.fixed import encode_weights, moe_fixed, sigmoid_norm_fixed
from secmoe.model.plain import moe_float
from secmoe.moe.baseline import moe_compute_then_select_cost, moe_reveal_routing
from secmoe.session import run_local

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


@layer_settings(1)
@given(values=st.lists(st.floats(-2.0, 2.0, allow_nan=False, width=32), min_size=16, max_size=16))
def test_grouped_sigmoid_on_any_input(values: list[float]) -> None:
    config = FAMILIES["deepseek-v3"]
    check_exact(config, weights(config, 6), tokens(config, values), 6)


def _edge_weights(config: MoEConfig) -> MoEWeights:
    """Every expert's logit is x_0 + 0: saturated sigmoids, ties of keys and of groups."""
    base = default_weights(config, bytes([9]) * 32)
    w_gate = np.zeros_like(base.w_gate)
    w_gate[0, :] = 1.0
    bias = np.array([-0.25, -0.25, -0.5, -0.5, -0.25, -0.25, -0.125, -0.125])
    return replace(base, w_gate=w_gate, score_bias=bias)


EDGE = replace(FAMILIES["deepseek-v3"], top_k=3)


def test_ties_masked_zeros_and_the_clamp_match_the_float_routing() -> None:
    # Token 0: x_0 = -20, every sigmoid is 0, the keys are the (negative) biases, so the masked
    # experts' keys 0 win (2, 3, 4, lower index first) and the k scores sum to 0 (the clamp).
    # Token 1: x_0 = 20, every sigmoid is 1; the groups 0 and 2 tie for the second place (0
    # wins), then experts 6, 7 and 0 (0 before 1).
    w = _edge_weights(EDGE)
    x = np.zeros((2, 8))
    x[0, 0], x[1, 0] = -20.0, 20.0
    ref = moe_fixed(EDGE, w, EDGE.fxp.encode(x))
    assert ref.experts.tolist() == [[2, 3, 4], [6, 7, 0]]
    assert moe_float(EDGE, w, x)[1].experts.tolist() == ref.experts.tolist()
    assert ref.gates.tolist()[0] == [0, 0, 0]
    check_exact(EDGE, encode_weights(EDGE, w), EDGE.fxp.encode(x), 3)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fixed_point_tracks_float(name: str) -> None:
    config = FAMILIES[name]
    w = default_weights(config, bytes([11]) * 32)
    x = default_inputs(config, 64, bytes([12]) * 32)
    y, routing = moe_float(config, w, x)
    ref = moe_fixed(config, w, config.fxp.encode(x))
    same = (ref.experts == routing.experts).all(axis=1)
    assert same.mean() > 0.9
    assert np.abs(ref.y_decoded - y)[same].max() < 0.05
    assert np.abs(ref.gates_decoded - routing.gates)[same].max() < 2e-2 * config.routed_scaling


@layer_settings(30)
@given(q=st.lists(st.integers(0, 1 << 18), min_size=2, max_size=2))
def test_sigmoid_norm_is_within_its_bound(q: list[int]) -> None:
    # spec §6.3.5: |g - q / S'| < 2^(c + 1 - f) q with S' the clamped sum.
    fxp = FAMILIES["deepseek-v3"].fxp
    g = fxp.decode(sigmoid_norm_fixed(fxp, fxp.ring.from_int([q])))[0]
    total = max(sum(q), 1 << 12) / 2.0**18
    want = np.array(q, dtype=np.float64) / 2.0**18 / total
    assert np.all(np.abs(g - want) <= 2.0**-11 * np.array(q) / 2.0**18 + 2.0**-18)


def test_views_do_not_depend_on_input_or_routing() -> None:
    check_views(FAMILIES["deepseek-v3"], weights)


def test_expert_fields_and_baselines_are_still_refused() -> None:
    # The expert fields are implemented by moe (tests/test_moe_experts.py), not the baselines.
    with pytest.raises(SpecError, match=r"moe_compute_then_select_cost.*expert_bias"):
        moe_compute_then_select_cost(MoEConfig(**SMALL, expert_bias=True), 1)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"moe_compute_then_select_cost.*router_bias"):
        moe_compute_then_select_cost(FAMILIES["router-bias"], 1)
    config = FAMILIES["sigmoid"]
    x = np.zeros((1, 8), dtype=np.uint64)
    with pytest.raises(SpecError, match=r"moe_reveal_routing does not yet implement.*gate_norm"):
        run_local(
            lambda c: moe_reveal_routing(c, config, x, None),
            lambda c: moe_reveal_routing(c, config, x, weights(config, 1)),
            client_seed=bytes(32),
            server_seed=bytes(32),
            fxp=config.fxp,
        )
