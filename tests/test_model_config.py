"""MoEConfig and MoEWeights validation (spec/06-models.md#moeconfig)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from secmoe.encoding import fxp_encode
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig, MoEWeights
from secmoe.model.default import default_weights
from secmoe.model.fixed import moe_fixed
from secmoe.model.plain import moe_float

BASE: dict[str, object] = {"d_model": 2, "d_ff": 3, "n_experts": 4}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"d_model": 0}, "d_model"),
        ({"d_ff": -1}, "d_ff"),
        ({"n_experts": 0}, "n_experts"),
        ({"n_experts": True}, "n_experts"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 5}, "top_k"),
        ({"top_k": 1.0}, "top_k"),
        ({"expert_kind": "gelu"}, "expert_kind"),
        ({"gate_norm": "sparsemax"}, "gate_norm"),
        ({"n_shared_experts": -1}, "n_shared_experts"),
        ({"d_ff_shared": -2}, "d_ff_shared"),
        ({"ring_bits": 65}, "ring_bits"),
        ({"ring_bits": 0}, "ring_bits"),
        ({"frac_bits": 0}, "frac_bits"),
        ({"frac_bits": 64}, "ring_bits"),
        ({"ring_bits": 32, "frac_bits": 13}, "ring_bits"),
    ],
)
def test_bad_configs_raise_spec_error_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(SpecError, match=field):
        MoEConfig(**{**BASE, **change})  # type: ignore[arg-type]


def test_headroom_rule_boundary() -> None:
    assert MoEConfig(**BASE, ring_bits=32, frac_bits=12).fxp.frac_bits == 12  # type: ignore[arg-type]
    cfg = MoEConfig(**BASE, top_k=4, n_shared_experts=1)  # type: ignore[arg-type]
    assert cfg.shared_ff == 3 and cfg.gated


def test_bad_weights_and_inputs() -> None:
    cfg = MoEConfig(d_model=4, d_ff=4, n_experts=2)
    w = default_weights(cfg)
    with pytest.raises(SpecError, match="w1"):
        moe_float(MoEConfig(d_model=4, d_ff=5, n_experts=2), w, np.zeros((1, 4)))
    with pytest.raises(SpecError, match="w_gate"):
        moe_float(cfg, dataclasses.replace(w, w_gate=w.w_gate.T.copy()), np.zeros((1, 4)))
    with pytest.raises(SpecError, match="float64"):
        moe_float(cfg, dataclasses.replace(w, w2=w.w2.astype(np.float32)), np.zeros((1, 4)))
    with pytest.raises(SpecError, match="NaN"):
        bad = w.w1.copy()
        bad[0, 0, 0] = np.nan
        moe_float(cfg, dataclasses.replace(w, w1=bad), np.zeros((1, 4)))
    with pytest.raises(SpecError, match="None for ReLU"):
        moe_float(dataclasses.replace(cfg, expert_kind="relu"), w, np.zeros((1, 4)))
    with pytest.raises(SpecError, match="v must be"):
        moe_float(cfg, dataclasses.replace(w, v=None), np.zeros((1, 4)))
    with pytest.raises(SpecError):
        moe_float(cfg, w, np.zeros((1, 3)))
    with pytest.raises(SpecError):
        moe_float(cfg, w, np.zeros((0, 4)))
    with pytest.raises(SpecError):
        moe_fixed(cfg, w, fxp_encode(cfg.fxp, np.zeros((1, 5))))
    with pytest.raises(SpecError):
        moe_fixed(cfg, w, np.zeros((1, 4), dtype=np.int64))


def test_weights_dataclass_holds_stacked_arrays() -> None:
    cfg = MoEConfig(d_model=3, d_ff=5, n_experts=4, n_shared_experts=2, d_ff_shared=6)
    w = default_weights(cfg)
    assert isinstance(w, MoEWeights)
    assert w.w_gate.shape == (3, 4)
    assert w.w1.shape == (4, 5, 3) and w.v is not None and w.v.shape == (4, 5, 3)
    assert w.w2.shape == (4, 3, 5)
    assert w.shared_w1.shape == (2, 6, 3) and w.shared_w2.shape == (2, 3, 6)
    relu = default_weights(dataclasses.replace(cfg, expert_kind="relu"))
    assert relu.v is None and relu.shared_v is None
