"""The expert families of today's checkpoints (spec §6.1.1 second table, §6.2 Tables, §6.3.4,
§40.3): routed-expert biases (``expert_bias``) and GPT-OSS's clamped SwiGLU (``gptoss``). The
fixed-point model against the float model, the secure layer against the fixed-point model bit
for bit and against its cost formula, and the server's view independent of the input and of
the selected experts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bounded import layer_settings
from hypothesis import given
from hypothesis import strategies as st
from test_moe import check_exact, check_views, tokens

from secmoe.errors import SpecError
from secmoe.model import ablation
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_inputs, default_weights
from secmoe.model.fixed import (
    FixedWeights,
    append_column,
    encode_weights,
    hidden_fixed,
    matmul_fixed,
    moe_fixed,
)
from secmoe.model.piecewise import gptoss_act, piecewise_float
from secmoe.model.plain import gptoss_glu, moe_float
from secmoe.model.tables import GPTOSS_ACT, GPTOSS_CLIP
from secmoe.moe import prepare
from secmoe.moe.baseline import moe_compute_then_select
from secmoe.moe.cost import moe_steps
from secmoe.session import run_local

TINY = {"d_model": 8, "d_ff": 16, "n_experts": 4}
CONFIGS = {
    "gptoss-bias-top2-gated-shared": MoEConfig(
        **TINY,  # type: ignore[arg-type]
        top_k=2,
        expert_kind="gptoss",
        gate_norm="softmax_topk",
        expert_bias=True,
        n_shared_experts=1,
        d_ff_shared=8,
        shared_gate=True,
    ),
    "relu-bias-top1": MoEConfig(**TINY, expert_kind="relu", expert_bias=True),  # type: ignore[arg-type]
    "swiglu-top2-shared-gate": MoEConfig(
        **TINY,  # type: ignore[arg-type]
        top_k=2,
        expert_kind="swiglu",
        gate_norm="softmax_topk",
        n_shared_experts=2,
        d_ff_shared=8,
        shared_gate=True,
    ),
    "gptoss-top1": MoEConfig(**TINY, expert_kind="gptoss"),  # type: ignore[arg-type]
}


def weights(config: MoEConfig, seed: int) -> FixedWeights:
    return encode_weights(config, default_weights(config, bytes([seed]) * 32))


def test_gptoss_tables_accuracy() -> None:
    # a(g): the fitted table within its stated error (spec §6.2 Tables), constant beyond L;
    # c(u) = clip(u, -L, L) + 1 exactly.
    g = np.linspace(-8.0, 10.0, 200001)
    assert np.abs(piecewise_float(GPTOSS_ACT, g) - gptoss_act(g)).max() < 0.0069
    assert np.abs(piecewise_float(GPTOSS_ACT, g[g > 7.0]) - 7.0).max() < 1e-4
    u = np.linspace(-10.0, 10.0, 2001)
    assert np.array_equal(piecewise_float(GPTOSS_CLIP, u), np.clip(u, -7.0, 7.0) + 1.0)


def test_gptoss_hidden_fixed_is_within_the_table_error_of_the_float_glu() -> None:
    # Both halves over their whole range, the clamps included: the error is the a(g) table's
    # times |c| <= 8, plus the fixed point's few units of 2^-18.
    config = CONFIGS["gptoss-top1"]
    fxp = config.fxp
    g, u = (a.ravel() for a in np.meshgrid(np.linspace(-9, 9, 181), np.linspace(-9, 9, 37)))
    got = fxp.decode(hidden_fixed(config, fxp.encode(g), fxp.encode(u)))
    assert np.abs(got - gptoss_glu(config, g, u)).max() < 8 * 0.0069 + 1e-3


@layer_settings(50)
@given(
    x=st.lists(st.floats(-8, 8, allow_nan=False), min_size=6, max_size=6),
    w=st.lists(st.floats(-4, 4, allow_nan=False), min_size=12, max_size=12),
    b=st.lists(st.floats(-4, 4, allow_nan=False), min_size=4, max_size=4),
)
def test_the_bias_column_adds_the_encoded_bias_exactly(
    x: list[float], w: list[float], b: list[float]
) -> None:
    # mm((x | enc(1)), (W | b)^T) = mm(x, W^T) + enc(b): the bias column of spec §6.3.4 step 1.
    fxp = MoEConfig(**TINY).fxp  # type: ignore[arg-type]
    xe = fxp.encode(np.array(x).reshape(2, 3))
    we, be = fxp.encode(np.array(w).reshape(4, 3)), fxp.encode(np.array(b))
    one = int(fxp.encode(1.0))
    got = matmul_fixed(fxp, append_column(xe, one), append_column(we, be).T)
    assert np.array_equal(got, fxp.ring.add(matmul_fixed(fxp, xe, we.T), be))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fixed_point_model_follows_the_float_model(name: str) -> None:
    config = CONFIGS[name]
    for seed in range(3):
        w = default_weights(config, bytes([seed]) * 32)
        x = default_inputs(config, 4, bytes([seed]) * 32)
        y, routing = moe_float(config, w, x)
        out = moe_fixed(config, w, config.fxp.encode(x))
        assert np.array_equal(out.experts, routing.experts)
        err = float(np.abs(out.y_decoded - y).max())
        assert err < 0.02
        if config.expert_bias or config.shared_gate:
            # The biases and the shared gate matter: without them the output moves by more than
            # twice the fixed point's error.
            plain = replace(config, expert_bias=False, shared_gate=False)
            unbiased = replace(w, b1=None, bv=None, b2=None, shared_gate=None)
            y0, _ = moe_float(plain, unbiased, x)
            assert np.abs(y0 - y).max() > 2 * err


def test_other_alpha_or_limit_are_refused_by_name() -> None:
    for field, value in (("swiglu_alpha", 1.5), ("swiglu_limit", 6.0)):
        config = replace(CONFIGS["gptoss-top1"], **{field: value})
        w = default_weights(config, bytes(32))
        x = config.fxp.encode(default_inputs(config, 1, bytes(32)))
        with pytest.raises(SpecError, match=field):
            moe_fixed(config, w, x)
        with pytest.raises(SpecError, match=field):
            moe_steps(config, 1)
    # Irrelevant to the other kinds, so not refused there.
    relu = replace(CONFIGS["relu-bias-top1"], swiglu_alpha=1.5)
    moe_fixed(relu, default_weights(relu, bytes(32)), relu.fxp.encode(np.zeros((1, 8))))


def test_baselines_and_ablation_refuse_the_expert_fields() -> None:
    config = CONFIGS["relu-bias-top1"]
    fw = weights(config, 1)
    x = np.zeros((1, 8), dtype=np.uint64)
    with pytest.raises(SpecError, match="expert_bias"):
        run_local(
            lambda c: moe_compute_then_select(c, config, x, None),
            lambda c: moe_compute_then_select(c, config, x, fw),
            client_seed=bytes(32),
            server_seed=bytes(32),
        )
    with pytest.raises(SpecError, match="expert_bias"):
        ablation.moe_fixed_ablated(config, fw, x, frozenset())


VALUES = st.lists(st.floats(-2.0, 2.0, allow_nan=False, width=32), min_size=2 * 8, max_size=2 * 8)


@layer_settings(1)
@given(values=VALUES, seed=st.integers(0, 255))
@pytest.mark.parametrize(
    "name", ["gptoss-bias-top2-gated-shared", "relu-bias-top1", "swiglu-top2-shared-gate"]
)
def test_secure_layer_equals_the_fixed_point_model(
    name: str, values: list[float], seed: int
) -> None:
    config = CONFIGS[name]
    check_exact(config, weights(config, seed), tokens(config, values), seed)


def test_the_shared_gate_logit_never_enters_top_k() -> None:
    # A shared-gate logit far above every router logit (x . 1 = 8 for x = 1): the routing and
    # the output still equal moe_fixed's, where the shared logit is a product of its own.
    config = CONFIGS["swiglu-top2-shared-gate"]
    w = default_weights(config, bytes([3]) * 32)
    fw = encode_weights(config, replace(w, shared_gate=np.ones(config.d_model)))
    x = tokens(config, [1.0] * config.d_model)
    assert float(np.abs(w.w_gate).sum(axis=0).max()) < 8.0
    check_exact(config, fw, x, 3)


def test_prepared_biased_stacks_are_bit_identical(tmp_path: Path) -> None:
    config = CONFIGS["relu-bias-top1"]
    fw = weights(config, 7)
    x = tokens(config, [0.25 * (j % 7 - 3) for j in range(8)])
    unprepared = check_exact(config, fw, x, 7)
    model = prepare.prepare_model(config, fw, tmp_path, 1 << 40)
    try:
        assert model.stacks["w1"].shape.d_in == config.d_model + 1
        prepared = check_exact(config, fw, x, 7)
    finally:
        prepare.forget(fw)
    assert np.array_equal(unprepared.server.y, prepared.server.y)


def test_views_do_not_depend_on_input_or_selected_expert() -> None:
    check_views(CONFIGS["gptoss-bias-top2-gated-shared"], weights)
