"""Float and fixed-point references agree; fixed-point pieces behave as specified
(spec/06-models.md §6.3, §6.4)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_config, default_inputs, default_weights
from secmoe.model.demo import format_summary, plaintext_demo
from secmoe.model.fixed import (
    encode_weights,
    exp_fixed,
    ffn_fixed,
    moe_fixed,
    reciprocal_fixed,
    softmax_fixed,
)
from secmoe.model.plain import ffn_float, moe_float, softmax, topk_order

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
    ring_bits=st.sampled_from([48, 64]),
)


def clear_rows(logits: NDArray[np.float64], k: int, margin: float = 1e-3) -> NDArray[np.bool_]:
    """Tokens whose top-k+1 float logits are pairwise more than ``margin`` apart."""
    top = np.sort(logits, axis=-1)[:, ::-1]
    ok = np.ones(logits.shape[0], dtype=bool)
    for i in range(1, min(k + 1, logits.shape[1])):
        ok &= top[:, i - 1] - top[:, i] > margin
    return ok


def test_default_model_float_vs_fixed() -> None:
    cfg = default_config()
    w = default_weights(cfg)
    x = default_inputs(cfg, 32)
    y, routing = moe_float(cfg, w, x)
    fo = moe_fixed(cfg, w, cfg.fxp.encode(x))
    assert np.array_equal(routing.experts, fo.experts)
    assert np.abs(fo.y_decoded - y).max() < 0.02
    assert np.abs(fo.gates_decoded - routing.gates).max() < 2e-2
    assert np.array_equal(fo.y_decoded, cfg.fxp.decode(fo.y))


@settings(max_examples=40, deadline=None)
@given(
    cfg=configs,
    tokens=st.integers(min_value=1, max_value=4),
    seed=st.binary(min_size=32, max_size=32),
)
def test_fixed_point_tracks_float(cfg: MoEConfig, tokens: int, seed: bytes) -> None:
    weights = default_weights(cfg, seed)
    x = default_inputs(cfg, tokens, seed)
    y_float, routing = moe_float(cfg, weights, x)
    fo = moe_fixed(cfg, weights, cfg.fxp.encode(x))
    # Where the router's top-k is clear (no near-tie), both select the same experts.
    clear = clear_rows(x @ weights.w_gate, cfg.top_k)
    assert np.array_equal(routing.experts[clear], fo.experts[clear])
    err = np.abs(fo.y_decoded - y_float)[clear]
    # The activation tables' error (<= 1.2e-2 per hidden unit) dominates.
    assert err.max(initial=0) < 0.05
    assert np.abs(fo.gates_decoded[clear] - routing.gates[clear]).max(initial=0) < 2e-2
    if cfg.gate_norm == "softmax_topk":
        assert np.abs(fo.gates_decoded.sum(axis=-1) - 1).max() < 1e-3


def test_top2_and_shared_experts() -> None:
    two = MoEConfig(d_model=8, d_ff=8, n_experts=4, top_k=2, gate_norm="softmax_topk")
    w = default_weights(two)
    x = default_inputs(two, 3)
    y2, r2 = moe_float(two, w, x)
    assert r2.experts.shape == (3, 2) and np.allclose(r2.gates.sum(axis=-1), 1.0)
    assert np.all(r2.gates[:, 0] >= r2.gates[:, 1])
    one = dataclasses.replace(two, top_k=1, gate_norm="softmax")
    y1, r1 = moe_float(one, w, x)
    assert np.array_equal(r1.experts[:, 0], r2.experts[:, 0]) and not np.allclose(y1, y2)
    # Shared experts add their output with weight 1, in float and exactly in the ring.
    shared = dataclasses.replace(two, n_shared_experts=2, d_ff_shared=4)
    ws = default_weights(shared)
    assert ws.shared_v is not None
    plain = dataclasses.replace(
        ws, shared_w1=ws.shared_w1[:0], shared_v=ws.shared_v[:0], shared_w2=ws.shared_w2[:0]
    )
    ys, _ = moe_float(shared, ws, x)
    none = dataclasses.replace(shared, n_shared_experts=0)
    y0, _ = moe_float(none, plain, x)
    extra = sum(
        ffn_float(shared, ws.shared_w1[j], ws.shared_v[j], ws.shared_w2[j], x) for j in range(2)
    )
    assert np.allclose(ys - y0, extra)
    fxp = shared.fxp
    xe = fxp.encode(x)
    fs, f0 = moe_fixed(shared, ws, xe), moe_fixed(none, plain, xe)
    fw = encode_weights(shared, ws)
    assert fw.shared_v is not None
    ring_extra = [
        ffn_fixed(shared, fw.shared_w1[j], fw.shared_v[j], fw.shared_w2[j], xe) for j in range(2)
    ]
    assert np.array_equal(fs.y, fxp.ring.add(fxp.ring.add(f0.y, ring_extra[0]), ring_extra[1]))


def test_softmax_topk_with_all_experts_equals_softmax() -> None:
    # With k = n the renormalised gates are the full softmax's, permuted into selection order.
    cfg = MoEConfig(d_model=6, d_ff=4, n_experts=5, top_k=5, gate_norm="softmax_topk")
    w = default_weights(cfg)
    xe = cfg.fxp.encode(default_inputs(cfg, 4))
    a = moe_fixed(cfg, w, xe)
    b = moe_fixed(dataclasses.replace(cfg, gate_norm="softmax"), w, xe)
    assert np.array_equal(a.experts, b.experts) and np.array_equal(a.gates, b.gates)
    assert np.array_equal(a.y, b.y)


def test_ties_go_to_the_lower_index() -> None:
    cfg = MoEConfig(d_model=2, d_ff=2, n_experts=4, top_k=2)
    w = default_weights(cfg)
    gate = np.zeros_like(w.w_gate)
    gate[:, 3] = 1.0  # expert 3 wins; 0, 1, 2 tie for second place
    tied = dataclasses.replace(w, w_gate=gate)
    x = np.ones((1, 2))
    assert moe_float(cfg, tied, x)[1].experts.tolist() == [[3, 0]]
    assert moe_fixed(cfg, tied, cfg.fxp.encode(x)).experts.tolist() == [[3, 0]]


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=4, max_size=4)
        | st.lists(st.integers(min_value=-2, max_value=2), min_size=4, max_size=4),
        min_size=1,
        max_size=5,
    ),
    k=st.integers(min_value=1, max_value=4),
)
def test_topk_order_on_signed_ring_values(rows: list[list[int]], k: int) -> None:
    got = topk_order(np.array(rows, dtype=np.int64), k)
    for r, g in zip(rows, got, strict=True):
        want = sorted(range(4), key=lambda i: (-r[i], i))[:k]
        assert g.tolist() == want


def test_exp_fixed() -> None:
    fxp = FixedPoint()
    z = np.linspace(-14, 0, 20001)
    e = fxp.decode(exp_fixed(fxp, fxp.encode(z)))
    # (1 + x/32)^32 differs from e^x by at most 0.0086 on [-14, 0] (the worst is near x = -2).
    assert np.abs(e - np.exp(z)).max() < 8.7e-3
    assert np.all(np.diff(e) >= 0)  # monotone: every step (shift, squaring, floor) is
    assert fxp.decode(exp_fixed(fxp, fxp.encode([0.0])))[0] == 1.0
    clipped = exp_fixed(fxp, fxp.encode([-14.0 - 2**-18, -20.0, -1000.0]))
    assert np.all(clipped == 0)
    # Not clipped at -14 itself, though (1 - 14/32)^32 ~ 1e-8 truncates to 0; -8 stays positive.
    assert fxp.decode(exp_fixed(fxp, fxp.encode([-8.0])))[0] > 0


@settings(max_examples=50, deadline=None)
@given(s=st.lists(st.integers(min_value=2**18, max_value=2**36), min_size=1, max_size=10))
def test_reciprocal_is_within_two_units_and_independent_of_the_bound(s: list[int]) -> None:
    fxp = FixedPoint()
    ring = fxp.ring
    r = ring.to_signed(reciprocal_fixed(fxp, ring.from_int(s)))
    for si, ri in zip(s, r, strict=True):
        # |r - 2^(2f) / s| < 2 units (spec §6.4.2), exactly in integers.
        assert abs(int(ri) * si - 2**36) < 2 * si
    # The bound only sets the number of segments of the secure protocol, not the value.
    assert np.array_equal(reciprocal_fixed(fxp, ring.from_int(s), 2**18), ring.from_int(r))


def test_reciprocal_rejects_small_sums() -> None:
    fxp = FixedPoint()
    with pytest.raises(SpecError):
        reciprocal_fixed(fxp, fxp.encode([0.5]))
    with pytest.raises(SpecError):
        reciprocal_fixed(fxp, fxp.encode([-3.0]))
    with pytest.raises(SpecError):
        reciprocal_fixed(fxp, fxp.encode([5.0]), 4)  # above the bound
    with pytest.raises(SpecError):
        reciprocal_fixed(fxp, fxp.encode([5.0]), 2**19)  # bound above 2^f


@settings(max_examples=30, deadline=None)
@given(
    logits=st.lists(
        st.lists(st.floats(min_value=-30, max_value=30), min_size=1, max_size=8),
        min_size=1,
        max_size=3,
    ).filter(lambda rs: len({len(r) for r in rs}) == 1),
    bits=st.sampled_from([48, 64]),
)
def test_softmax_fixed_tracks_float(logits: list[list[float]], bits: int) -> None:
    fxp = FixedPoint(Ring(bits), 18 if bits == 64 else 16)
    z = np.array(logits)
    p = fxp.decode(softmax_fixed(fxp, fxp.encode(z)))
    assert np.abs(p - softmax(z)).max() < 2e-2
    assert np.abs(p.sum(axis=-1) - 1).max() < 2e-2
    assert np.all(p >= 0)


def test_plaintext_demo() -> None:
    d = plaintext_demo(3)
    assert json.loads(json.dumps(d)) == d
    assert len(d["tokens"]) == 3 and d["routing_agreement"] == 1.0
    assert 0 < d["max_abs_error_fixed_vs_float"] < 0.05
    assert d["output_stats"]["max_abs"] > 0
    text = format_summary(d)
    assert text.count("\n") >= 3 + 3 and d["weights_sha256"] in text
    with pytest.raises(SpecError):
        plaintext_demo(0)
