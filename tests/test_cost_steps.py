"""`secmoe cost --json` carries a per-step breakdown (spec §40.4) that adds up to its totals."""

from __future__ import annotations

import pytest

from secmoe.model.default import default_config
from secmoe.moe.cost import demo_steps, moe_cost, moe_steps
from secmoe.moe.projection import PRESETS, demo_report, preset_report
from secmoe.protocols.cost import seq


@pytest.mark.parametrize("name", ["switch-base-128", "deepseekmoe-16b"])
def test_steps_add_up_to_the_totals(name: str) -> None:
    report = preset_report(name)
    steps = report["steps"]
    assert {"expert_matmul_in", "expert_matmul_out", "select_experts"} <= set(steps)
    assert sum(s["bytes_c2s"] for s in steps.values()) == report["bytes_c2s"]
    assert sum(s["bytes_s2c"] for s in steps.values()) == report["bytes_s2c"]
    for phase, totals in report["phases"].items():
        for key in ("bytes_c2s", "bytes_s2c"):
            got = sum(s["phases"].get(phase, {}).get(key, 0) for s in steps.values())
            assert got == totals[key]
    assert all(s["bytes"] == s["bytes_c2s"] + s["bytes_s2c"] for s in steps.values())


def test_steps_compose_to_the_layer_pattern() -> None:
    config = PRESETS["switch-base-8"]
    pattern = seq(p for _, p in moe_steps(config, 2, fresh_ot=True))
    assert pattern == moe_cost(config, 2, fresh_ot=True)
    names = [n for n, _ in demo_steps(default_config(), 1)]
    assert names[0] == "input" and names[-1] == "output"
    assert len(names) == len(set(names))
    assert set(demo_report(1)["steps"]) == set(names)


def test_routing_family_steps() -> None:
    # spec §40.4: Llama4's gate on the input replaces the gate product by gate_input, before
    # the first expert product; the other families change the route step only.
    from secmoe.model.config import MoEConfig

    shape = {"d_model": 16, "d_ff": 32, "n_experts": 8}
    plain = MoEConfig(**shape, top_k=2, gate_norm="softmax_topk")  # type: ignore[arg-type]
    llama4 = MoEConfig(**shape, gate_norm="sigmoid", gate_on_input=True)  # type: ignore[arg-type]
    names = [n for n, _ in moe_steps(llama4, 2)]
    assert "gate_product" not in names
    assert names.index("select_experts") < names.index("gate_input") < names.index("expert_matmul_in")
    v3 = MoEConfig(
        **shape,  # type: ignore[arg-type]
        top_k=2,
        gate_norm="sigmoid_topk",
        score_bias=True,
        n_groups=4,
        topk_groups=2,
        routed_scaling=2.5,
    )
    steps, base = dict(moe_steps(v3, 2)), dict(moe_steps(plain, 2))
    assert set(steps) == set(base)
    assert [n for n in steps if steps[n] != base[n]] == ["route"]
    assert steps["route"].c2s > base["route"].c2s
