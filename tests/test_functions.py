"""exp, reciprocal, softmax, rsqrt, layernorm, rmsnorm on shares (spec/33-functions.md): bit-exact
against the fixed-point oracles, the oracles within the stated error of the float functions,
input checks, obliviousness, cost formulas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bounded import layer_settings
from costs import assert_cost
from hypothesis import given
from hypothesis import strategies as st
from oblivious import view_shape
from server_view import assert_server_view

from secmoe.encoding import FixedPoint, Ring, RingVec
from secmoe.errors import SpecError
from secmoe.model.fixed import (
    RECIPROCAL_COEFFS,
    exp_fixed,
    reciprocal_fixed,
    softmax_fixed,
)
from secmoe.model.norm import (
    NORM_BOUND,
    RSQRT_COEFFS,
    layernorm_fixed,
    layernorm_float,
    rmsnorm_fixed,
    rmsnorm_float,
    rsqrt_fixed,
)
from secmoe.model.piecewise import fit_table
from secmoe.protocols.norm import (
    layernorm,
    layernorm_cost,
    rmsnorm,
    rmsnorm_cost,
    rsqrt,
    rsqrt_cost,
)
from secmoe.protocols.softmax import (
    exp,
    exp_cost,
    reciprocal,
    reciprocal_cost,
    softmax,
    softmax_cost,
)
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, RunResult, run_local

FXP = FixedPoint()
RING = FXP.ring
UNIT = 2.0**-FXP.frac_bits


def run(fc: Any, fs: Any, record: str = "none") -> RunResult[Any, Any]:
    return run_local(
        fc, fs, client_seed=bytes([2]) * 32, server_seed=bytes([4]) * 32, fxp=FXP, record=record
    )  # type: ignore[arg-type]


def share(x: RingVec, seed: int = 0) -> tuple[RingVec, RingVec]:
    """(client's, server's) shares of x, the client's uniform."""
    xc = Prg(bytes([seed % 256]) * 32, dst("test", "functions")).next_ring(x.size, RING.bits)
    xc = xc.reshape(x.shape)
    return xc, RING.sub(x, xc)


def opened(res: RunResult[Any, Any]) -> RingVec:
    return RING.add(res.client, res.server)


# --- secure == oracle, bit for bit ------------------------------------------------------------


@layer_settings(10)
@given(
    z=st.lists(
        st.sampled_from([0.0, -14.0, -14.0 - UNIT, -13.99, -32.0, -1000.0, -UNIT])
        | st.floats(-40.0, 0.0),
        min_size=1,
        max_size=12,
    )
)
def test_exp_equals_exp_fixed(z: list[float]) -> None:
    x = FXP.encode(z)
    xc, xs = share(x, len(z))
    res = run(lambda c: exp(c, xc), lambda c: exp(c, xs))
    assert np.array_equal(opened(res), exp_fixed(FXP, x))


@layer_settings(10)
@given(bound=st.sampled_from([1, 2, 3, 8, 100, 2**18]), data=st.data())
def test_reciprocal_equals_reciprocal_fixed(bound: int, data: st.DataObject) -> None:
    one = 1 << FXP.frac_bits
    edges = [one, 2 * one, 2 * one + 1, bound * one] + [1 << k for k in range(18, 19 + 18)]
    pool = st.sampled_from([v for v in edges if one <= v <= bound * one])
    raw = data.draw(st.lists(pool | st.integers(one, bound * one), min_size=1, max_size=10))
    s = RING.from_int(raw)
    sc, ss = share(s, bound)
    res = run(lambda c: reciprocal(c, sc, bound), lambda c: reciprocal(c, ss, bound))
    assert np.array_equal(opened(res), reciprocal_fixed(FXP, s, bound))


@layer_settings(10)
@given(
    rows=st.integers(1, 2),
    n=st.integers(1, 6),
    data=st.data(),
)
def test_softmax_equals_softmax_fixed(rows: int, n: int, data: st.DataObject) -> None:
    vals = data.draw(
        st.lists(
            st.sampled_from([0.0, 3.0, -14.0, 20.0]) | st.floats(-30.0, 30.0),
            min_size=rows * n,
            max_size=rows * n,
        )
    )
    z = FXP.encode(np.array(vals).reshape(rows, n))
    zc, zs = share(z, n)
    res = run(lambda c: softmax(c, zc), lambda c: softmax(c, zs))
    assert np.array_equal(opened(res), softmax_fixed(FXP, z))


@layer_settings(10)
@given(bound=st.sampled_from([1, 5, NORM_BOUND]), data=st.data())
def test_rsqrt_equals_rsqrt_fixed(bound: int, data: st.DataObject) -> None:
    top = bound << FXP.frac_bits
    edges = [1, 2, 3, 4, 5, top] + [1 << k for k in range(0, top.bit_length())]
    pool = st.sampled_from([v for v in edges if v <= top]) | st.integers(1, top)
    v = RING.from_int(data.draw(st.lists(pool, min_size=1, max_size=10)))
    vc, vs = share(v, bound)
    res = run(lambda c: rsqrt(c, vc, bound), lambda c: rsqrt(c, vs, bound))
    assert np.array_equal(opened(res), rsqrt_fixed(FXP, v, bound))


def _norm_inputs(data: st.DataObject) -> tuple[RingVec, RingVec, RingVec]:
    t, d = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 6))
    scale = data.draw(st.sampled_from([1e-3, 0.5, 4.0, 40.0]))
    x = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=t * d, max_size=t * d))
    g = data.draw(st.lists(st.floats(-2.0, 2.0), min_size=d, max_size=d))
    b = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=d, max_size=d))
    shift = data.draw(st.sampled_from([0.0, 5.0]))
    xs = FXP.encode(np.array(x).reshape(t, d) * scale + shift)
    return xs, FXP.encode(g), FXP.encode(b)


@layer_settings(10)
@given(data=st.data())
def test_layernorm_and_rmsnorm_equal_their_oracles(data: st.DataObject) -> None:
    x, g, b = _norm_inputs(data)
    xc, xs = share(x, x.size)
    res = run(lambda c: layernorm(c, xc, None, None), lambda c: layernorm(c, xs, g, b))
    assert np.array_equal(opened(res), layernorm_fixed(FXP, x, g, b))
    res = run(lambda c: rmsnorm(c, xc, None, eps=1e-4), lambda c: rmsnorm(c, xs, g, eps=1e-4))
    assert np.array_equal(opened(res), rmsnorm_fixed(FXP, x, g, eps=1e-4))


# --- oracles against the float functions (pure numpy, no 2PC) ------------------------------------


def test_the_committed_coefficients_are_fit_tables_fits() -> None:
    recip = fit_table("recip", lambda u: 1.0 / u, (0.5, 1.0))
    root = fit_table("rsqrt", lambda u: 1.0 / np.sqrt(u), (0.25, 1.0))
    assert recip.coeffs[1] == RECIPROCAL_COEFFS
    assert root.coeffs[1] == RSQRT_COEFFS


def test_reciprocal_fixed_is_within_two_units() -> None:
    one = 1 << FXP.frac_bits
    dense = np.arange(one, 4 * one + 1, dtype=np.int64)  # every multiple of 2^-f in [1, 4]
    wide = np.unique(np.geomspace(one, one << 18, 200001).astype(np.int64))
    for raw in (dense, wide):
        s = RING.from_int(raw)
        r = RING.to_signed(reciprocal_fixed(FXP, s, 2**18)).astype(np.float64) * UNIT
        err = np.abs(r - one / raw.astype(np.float64))
        assert err.max() < 2 * UNIT


def test_rsqrt_fixed_is_within_three_units_relative() -> None:
    top = NORM_BOUND << FXP.frac_bits
    dense = np.arange(1, 20001, dtype=np.int64)
    wide = np.unique(np.geomspace(1, top, 200001).astype(np.int64))
    powers = np.array([1 << k for k in range(0, top.bit_length())], dtype=np.int64)
    for raw in (dense, wide, powers):
        v = raw.astype(np.float64) * UNIT
        r = RING.to_signed(rsqrt_fixed(FXP, RING.from_int(raw), NORM_BOUND)) * UNIT
        want = 1.0 / np.sqrt(v)
        assert (np.abs(r - want) / np.maximum(1.0, want)).max() <= 3 * UNIT


def test_norm_oracles_are_within_the_stated_bound() -> None:
    src = np.random.default_rng(7)
    for d in (1, 3, 64, 768):
        for sigma in (1e-4, 0.05, 1.0, 30.0):
            for mu in (0.0, -50.0):
                x = FXP.encode(src.normal(size=(4, d)) * sigma + mu)
                g, b = FXP.encode(src.uniform(-2, 2, d)), FXP.encode(src.uniform(-1, 1, d))
                xd, gd, bd = FXP.decode(x), FXP.decode(g), FXP.decode(b)
                for kind in ("layernorm", "rmsnorm"):
                    if kind == "layernorm":
                        got = FXP.decode(layernorm_fixed(FXP, x, g, b))
                        want = layernorm_float(xd, gd, bd)
                        m = xd.mean(axis=1, keepdims=True)
                        v = ((xd - m) ** 2).mean(axis=1, keepdims=True) + 1e-5
                    else:
                        got = FXP.decode(rmsnorm_fixed(FXP, x, g))
                        want = rmsnorm_float(xd, gd)
                        m = np.zeros((4, 1))
                        v = (xd * xd).mean(axis=1, keepdims=True) + 1e-6
                    r = 1.0 / np.sqrt(v)
                    xh = np.abs((xd - m) * r * gd)
                    bound = UNIT * (
                        4
                        + 4 * r * (1 + np.abs(m)) * (1 + np.abs(gd))
                        + 4 * xh * (1 + 1 / r + 1 / v)
                    )
                    assert np.all(np.abs(got - want) <= bound), (kind, d, sigma, mu)


def test_softmax_fixed_divides_within_three_units_on_wide_rows() -> None:
    # Beyond exp_fixed's own error (spec §6.4.1), p = trunc(e r) is e / sum(e) to 3 units.
    z = FXP.encode(np.random.default_rng(3).normal(size=(3, 128)) * 4)
    d = RING.sub(z, RING.from_int(RING.to_signed(z).max(axis=1, keepdims=True)))
    e = FXP.decode(exp_fixed(FXP, d))
    p = FXP.decode(softmax_fixed(FXP, z))
    assert np.abs(p - e / e.sum(axis=1, keepdims=True)).max() <= 3 * UNIT


# --- input checks ------------------------------------------------------------------------------


def test_bad_inputs_raise_spec_error() -> None:
    z = np.zeros(3, np.uint64)
    x = np.zeros((2, 4), np.uint64)
    g = np.zeros(4, np.uint64)
    bad: list[Any] = [
        lambda c: reciprocal(c, z, 0),
        lambda c: reciprocal(c, z, True),
        lambda c: reciprocal(c, z, 2**19),
        lambda c: rsqrt(c, z, 2**19),
        lambda c: rsqrt(c, z, 0),
        lambda c: softmax(c, z),
        lambda c: softmax(c, np.zeros((1, 2, 3), np.uint64)),
        lambda c: exp(c, np.zeros(3, np.int64)),
        lambda c: layernorm(c, z, None, None),
        lambda c: layernorm(c, x, None, None, eps=-1.0),
        lambda c: rmsnorm(c, np.zeros((0, 4), np.uint64), None),
    ]
    for fn in bad:
        with pytest.raises(SpecError):
            run(fn, fn)

    def gamma_on_both(c: PartyContext) -> RingVec:
        return layernorm(c, x, g, g)

    def gamma_on_none(c: PartyContext) -> RingVec:
        return rmsnorm(c, x, None)

    def short_gamma(c: PartyContext) -> RingVec:
        return rmsnorm(c, x, None if c.party == "client" else g[:3])

    for fn in (gamma_on_both, gamma_on_none, short_gamma):
        with pytest.raises(SpecError):
            run(fn, fn)
    small = FixedPoint(Ring(40), 18)  # l < 2f + 8
    with pytest.raises(SpecError):
        run_local(
            lambda c: reciprocal(c, z, 4),
            lambda c: reciprocal(c, z, 4),
            client_seed=bytes(32),
            server_seed=bytes(32),
            fxp=small,
        )
    # The oracles check what the secure protocols cannot.
    with pytest.raises(SpecError):
        rsqrt_fixed(FXP, RING.from_int([0]), 4)
    with pytest.raises(SpecError):
        rsqrt_fixed(FXP, FXP.encode([5.0]), 4)
    with pytest.raises(SpecError):
        layernorm_fixed(FXP, x, g, g[:3])
    with pytest.raises(SpecError):
        rmsnorm_fixed(FXP, FXP.encode([[300.0]]), FXP.encode([1.0]))  # v > 2^16


# --- obliviousness -----------------------------------------------------------------------------


def test_the_servers_view_does_not_depend_on_the_clients_values() -> None:
    """Rows with other maxima, sums and variances in other segments: the same message sequence."""
    rows = [
        (FXP.encode([[5.0, -1.0, 0.0, -30.0]]), FXP.encode([[0.1, 2.0, 40.0, 0.0]])),
        (FXP.encode([[-20.0, -20.0, -20.0, 9.0]]), FXP.encode([[7.0, 7.0, 7.0, 7.0]])),
    ]
    views = []
    for logits, x in rows:
        lc, _ = share(logits, 1)
        xc, _ = share(x, 2)

        def client(ctx: PartyContext, lc: RingVec = lc, xc: RingVec = xc) -> Any:
            return softmax(ctx, lc), layernorm(ctx, xc, None, None)

        def server(ctx: PartyContext) -> Any:
            zero = np.zeros((1, 4), np.uint64)
            return softmax(ctx, zero), layernorm(ctx, zero, np.zeros(4, np.uint64), zero[0])

        res = run(client, server, record="hash")
        assert_server_view(res.transcript, "softmax", "layernorm")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1] and len(views[0]) > 0


# --- cost formulas -----------------------------------------------------------------------------


@layer_settings(3)
@given(
    rows=st.integers(1, 2),
    n=st.integers(1, 5),
    bound=st.sampled_from([1, 2, 3, 9]),
)
def test_costs_equal_the_formulas(rows: int, n: int, bound: int) -> None:
    z = np.zeros(n, np.uint64)
    m = np.zeros((rows, n), np.uint64)
    g = np.zeros(n, np.uint64)
    bits, frac = RING.bits, FXP.frac_bits
    assert_cost(exp_cost(n, bits, frac), lambda c: exp(c, z), lambda c: exp(c, z))
    assert_cost(
        reciprocal_cost(n, bound, bits, frac),
        lambda c: reciprocal(c, z, bound),
        lambda c: reciprocal(c, z, bound),
    )
    assert_cost(
        rsqrt_cost(n, bound, bits, frac), lambda c: rsqrt(c, z, bound), lambda c: rsqrt(c, z, bound)
    )
    assert_cost(softmax_cost(rows, n, bits, frac), lambda c: softmax(c, m), lambda c: softmax(c, m))
    assert_cost(
        layernorm_cost(rows, n, bits, frac),
        lambda c: layernorm(c, m, None, None),
        lambda c: layernorm(c, m, g, g),
    )
    assert_cost(
        rmsnorm_cost(rows, n, bits, frac),
        lambda c: rmsnorm(c, m, None),
        lambda c: rmsnorm(c, m, g),
    )
