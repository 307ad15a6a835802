"""The secure MoE layer (spec/40-moe.md): bit-exact against moe_fixed, cost equal to the
formula, and the server's view independent of the input and of the routing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from bounded import layer_settings
from costs import measured_run
from hypothesis import given
from hypothesis import strategies as st
from oblivious import assert_uniform, view_shape
from server_view import assert_server_view

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_weights
from secmoe.model.fixed import FixedWeights, encode_weights, moe_fixed
from secmoe.moe.cost import moe_cost
from secmoe.moe.layer import moe
from secmoe.net.channel import TranscriptEntry
from secmoe.protocols.cost import Summary, ot_setup_pattern, seq, summary
from secmoe.randomness import Prg, dst
from secmoe.session import run_local

TINY = {"d_model": 8, "d_ff": 16, "n_experts": 4}
CONFIGS = {
    "geglu-top1": MoEConfig(**TINY),  # type: ignore[arg-type]
    "swiglu-top2-shared": MoEConfig(
        **TINY,  # type: ignore[arg-type]
        top_k=2,
        expert_kind="swiglu",
        gate_norm="softmax_topk",
        n_shared_experts=1,
        d_ff_shared=8,
    ),
    "relu-top2": MoEConfig(**TINY, top_k=2, expert_kind="relu"),  # type: ignore[arg-type]
}


def weights(config: MoEConfig, seed: int) -> FixedWeights:
    return encode_weights(config, default_weights(config, bytes([seed]) * 32))


def tokens(config: MoEConfig, values: list[float]) -> np.ndarray:
    return config.fxp.encode(np.array(values, dtype=np.float64).reshape(-1, config.d_model))


def shares(config: MoEConfig, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    mine = Prg(bytes([seed]) * 32, dst("test", "moe-shares")).next_ring(x.size).reshape(x.shape)
    return mine, config.fxp.ring.sub(x, mine)


def check_exact(config: MoEConfig, fw: FixedWeights, x: np.ndarray, seed: int) -> Any:
    """Run the layer (warm OT sessions), assert it equals moe_fixed and costs its formula."""
    ring = config.fxp.ring
    xc, xs = shares(config, x, seed)
    got, res = measured_run(
        lambda c: moe(c, config, xc, None), lambda c: moe(c, config, xs, fw), config.fxp
    )
    ref = moe_fixed(config, fw, x)
    assert np.array_equal(ring.add(res.client.y, res.server.y), ref.y)
    assert np.array_equal(ring.add(res.client.experts, res.server.experts), ref.experts)
    assert np.array_equal(ring.add(res.client.gates, res.server.gates), ref.gates)
    pattern = moe_cost(config, x.shape[0])
    assert got == Summary(summary(pattern).bytes, seq(ot_setup_pattern(), pattern).rounds())
    return res


VALUES = st.lists(st.floats(-2.0, 2.0, allow_nan=False, width=32), min_size=2 * 8, max_size=2 * 8)


@layer_settings(2)
@given(values=VALUES, seed=st.integers(0, 255))
def test_top1_equals_the_fixed_point_model(values: list[float], seed: int) -> None:
    config = CONFIGS["geglu-top1"]
    check_exact(config, weights(config, seed), tokens(config, values), seed)


@layer_settings(1)
@given(values=VALUES, seed=st.integers(0, 255))
@pytest.mark.parametrize("name", ["swiglu-top2-shared", "relu-top2"])
def test_top2_with_and_without_a_shared_expert(name: str, values: list[float], seed: int) -> None:
    config = CONFIGS[name]
    check_exact(config, weights(config, seed), tokens(config, values), seed)


def _uniform_residues(entries: list[TranscriptEntry], sender: str) -> None:
    """Every byte of the ring/OT messages, and the 4-byte residues of the ciphertexts, that
    ``sender``'s peer received look uniform."""
    flat, residues = bytearray(), []
    for t in entries:
        if t.sender != sender or t.payload is None:
            continue
        if t.label.startswith(("he/", "moe/")):
            words = np.frombuffer(t.payload[: len(t.payload) // 4 * 4], dtype="<u4")
            residues.append(words)
        else:
            flat += t.payload
    assert_uniform(bytes(flat))
    if residues:
        res = np.concatenate(residues)
        # A residue uniform mod p > 2^30 is, given that it is below 2^30, uniform there.
        low = res[res < np.uint32(1 << 30)]
        assert_uniform((low >> np.uint32(22)).astype(np.uint8).tobytes())


def test_views_do_not_depend_on_input_routing_or_weights() -> None:
    check_views(CONFIGS["geglu-top1"], weights)


def check_views(config: MoEConfig, weights: Callable[[MoEConfig, int], FixedWeights]) -> None:
    """Two runs with other weights, inputs and routing: the server's view has the same shape,
    only the labels of spec §4.6, and uniform bytes (both ways)."""
    views, routes = [], []
    for seed, scale in ((1, 0.5), (2, -1.5)):
        fw = weights(config, seed)
        x = tokens(config, [scale * (j % 3 - 1) for j in range(2 * 8)])
        xc, xs = shares(config, x, seed)
        res = run_local(
            lambda c, xc=xc: moe(c, config, xc, None),
            lambda c, xs=xs, fw=fw: moe(c, config, xs, fw),
            client_seed=bytes([seed]) * 32,
            server_seed=bytes([seed + 9]) * 32,
            fxp=config.fxp,
            record="full",
        )
        routes.append(moe_fixed(config, fw, x).experts.tolist())
        assert_server_view(res.transcript, "moe")
        views.append(view_shape(res.transcript, "server"))
        _uniform_residues(res.transcript, "client")  # what the server receives
        _uniform_residues(res.transcript, "server")  # what the client receives
    assert routes[0] != routes[1], "the two runs must route differently"
    assert views[0] == views[1]


def test_bad_inputs_are_rejected() -> None:
    config = CONFIGS["geglu-top1"]
    x = np.zeros((1, 5), dtype=np.uint64)
    with pytest.raises(SpecError, match="shape"):
        run_local(
            lambda c: moe(c, config, x, None),
            lambda c: moe(c, config, x, weights(config, 1)),
            client_seed=bytes(32),
            server_seed=bytes(32),
        )
    x = np.zeros((1, 8), dtype=np.uint64)
    with pytest.raises(SpecError, match="encoded weights"):
        run_local(
            lambda c: moe(c, config, x, None),
            lambda c: moe(c, config, x, None),
            client_seed=bytes(32),
            server_seed=bytes(32),
        )
