"""MoE baselines (spec/41-moe-baselines.md): bit-exact against moe_fixed, cost == formula, the
compute-then-select baseline oblivious, the INSECURE baseline's view revealing the routing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from costs import assert_cost
from oblivious import view_shape
from server_view import assert_server_view

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_weights, uniform_tensor
from secmoe.model.fixed import FixedOutput, FixedWeights, encode_weights, moe_fixed
from secmoe.moe.baseline import (
    ROUTE_LABEL,
    moe_compute_then_select,
    moe_compute_then_select_cost,
    moe_reveal_routing,
    moe_reveal_routing_cost,
)
from secmoe.moe.layer import MoeShares
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, RunResult, run_local

GEGLU = MoEConfig(d_model=8, d_ff=16, n_experts=4, top_k=1, expert_kind="geglu")
SWIGLU = MoEConfig(
    d_model=8,
    d_ff=16,
    n_experts=4,
    top_k=2,
    expert_kind="swiglu",
    gate_norm="softmax_topk",
    n_shared_experts=1,
)
CONFIGS = {"geglu-top1": GEGLU, "swiglu-top2-shared": SWIGLU}
BASELINES = {"compute_then_select": moe_compute_then_select, "reveal_routing": moe_reveal_routing}
# Input seeds: 2 routes the two tokens to different experts in both configs, 0 does not
# (GEGLU: [[1], [3]] and [[1], [1]]).
ROUTED_APART, ROUTED_TOGETHER = 2, 0


def weights(config: MoEConfig) -> FixedWeights:
    return encode_weights(config, default_weights(config))


def inputs(config: MoEConfig, seed: int) -> RingVec:
    return config.fxp.encode(uniform_tensor(bytes([seed]) * 32, "inputs", (2, config.d_model), 2.0))


def split(config: MoEConfig, x: RingVec) -> tuple[RingVec, RingVec]:
    mine = Prg(bytes(32), dst("test", "moe-baselines")).next_ring(x.size).reshape(x.shape)
    return mine, config.fxp.ring.sub(x, mine)


def parties(fn: Any, config: MoEConfig, x: RingVec) -> tuple[Any, Any]:
    fw = weights(config)
    xc, xs = split(config, x)

    def client(ctx: PartyContext) -> MoeShares:
        out: MoeShares = fn(ctx, config, xc, None)
        return out

    def server(ctx: PartyContext) -> MoeShares:
        out: MoeShares = fn(ctx, config, xs, fw)
        return out

    return client, server


def run(fn: Any, config: MoEConfig, x: RingVec, record: str = "none") -> RunResult[Any, Any]:
    client, server = parties(fn, config, x)
    return run_local(
        client,
        server,
        client_seed=bytes(32),
        server_seed=bytes([5]) * 32,
        fxp=config.fxp,
        record=record,  # type: ignore[arg-type]
    )


def used_counts(oracle: FixedOutput) -> list[int]:
    """Rows per used expert, in increasing expert order (what the reveal's cost depends on)."""
    counts = Counter(int(e) for e in oracle.experts.reshape(-1))
    return [counts[e] for e in sorted(counts)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("baseline", sorted(BASELINES))
def test_baseline_equals_moe_fixed_bit_for_bit(name: str, baseline: str) -> None:
    config = CONFIGS[name]
    x = inputs(config, ROUTED_APART)
    want = moe_fixed(config, weights(config), x)
    res = run(BASELINES[baseline], config, x)
    ring = config.fxp.ring
    assert np.array_equal(ring.add(res.client.y, res.server.y), want.y)
    assert np.array_equal(ring.add(res.client.gates, res.server.gates), want.gates)
    assert np.array_equal(ring.add(res.client.experts, res.server.experts), want.experts)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compute_then_select_cost_equals_the_formula(name: str) -> None:
    config = CONFIGS[name]
    client, server = parties(moe_compute_then_select, config, inputs(config, ROUTED_APART))
    assert_cost(moe_compute_then_select_cost(config, 2), client, server, config.fxp)


@pytest.mark.parametrize("seed", [ROUTED_APART, ROUTED_TOGETHER])
def test_reveal_routing_cost_equals_the_formula(seed: int) -> None:
    config = GEGLU
    x = inputs(config, seed)
    counts = used_counts(moe_fixed(config, weights(config), x))
    assert counts == ([1, 1] if seed == ROUTED_APART else [2])
    client, server = parties(moe_reveal_routing, config, x)
    assert_cost(moe_reveal_routing_cost(config, 2, counts), client, server, config.fxp)


def test_reveal_routing_cost_with_top2_and_a_shared_expert() -> None:
    config = SWIGLU
    x = inputs(config, ROUTED_APART)
    counts = used_counts(moe_fixed(config, weights(config), x))
    client, server = parties(moe_reveal_routing, config, x)
    assert_cost(moe_reveal_routing_cost(config, 2, counts), client, server, config.fxp)


def _route_messages(res: RunResult[Any, Any], config: MoEConfig) -> np.ndarray[Any, Any]:
    ring = config.fxp.ring
    opened = [t for t in res.transcript if t.label == ROUTE_LABEL]
    assert [t.sender for t in opened] == ["client", "server"] or [t.sender for t in opened] == [
        "server",
        "client",
    ]
    shares = [np.frombuffer(t.payload or b"", dtype="<u8").astype(np.uint64) for t in opened]
    return ring.to_signed(ring.add(shares[0], shares[1]))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reveal_routing_is_insecure_its_view_holds_the_routing(name: str) -> None:
    config = CONFIGS[name]
    views = []
    for seed in (ROUTED_APART, ROUTED_TOGETHER):
        x = inputs(config, seed)
        want = moe_fixed(config, weights(config), x).experts
        res = run(moe_reveal_routing, config, x, record="full")
        # The server receives the client's share of the indices and holds its own: the
        # routing, in the clear.
        assert np.array_equal(_route_messages(res, config), want.reshape(-1))
        assert_server_view(res.transcript, "moe_reveal_routing")
        views.append(view_shape(res.transcript, "server"))
    if config is GEGLU:  # two used experts against one: even the message shapes differ
        assert views[0] != views[1]


def test_compute_then_select_view_does_not_depend_on_the_routing() -> None:
    config = GEGLU
    views = []
    for seed in (ROUTED_APART, ROUTED_TOGETHER):
        res = run(moe_compute_then_select, config, inputs(config, seed), record="lengths")
        assert not [t for t in res.transcript if t.label == ROUTE_LABEL]
        assert_server_view(res.transcript, "moe_compute_then_select")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1]


def test_bad_inputs_are_spec_errors() -> None:
    config = GEGLU
    x = inputs(config, ROUTED_APART)
    for fn in BASELINES.values():
        with pytest.raises(SpecError, match="shape"):
            run(fn, config, x[:, :4])
        with pytest.raises(SpecError, match="weights"):
            run_local(
                lambda ctx, f=fn: f(ctx, config, x, None),
                lambda ctx, f=fn: f(ctx, config, x, None),
                client_seed=bytes(32),
                server_seed=bytes([5]) * 32,
                fxp=config.fxp,
            )
    for bad in ([], [3], [1, 0, 1], [1, 1, 0, 0, 0]):
        with pytest.raises(SpecError, match="experts_used"):
            moe_reveal_routing_cost(config, 2, bad)
