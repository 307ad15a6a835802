"""Matrix products on shares (spec/31-linear.md): exactness, cost, obliviousness, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded import layer_settings
from costs import assert_cost
from hypothesis import given
from hypothesis import strategies as st
from oblivious import view_shape
from server_view import assert_server_view

from secmoe.encoding import FixedPoint, RingVec
from secmoe.errors import SpecError
from secmoe.model.fixed import matmul_fixed
from secmoe.protocols.cost import seq
from secmoe.protocols.linear import he_setup_cost, matmul, matmul_cost, matmul_ss, matmul_ss_cost
from secmoe.randomness import Prg, dst
from secmoe.session import RunResult, run_local

FXP = FixedPoint()
RING = FXP.ring


def values(src: Prg, shape: tuple[int, int], scale: float) -> RingVec:
    """Fixed-point values uniform in [-scale, scale) on a 2^-14 grid."""
    n = shape[0] * shape[1]
    raw = src.next_below(n, 1 << 16).astype(np.float64) / (1 << 15) - 1.0
    return FXP.encode((raw * scale).reshape(shape))


def split(src: Prg, v: RingVec) -> tuple[RingVec, RingVec]:
    mine = src.next_ring(v.size).reshape(v.shape)
    return mine, RING.sub(v, mine)


def run(fc: Any, fs: Any, record: str = "none") -> RunResult[Any, Any]:
    return run_local(
        fc,
        fs,
        client_seed=bytes(32),
        server_seed=bytes([7]) * 32,
        record=record,  # type: ignore[arg-type]
    )


@layer_settings(4)
@given(
    tokens=st.integers(1, 5),
    d_in=st.integers(1, 24),
    d_out=st.integers(1, 12),
    seed=st.integers(0, 255),
)
def test_matmul_equals_the_fixed_point_product(
    tokens: int, d_in: int, d_out: int, seed: int
) -> None:
    src = Prg(bytes([seed]) * 32, dst("test", "matmul"))
    x, w = values(src, (tokens, d_in), 4.0), values(src, (d_out, d_in), 1.0)
    xc, xs = split(src, x)
    res = run(lambda c: matmul(c, xc, None, d_out), lambda c: matmul(c, xs, w, d_out))
    assert np.array_equal(RING.add(res.client, res.server), matmul_fixed(FXP, x, w.T))


@layer_settings(4)
@given(a=st.integers(1, 4), b=st.integers(1, 16), c=st.integers(1, 6), seed=st.integers(0, 255))
def test_matmul_ss_equals_the_fixed_point_product(a: int, b: int, c: int, seed: int) -> None:
    src = Prg(bytes([seed]) * 32, dst("test", "matmul_ss"))
    x, y = values(src, (a, b), 8.0), values(src, (b, c), 8.0)
    (xc, xs), (yc, ys) = split(src, x), split(src, y)
    res = run(lambda ctx: matmul_ss(ctx, xc, yc), lambda ctx: matmul_ss(ctx, xs, ys))
    assert np.array_equal(RING.add(res.client, res.server), matmul_fixed(FXP, x, y))


def test_costs_equal_the_formulas() -> None:
    src = Prg(bytes(32), dst("test", "linear-cost"))
    x, w = values(src, (3, 10), 2.0), values(src, (6, 10), 1.0)
    pattern = seq(he_setup_cost(), matmul_cost(3, 10, 6, 64, 18))
    assert_cost(pattern, lambda c: matmul(c, x, None, 6), lambda c: matmul(c, x, w, 6), FXP)
    y = values(src, (10, 4), 2.0)
    pattern = seq(he_setup_cost(), matmul_ss_cost(3, 10, 4, 64, 18))
    assert_cost(pattern, lambda c: matmul_ss(c, x, y), lambda c: matmul_ss(c, x, y), FXP)


def test_the_servers_view_does_not_depend_on_the_clients_values() -> None:
    src = Prg(bytes(32), dst("test", "linear-view"))
    w = values(src, (4, 8), 1.0)
    views = []
    for scale in (0.5, 7.0):
        x = values(src, (2, 8), scale)
        xc, xs = split(src, x)
        res = run(
            lambda c, xc=xc: matmul(c, xc, None, 4),
            lambda c, xs=xs: matmul(c, xs, w, 4),
            record="hash",
        )
        assert_server_view(res.transcript, "matmul")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1]


def test_bad_shapes_are_rejected() -> None:
    x = np.zeros((2, 3), dtype=np.uint64)
    with pytest.raises(SpecError, match="3 columns, the weights 5"):
        run(lambda c: matmul(c, x, None, 4), lambda c: matmul(c, x, np.zeros((4, 5), np.uint64), 4))
    with pytest.raises(SpecError, match="shape"):
        run(lambda c: matmul(c, x, None, 4), lambda c: matmul(c, x, np.zeros((5, 3), np.uint64), 4))
    with pytest.raises(SpecError, match="server needs"):
        run(lambda c: matmul(c, x, None, 4), lambda c: matmul(c, x, None, 4))
    with pytest.raises(SpecError, match="cannot multiply"):
        run(lambda c: matmul_ss(c, x, x), lambda c: matmul_ss(c, x, x))
    with pytest.raises(SpecError, match="matrix"):
        run(lambda c: matmul_ss(c, x[0], x), lambda c: matmul_ss(c, x[0], x))


def test_the_committed_vectors_reconstruct_to_the_fixed_point_products() -> None:
    root = Path(__file__).resolve().parent.parent / "vectors" / "protocols"

    def ring(hexstr: str) -> RingVec:
        return RING.decode_vec(bytes.fromhex(hexstr), len(hexstr) // 16, label="v", party="client")

    for c in json.loads((root / "matmul.json").read_text())["testGroups"][0]["tests"]:
        cin, sin = c["inputs"]["client"], c["inputs"]["server"]
        x = RING.add(ring(cin["x"]), ring(sin["x"])).reshape(cin["shape"])
        w = ring(sin["w"]).reshape(sin["d_out"], -1)
        z = RING.add(ring(c["outputs"]["client"]["z"]), ring(c["outputs"]["server"]["z"]))
        assert np.array_equal(z.reshape(x.shape[0], -1), matmul_fixed(FXP, x, w.T))
    for c in json.loads((root / "matmul_ss.json").read_text())["testGroups"][0]["tests"]:
        cin, sin = c["inputs"]["client"], c["inputs"]["server"]
        x = RING.add(ring(cin["x"]), ring(sin["x"])).reshape(2, 3)
        y = RING.add(ring(cin["y"]), ring(sin["y"])).reshape(3, 2)
        z = RING.add(ring(c["outputs"]["client"]["z"]), ring(c["outputs"]["server"]["z"]))
        assert np.array_equal(z.reshape(2, 2), matmul_fixed(FXP, x, y))
