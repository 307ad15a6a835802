"""Products, b2a and mux on shares (spec/30-protocols.md): correctness, cost, obliviousness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bounded import layer_settings
from hypothesis import given
from hypothesis import strategies as st
from oblivious import view_shape
from server_view import assert_server_view

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import SpecError
from secmoe.model.fixed import sigmoid_fixed
from secmoe.model.piecewise import PiecewiseTable, piecewise_fixed
from secmoe.model.tables import TABLES
from secmoe.ot.cost import cot_cost
from secmoe.ot.triples import dealer_triples
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import equal, lt_public, millionaire, msb, onehot
from secmoe.protocols.mul import and_bits, mul, square
from secmoe.protocols.piecewise import compare_width, input_bound, piecewise, plan, sigmoid
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, RunResult, run_local


def run(fc: Any, fs: Any, bits: int = 64, record: str = "none") -> RunResult[Any, Any]:
    return run_local(
        fc,
        fs,
        client_seed=bytes(32),
        server_seed=bytes([5]) * 32,
        fxp=FixedPoint(Ring(bits), 0),
        record=record,
    )  # type: ignore[arg-type]


def shares(seed: int, n: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = Prg(bytes([seed]) * 32, dst("test", "shares"))
    ring = Ring(bits)
    x, c = src.next_ring(n, bits), src.next_ring(n, bits)
    return x, c, ring.sub(x, c)


@layer_settings(10)
@given(n=st.integers(1, 40), bits=st.sampled_from([8, 32, 64]), seed=st.integers(0, 255))
def test_mul(n: int, bits: int, seed: int) -> None:
    ring = Ring(bits)
    x, xc, xs = shares(seed, n, bits)
    y, yc, ys = shares((seed + 1) % 256, n, bits)
    res = run(lambda ctx: mul(ctx, xc, yc), lambda ctx: mul(ctx, xs, ys), bits)
    assert np.array_equal(ring.add(res.client, res.server), ring.mul(x, y))
    online = res.cost.phases["online"]
    # d: the n l choice bits; y: the corrections of widths l - j, sum l (l + 1) / 2 bits each.
    each = (n * bits + 7) // 8 + (n * bits * (bits + 1) // 2 + 7) // 8
    assert online.bytes_c2s == online.bytes_s2c == each


@layer_settings(10)
@given(n=st.integers(1, 40), bits=st.sampled_from([2, 8, 32, 64]), seed=st.integers(0, 255))
def test_square(n: int, bits: int, seed: int) -> None:
    ring = Ring(bits)
    x, xc, xs = shares(seed, n, bits)
    res = run(lambda ctx: square(ctx, xc), lambda ctx: square(ctx, xs), bits)
    assert np.array_equal(ring.add(res.client, res.server), ring.mul(x, x))


def test_mul_with_dealer_triples_is_one_round() -> None:
    ring = Ring(64)
    x, xc, xs = shares(1, 8, 64)
    y, yc, ys = shares(2, 8, 64)
    res = run(
        lambda ctx: mul(ctx, xc, yc, dealer_triples(bytes(32), "client", 8)),
        lambda ctx: mul(ctx, xs, ys, dealer_triples(bytes(32), "server", 8)),
    )
    assert np.array_equal(ring.add(res.client, res.server), ring.mul(x, y))
    assert res.cost.rounds == 1 and res.cost.total().bytes == 2 * 2 * 8 * 8


@layer_settings(10)
@given(n=st.integers(1, 60), seed=st.integers(0, 255))
def test_and_b2a_mux(n: int, seed: int) -> None:
    src = Prg(bytes([seed]) * 32, dst("test", "bits"))
    b, bc, d, dc = (src.next_bits(n) for _ in range(4))
    res = run(lambda ctx: and_bits(ctx, bc, dc), lambda ctx: and_bits(ctx, b ^ bc, d ^ dc))
    assert np.array_equal(res.client ^ res.server, b & d)
    ring = Ring(64)
    res = run(lambda ctx: b2a(ctx, bc), lambda ctx: b2a(ctx, b ^ bc))
    assert np.array_equal(ring.add(res.client, res.server), b.astype(np.uint64))
    online = res.cost.phases["online"]
    want = cot_cost("server", n, 64, fresh=False, warm=True)  # refills are in phase offline
    assert (online.bytes_c2s, online.bytes_s2c) == (want.c2s, want.s2c)
    x, xc, xs = shares(seed, n, 64)
    res = run(lambda ctx: mux(ctx, bc, xc), lambda ctx: mux(ctx, b ^ bc, xs))
    assert np.array_equal(ring.add(res.client, res.server), np.where(b == 1, x, np.uint64(0)))


def test_server_view_does_not_depend_on_the_clients_values() -> None:
    """Label, size, order and round of every message are the same whatever the inputs."""
    views = []
    for seed in (1, 2):
        src = Prg(bytes([seed]) * 32, dst("test", "view"))
        bc, xc = src.next_bits(16), src.next_ring(16)

        def client(ctx: PartyContext, bc: np.ndarray = bc, xc: np.ndarray = xc) -> Any:
            return mul(ctx, xc, xc), b2a(ctx, bc), mux(ctx, bc, xc)

        def server(ctx: PartyContext) -> Any:
            zero_b, zero_x = np.zeros(16, np.uint8), np.zeros(16, np.uint64)
            return mul(ctx, zero_x, zero_x), b2a(ctx, zero_b), mux(ctx, zero_b, zero_x)

        res = run(client, server, record="hash")
        assert_server_view(res.transcript, "mul", "b2a", "mux")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1]


@layer_settings(12)
@given(n=st.integers(1, 30), bits=st.integers(1, 64), seed=st.integers(0, 255))
def test_millionaire(n: int, bits: int, seed: int) -> None:
    src = Prg(bytes([seed]) * 32, dst("test", "mill"))
    u, v = src.next_ring(n, bits), src.next_ring(n, bits)
    v[: n // 3] = u[: n // 3]  # ties
    res = run(lambda ctx: millionaire(ctx, v, bits), lambda ctx: millionaire(ctx, u, bits))
    assert np.array_equal(res.client ^ res.server, (u < v).astype(np.uint8))


@layer_settings(8)
@given(bits=st.sampled_from([2, 8, 33, 64]), seed=st.integers(0, 255))
def test_msb_and_lt_public(bits: int, seed: int) -> None:
    ring = Ring(bits)
    x, xc, xs = shares(seed, 40, bits)
    res = run(lambda ctx: msb(ctx, xc), lambda ctx: msb(ctx, xs), bits)
    assert np.array_equal(res.client ^ res.server, ring.msb(x))
    fxp = FixedPoint()
    vals = np.linspace(-6, 6, 49)
    xv = fxp.encode(vals)
    c = fxp.encode(np.full(49, 1.25))
    _, xc, xs = shares(seed, 49, 64)
    xs = fxp.ring.sub(xv, xc)
    res = run(lambda ctx: lt_public(ctx, xc, c), lambda ctx: lt_public(ctx, xs, c))
    assert np.array_equal(res.client ^ res.server, (vals < 1.25).astype(np.uint8))


def test_comparison_view_is_input_independent_and_bad_width_rejected() -> None:
    views = []
    for seed in (3, 4):
        _, xc, _ = shares(seed, 16, 64)

        def client(ctx: PartyContext, xc: np.ndarray = xc) -> Any:
            return msb(ctx, xc)

        def server(ctx: PartyContext) -> Any:
            return msb(ctx, np.zeros(16, np.uint64))

        res = run(client, server, record="hash")
        assert_server_view(res.transcript, "msb")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1]
    with pytest.raises(SpecError):
        run(
            lambda ctx: millionaire(ctx, np.zeros(2, np.uint64), 65),
            lambda ctx: millionaire(ctx, np.zeros(2, np.uint64), 65),
        )


@layer_settings(8)
@given(bits=st.sampled_from([8, 16, 40, 64]), seed=st.integers(0, 255), data=st.data())
def test_trunc_is_exact(bits: int, seed: int, data: st.DataObject) -> None:
    ring = Ring(bits)
    s = data.draw(st.integers(1, bits - 2))
    src = Prg(bytes([seed]) * 32, dst("test", "trunc"))
    n = 30
    x = src.next_below(n, 1 << (bits - 2)).astype(np.int64) - (1 << (bits - 3))
    x[:4] = [-(1 << (bits - 2)) + 1, (1 << (bits - 2)) - 1, 0, -1]
    xr = ring.from_int(x)
    xc = src.next_ring(n, bits)
    fxp = FixedPoint(ring, 0)
    res = run_local(
        lambda ctx: trunc(ctx, xc, s),
        lambda ctx: trunc(ctx, ring.sub(xr, xc), s),
        client_seed=bytes(32),
        server_seed=bytes([5]) * 32,
        fxp=fxp,
    )
    assert np.array_equal(ring.to_signed(ring.add(res.client, res.server)), x >> s)


def test_trunc_rejects_bad_shifts() -> None:
    for s in (0, 63):
        with pytest.raises(SpecError):
            run(
                lambda ctx, s=s: trunc(ctx, np.zeros(2, np.uint64), s),
                lambda ctx, s=s: trunc(ctx, np.zeros(2, np.uint64), s),
            )


@layer_settings(6)
@given(
    seed=st.integers(0, 255),
    table=st.sampled_from(["gelu", "silu", "relu", "sigmoid"]),
    params=st.sampled_from([(64, 18), (48, 12)]),
)
def test_piecewise_equals_the_fixed_point_model_exactly(
    seed: int, table: str, params: tuple[int, int]
) -> None:
    fxp = FixedPoint(Ring(params[0]), params[1])
    t = TABLES[table]
    src = Prg(bytes([seed]) * 32, dst("test", "pw"))
    ulp = 2.0 ** -params[1]
    edges = [b + d for b in t.breakpoints for d in (-ulp, 0.0, ulp)]
    vals = np.concatenate(
        [(src.next_below(24, 1 << 24).astype(np.float64) - (1 << 23)) / (1 << 20), edges]
    )
    # The input bound X of spec §30.5.1 and its neighbours: the comparisons in Z_2^m must hold
    # there too.
    bound = input_bound(params[0])
    far = fxp.ring.from_int([-bound, -bound + 1, bound - 1, bound])
    x = np.concatenate([fxp.encode(vals), far])
    xc = src.next_ring(x.size, params[0])
    res = run_local(
        lambda ctx: piecewise(ctx, t, xc),
        lambda ctx: piecewise(ctx, t, fxp.ring.sub(x, xc)),
        client_seed=bytes([seed]) * 32,
        server_seed=bytes(32),
        fxp=fxp,
    )
    assert np.array_equal(fxp.ring.add(res.client, res.server), piecewise_fixed(t, fxp, x))


def test_sigmoid_equals_sigmoid_fixed_on_a_matrix() -> None:
    # The entry point other protocols call (spec §30.5.2): any shape, exact.
    fxp = FixedPoint()
    src = Prg(bytes([7]) * 32, dst("test", "sigmoid"))
    vals = (src.next_below(24, 1 << 24).astype(np.float64) - (1 << 23)) / (1 << 20)
    x = fxp.encode(np.concatenate([vals, [-5.75, 0.0, 5.75, -3.0, 3.0, 9.0]]).reshape(5, 6))
    xc = src.next_ring(x.size, 64).reshape(x.shape)
    res = run_local(
        lambda ctx: sigmoid(ctx, xc),
        lambda ctx: sigmoid(ctx, fxp.ring.sub(x, xc)),
        client_seed=bytes(32),
        server_seed=bytes([1]) * 32,
    )
    y = fxp.ring.add(res.client, res.server)
    assert y.shape == x.shape and np.array_equal(y, sigmoid_fixed(fxp, x))


def test_piecewise_plan_width_and_live_segments() -> None:
    fxp = FixedPoint()
    bound = input_bound(64)
    assert bound == (1 << 31) - 1 and bound**2 < 1 << 62 <= (bound + 1) ** 2
    for bits in (8, 33, 48, 64):
        x = input_bound(bits)
        # |x - c| <= 2X for |x|, |c| <= X fits in Z_2^m, and m is the smallest width that does.
        m = compare_width(bits)
        assert 2 * x < 1 << (m - 1) and (m == bits or 2 * x >= 1 << (m - 2))
    for t in TABLES.values():
        assert plan(t, fxp).width == 33
    gelu = plan(TABLES["gelu"], fxp)
    assert gelu.quad.segments == (1, 2, 3, 4) and gelu.lin.segments == (1, 2, 3, 4, 5)
    assert gelu.const.segments == (1, 2, 3, 4) and gelu.quad.truncated and gelu.lin.truncated
    relu = plan(TABLES["relu"], fxp)
    # ReLU: no square, c1 = 1 is a multiple of 2^f (no truncation), no constant.
    assert relu.quad.segments == () and relu.lin.coeffs == (1,) and not relu.lin.truncated
    assert relu.const.segments == ()
    far = PiecewiseTable("far", (-1.0, 2.0**13), ((0.0, 0.0, 0.0),) * 3)
    with pytest.raises(SpecError, match="input bound"):
        plan(far, fxp)


@layer_settings(8)
@given(bits=st.sampled_from([8, 33, 64]), seed=st.integers(0, 255), data=st.data())
def test_msb_and_lt_public_in_a_smaller_ring(bits: int, seed: int, data: st.DataObject) -> None:
    ring = Ring(bits)
    m = data.draw(st.integers(1, bits))
    x, xc, xs = shares(seed, 40, bits)
    res = run(lambda ctx: msb(ctx, xc, m), lambda ctx: msb(ctx, xs, m), bits)
    want = ((x >> np.uint64(m - 1)) & np.uint64(1)).astype(np.uint8)
    assert np.array_equal(res.client ^ res.server, want)
    # [x < c] for differences x - c over all of [-2^(m-1), 2^(m-1)), both ends included, with
    # x and c of any size in Z_2^l.
    src = Prg(bytes([seed]) * 32, dst("test", "ltw"))
    half = 1 << (m - 1)
    d = src.next_below(40, 2 * half).astype(np.int64) - half
    d[:2] = [-half, half - 1]
    c = src.next_ring(40, bits)
    xv = ring.add(c, ring.from_int(d))
    xc = src.next_ring(40, bits)
    res = run(
        lambda ctx: lt_public(ctx, xc, c, m),
        lambda ctx: lt_public(ctx, ring.sub(xv, xc), c, m),
        bits,
    )
    assert np.array_equal(res.client ^ res.server, (d < 0).astype(np.uint8))
    for bad in (0, bits + 1):
        with pytest.raises(SpecError, match="width"):
            run(lambda ctx, w=bad: msb(ctx, xc, w), lambda ctx, w=bad: msb(ctx, xc, w), bits)


@layer_settings(6)
@given(entries=st.integers(2, 130), seed=st.integers(0, 255))
def test_onehot_and_equal(entries: int, seed: int) -> None:
    ring = Ring(64)
    src = Prg(bytes([seed]) * 32, dst("test", "onehot"))
    index = src.next_below(5, entries).astype(np.uint64)
    ic = src.next_ring(5)
    res = run(
        lambda ctx: onehot(ctx, ic, entries), lambda ctx: onehot(ctx, ring.sub(index, ic), entries)
    )
    assert np.array_equal(
        res.client ^ res.server, (np.arange(entries)[None, :] == index[:, None]).astype(np.uint8)
    )
    u, v = src.next_ring(20, 7), src.next_ring(20, 7)
    v[:10] = u[:10]
    res = run(lambda ctx: equal(ctx, v, 7), lambda ctx: equal(ctx, u, 7))
    assert np.array_equal(res.client ^ res.server, (u == v).astype(np.uint8))
    with pytest.raises(SpecError):
        run(lambda ctx: onehot(ctx, ic, 1), lambda ctx: onehot(ctx, ic, 1))


def test_piecewise_server_view_does_not_depend_on_the_input() -> None:
    fxp = FixedPoint()
    t = TABLES["gelu"]
    views = []
    for vals in ([-6.0, -2.0, 0.5, 4.0], [3.0, 3.0, -5.0, 100.0]):
        x = fxp.encode(np.array(vals))
        xc = Prg(bytes(32), dst("test", "pw-view")).next_ring(x.size)
        res = run_local(
            lambda ctx, xc=xc: piecewise(ctx, t, xc),
            lambda ctx, x=x, xc=xc: piecewise(ctx, t, fxp.ring.sub(x, xc)),
            client_seed=bytes([7]) * 32,
            server_seed=bytes(32),
            record="hash",
        )
        assert_server_view(res.transcript, "piecewise")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1]


def test_msb_width_vectors_hold_bit_m_minus_1() -> None:
    import json
    from pathlib import Path

    from secmoe.encoding import bit_vec_decode

    path = Path(__file__).resolve().parent.parent / "vectors/protocols/msb_width.json"
    data = json.loads(path.read_text())
    ring = Ring(data["params"]["ring_bits"])
    tests = [c for g in data["testGroups"] for c in g["tests"]]
    assert tests
    for c in tests:
        m = c["inputs"]["client"]["width"]
        xc, xs = (bytes.fromhex(c["inputs"][p]["x"]) for p in ("client", "server"))
        x = ring.add(ring.decode_vec(xc, len(xc) // 8), ring.decode_vec(xs, len(xs) // 8))
        z = bit_vec_decode(bytes.fromhex(c["outputs"]["client"]["z"]), x.size) ^ bit_vec_decode(
            bytes.fromhex(c["outputs"]["server"]["z"]), x.size
        )
        assert m < ring.bits
        assert np.array_equal(z, ((x >> np.uint64(m - 1)) & np.uint64(1)).astype(np.uint8))
