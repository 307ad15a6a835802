"""Plaintext models (spec/06-models.md): float vs fixed point, routing, tables, default model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmoe.encoding import FixedPoint, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import (
    DEFAULT_SEED,
    default_config,
    default_inputs,
    default_weights,
    fan_in_scale,
)
from secmoe.model.fixed import exp_fixed, moe_fixed, softmax_fixed
from secmoe.model.piecewise import gelu, piecewise_fixed, piecewise_float, silu
from secmoe.model.plain import moe_float, softmax
from secmoe.model.tables import GELU, RELU, SILU
from secmoe.randomness import Prg, dst

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import fit_piecewise  # noqa: E402


def test_tables_equal_a_fresh_fit() -> None:
    assert fit_piecewise.check()


def test_gelu_table_meets_the_papers_accuracy() -> None:
    x = np.linspace(-5, 3, 400001)
    err = np.abs(piecewise_float(GELU, x) - gelu(x))
    assert err.max() <= 1.2e-2 and err.mean() <= 1.7e-3
    fxp = FixedPoint()
    errf = np.abs(fxp.decode(piecewise_fixed(GELU, fxp, fxp.encode(x))) - gelu(x))
    assert errf.max() <= 1.2e-2 and errf.mean() <= 1.7e-3
    xs = np.linspace(-8, 8, 100001)
    assert np.abs(piecewise_float(SILU, xs) - silu(xs)).max() < 1.2e-2


@given(
    xs=st.lists(st.floats(min_value=-20, max_value=20, allow_nan=False), min_size=1, max_size=30)
)
def test_piecewise_fixed_tracks_float(xs: list[float]) -> None:
    fxp = FixedPoint()
    x = np.asarray(xs)
    for table in (GELU, SILU, RELU):
        got = fxp.decode(piecewise_fixed(table, fxp, fxp.encode(x)))
        # Three truncations and the coefficient rounding: well under 1e-3 on |x| <= 20.
        assert np.abs(got - piecewise_float(table, fxp.decode(fxp.encode(x)))).max() < 1e-3


def test_segments_are_right_closed_at_the_encoded_breakpoints() -> None:
    fxp = FixedPoint()
    ulp = 2.0**-fxp.frac_bits
    for b in GELU.breakpoints:
        at, above = fxp.encode([b]), fxp.encode([b + ulp])
        lo = GELU.breakpoints.index(b)  # x == b lies in segment lo (b_{lo-1} < x <= b_lo)
        c_at = GELU.coeffs[lo]
        c_above = GELU.coeffs[lo + 1]
        want_at = c_at[0] * b * b + c_at[1] * b + c_at[2]
        want_above = c_above[0] * b * b + c_above[1] * b + c_above[2]
        assert abs(fxp.decode(piecewise_fixed(GELU, fxp, at))[0] - want_at) < 1e-4
        assert abs(fxp.decode(piecewise_fixed(GELU, fxp, above))[0] - want_above) < 1e-4
    relu_at_zero = piecewise_fixed(RELU, fxp, fxp.encode([0.0, ulp, -ulp]))
    assert [int(v) for v in fxp.ring.to_signed(relu_at_zero)] == [0, 1, 0]


def test_exp_and_softmax_fixed() -> None:
    fxp = FixedPoint()
    z = np.linspace(-14, 0, 1001)
    e = fxp.decode(exp_fixed(fxp, fxp.encode(z)))
    # (1 + x/32)^32 differs from e^x by at most 0.0085 on [-14, 0] (the worst is near x = -2).
    assert np.abs(e - np.exp(z)).max() < 9e-3
    assert np.all(fxp.decode(exp_fixed(fxp, fxp.encode([-14.0 - 2**-18, -20.0, -1000.0]))) == 0)
    logits = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -20.0, 1.0]])
    p = fxp.decode(softmax_fixed(fxp, fxp.encode(logits)))
    # The exp approximation's relative error (up to ~6% at x = -2) carries into the probabilities.
    assert np.abs(p - softmax(logits)).max() < 1.5e-2
    assert np.abs(p.sum(axis=-1) - 1).max() < 1e-3


def test_default_model_follows_the_spec_recipe() -> None:
    cfg = default_config()
    w = default_weights(cfg)
    assert w.w_gate.shape == (8, 64) and len(w.experts) == 8
    # Recompute one entry of expert 3's w2 from the wording of §6.5.1.
    words = Prg(DEFAULT_SEED, dst("model.default", "expert/3/w2")).next_u64(64 * 128)
    i = 1000
    u = int(words[i]) >> 11
    want = (2 * (u / 2**53) - 1) * fan_in_scale(128)
    assert w.experts[3].w2.reshape(-1)[i] == want
    assert fan_in_scale(128) == 2.0**-4 and fan_in_scale(64) == 2.0**-3
    assert np.array_equal(default_weights(cfg).experts[5].v, w.experts[5].v)  # type: ignore[arg-type]
    x = default_inputs(cfg, 3)
    assert x.shape == (3, 64) and np.all(np.abs(x) <= 2)


configs = st.builds(
    MoEConfig,
    d_model=st.integers(min_value=2, max_value=12),
    d_ff=st.integers(min_value=1, max_value=16),
    n_experts=st.integers(min_value=2, max_value=6),
    top_k=st.integers(min_value=1, max_value=2),
    expert_kind=st.sampled_from(["geglu", "swiglu", "relu"]),
    gate_norm=st.sampled_from(["softmax", "softmax_topk"]),
    n_shared_experts=st.integers(min_value=0, max_value=2),
    d_ff_shared=st.integers(min_value=0, max_value=8),
)


@settings(max_examples=40)
@given(
    cfg=configs,
    tokens=st.integers(min_value=1, max_value=4),
    seed=st.binary(min_size=32, max_size=32),
)
def test_fixed_point_tracks_float(cfg: MoEConfig, tokens: int, seed: bytes) -> None:
    weights = default_weights(cfg, seed)
    x = default_inputs(cfg, tokens, seed)
    y_float, routing = moe_float(cfg, weights, x)
    y_ring, experts, gates = moe_fixed(cfg, weights, cfg.fxp.encode(x))
    # Where the router's top-k is clear (no near-tie), both select the same experts.
    logits = np.sort(x @ weights.w_gate.T, axis=-1)[:, ::-1]
    clear = np.ones(tokens, dtype=bool)
    for k in range(1, min(cfg.top_k + 1, cfg.n_experts)):
        clear &= logits[:, k - 1] - logits[:, k] > 1e-3
    assert np.array_equal(routing.experts[clear], experts[clear])
    err = np.abs(cfg.fxp.decode(y_ring) - y_float)[clear]
    # The activation tables' error (<= 1.2e-2 per hidden unit) dominates: weights are O(1/sqrt(fan_in)).
    assert err.size == 0 or err.max() < 0.05
    assert np.abs(cfg.fxp.decode(gates[clear]) - routing.gates[clear]).max(initial=0) < 2e-2


def test_top2_and_shared_experts_change_the_output() -> None:
    base = MoEConfig(d_model=8, d_ff=8, n_experts=4)
    x = default_inputs(base, 2)
    y1, _ = moe_float(base, default_weights(base), x)
    two = MoEConfig(d_model=8, d_ff=8, n_experts=4, top_k=2, gate_norm="softmax_topk")
    y2, r2 = moe_float(two, default_weights(two), x)
    assert np.allclose(r2.gates.sum(axis=-1), 1.0)
    assert r2.experts.shape == (2, 2) and not np.allclose(y1, y2)
    shared = MoEConfig(d_model=8, d_ff=8, n_experts=4, n_shared_experts=1, d_ff_shared=4)
    w = default_weights(shared)
    y3, _ = moe_float(shared, w, x)
    from secmoe.model.plain import expert_float

    assert np.allclose(y3 - y1, expert_float(shared, w.shared[0], x))


def test_ties_go_to_the_lower_index() -> None:
    cfg = MoEConfig(d_model=2, d_ff=2, n_experts=4, top_k=2)
    w = default_weights(cfg)
    same = np.zeros_like(w.w_gate)
    tied = type(w)(same, w.experts, w.shared)
    x = np.ones((1, 2))
    assert moe_float(cfg, tied, x)[1].experts.tolist() == [[0, 1]]
    assert moe_fixed(cfg, tied, cfg.fxp.encode(x))[1].tolist() == [[0, 1]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"d_model": 0, "d_ff": 1, "n_experts": 1},
        {"d_model": 1, "d_ff": 1, "n_experts": 2, "top_k": 3},
        {"d_model": 1, "d_ff": 1, "n_experts": 2, "expert_kind": "gelu"},
        {"d_model": 1, "d_ff": 1, "n_experts": 2, "gate_norm": "sparsemax"},
        {"d_model": 1, "d_ff": 1, "n_experts": 2, "n_shared_experts": -1},
        {"d_model": 1, "d_ff": 1, "n_experts": 2, "frac_bits": 64},
    ],
)
def test_bad_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        MoEConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_weights_and_inputs() -> None:
    cfg = MoEConfig(d_model=4, d_ff=4, n_experts=2)
    w = default_weights(cfg)
    other = MoEConfig(d_model=4, d_ff=5, n_experts=2)
    with pytest.raises(SpecError, match="shape"):
        moe_float(other, w, np.zeros((1, 4)))
    with pytest.raises(SpecError):
        moe_float(cfg, w, np.zeros((1, 3)))
    with pytest.raises(SpecError):
        moe_fixed(cfg, w, fxp_encode(cfg.fxp, np.zeros((1, 5))))


def test_demo_cli() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "secmoe.cli", "demo", "--json", "--tokens", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert len(d["tokens"]) == 3 and d["max_abs_error_fixed_vs_float"] < 0.05
    assert "plaintext" in r.stderr
