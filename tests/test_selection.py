"""Selection on shares (spec/32-selection.md): lt, maximum, argmax, top-k against the plaintext
oracle, ties included; input checks; obliviousness; cost formulas."""

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

from secmoe.encoding import FixedPoint, Ring, RingVec, bit_vec_decode, ring_vec_decode
from secmoe.errors import SpecError
from secmoe.model.plain import topk_order
from secmoe.protocols.topk import (
    TopK,
    argmax,
    argmax_cost,
    lt,
    lt_cost,
    maximum,
    maximum_cost,
    topk,
    topk_cost,
)
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, RunResult, run_local


def run(fc: Any, fs: Any, bits: int = 64, record: str = "none") -> RunResult[Any, Any]:
    return run_local(
        fc,
        fs,
        client_seed=bytes([7]) * 32,
        server_seed=bytes([9]) * 32,
        fxp=FixedPoint(Ring(bits), 0),
        record=record,
    )  # type: ignore[arg-type]


def share(x: np.ndarray, bits: int, seed: int = 0) -> tuple[RingVec, RingVec]:
    """(client's, server's) shares of the signed integers x, the client's uniform."""
    ring = Ring(bits)
    xr = ring.from_int(np.asarray(x, dtype=np.int64))
    xc = Prg(bytes([seed % 256]) * 32, dst("test", "selection")).next_ring(xr.size, bits)
    xc = xc.reshape(xr.shape)
    return xc, ring.sub(xr, xc)


def signed(ring: Ring, a: RingVec, b: RingVec) -> np.ndarray:
    return ring.to_signed(ring.add(a, b))


def matrices(bound_bits: int) -> st.SearchStrategy[tuple[np.ndarray, int]]:
    """(rows, n) signed matrices with many ties: few distinct values, the extremes included."""

    @st.composite
    def draw(data: st.DrawFn) -> tuple[np.ndarray, int]:
        bits = data(st.sampled_from([16, 64]))
        rows, n = data(st.integers(1, 3)), data(st.integers(1, 20))
        top = (1 << (bits - bound_bits)) - 1
        pool = st.sampled_from([-top, -3, -1, 0, 1, 2, 5, top]) | st.integers(-top, top)
        vals = data(st.lists(pool, min_size=rows * n, max_size=rows * n))
        return np.array(vals, dtype=np.int64).reshape(rows, n), bits

    return draw()


@layer_settings(30)
@given(case=matrices(4), data=st.data())
def test_topk_equals_the_oracle_with_ties(case: Any, data: st.DataObject) -> None:
    x, bits = case
    ring = Ring(bits)
    n = x.shape[1]
    k = data.draw(st.integers(1, min(3, n)))
    flag = data.draw(st.booleans())
    xc, xs = share(x, bits, seed=n)
    res = run(lambda c: topk(c, xc, k, flag), lambda c: topk(c, xs, k, flag), bits)
    want = topk_order(x, k)
    got_idx = signed(ring, res.client.indices, res.server.indices)
    assert np.array_equal(got_idx, want)
    assert np.array_equal(
        signed(ring, res.client.values, res.server.values), np.take_along_axis(x, want, axis=1)
    )
    if flag:
        hot = res.client.onehot ^ res.server.onehot
        assert hot.shape == (x.shape[0], k, n)
        assert np.array_equal(hot, (np.arange(n) == want[..., None]).astype(np.uint8))
    else:
        assert res.client.onehot is None and res.server.onehot is None


def test_topk_edge_cases_n_1_and_k_equals_n() -> None:
    ring = Ring(64)
    for x, k in ((np.array([[-5]]), 1), (np.array([[3, 3, -2, 3, 7]]), 5)):
        xc, xs = share(x, 64)
        res = run(
            lambda c, xc=xc, k=k: topk(c, xc, k, True), lambda c, xs=xs, k=k: topk(c, xs, k, True)
        )
        want = topk_order(x, k)
        assert np.array_equal(signed(ring, res.client.indices, res.server.indices), want)
        assert np.array_equal(
            signed(ring, res.client.values, res.server.values), np.take_along_axis(x, want, 1)
        )
        assert np.array_equal(
            res.client.onehot ^ res.server.onehot, (np.arange(x.shape[1]) == want[..., None])
        )
    # A full sort of a row with ties: k = n is a stable descending sort.
    x = np.array([[2, -1, 2, 0, -1, 2]])
    xc, xs = share(x, 64)
    res = run(lambda c: topk(c, xc, 6), lambda c: topk(c, xs, 6))
    assert signed(ring, res.client.indices, res.server.indices).tolist() == [[0, 2, 5, 3, 1, 4]]


@layer_settings(20)
@given(case=matrices(2))
def test_maximum_and_argmax(case: Any) -> None:
    x, bits = case
    ring = Ring(bits)
    xc, xs = share(x, bits, seed=3)
    res = run(lambda c: maximum(c, xc), lambda c: maximum(c, xs), bits)
    assert np.array_equal(signed(ring, res.client, res.server), x.max(axis=1))
    res = run(lambda c: argmax(c, xc), lambda c: argmax(c, xs), bits)
    assert np.array_equal(signed(ring, res.client[0], res.server[0]), x.max(axis=1))
    # numpy's argmax returns the first maximum: the lowest index, the oracle's tie rule.
    assert np.array_equal(signed(ring, res.client[1], res.server[1]), x.argmax(axis=1))


def test_a_vector_is_one_row() -> None:
    ring = Ring(64)
    x = np.array([4, -9, 4, 11, 11, 0, -2])
    xc, xs = share(x, 64)
    res = run(lambda c: maximum(c, xc), lambda c: maximum(c, xs))
    assert signed(ring, res.client, res.server).tolist() == [11]
    res = run(lambda c: argmax(c, xc), lambda c: argmax(c, xs))
    assert signed(ring, res.client[1], res.server[1]).tolist() == [3]


@layer_settings(8)
@given(bits=st.sampled_from([8, 16, 64]), seed=st.integers(0, 255))
def test_lt(bits: int, seed: int) -> None:
    top = (1 << (bits - 2)) - 1
    src = Prg(bytes([seed]) * 32, dst("test", "lt"))
    x = src.next_below(24, 2 * top + 1).astype(np.int64) - top
    y = src.next_below(24, 2 * top + 1).astype(np.int64) - top
    x[:6], y[:6] = [top, -top, top, -top, 0, 5], [-top, top, top, -top, 0, 5]  # extremes, ties
    y[6:10] = x[6:10]
    (xc, xs), (yc, ys) = share(x, bits, seed), share(y, bits, seed + 1)
    res = run(lambda c: lt(c, xc, yc), lambda c: lt(c, xs, ys), bits)
    assert np.array_equal(res.client ^ res.server, (x < y).astype(np.uint8))


def test_bad_inputs_raise_spec_error() -> None:
    x = np.zeros((2, 4), np.uint64)
    bad: list[Any] = [
        lambda c: topk(c, x, 0),
        lambda c: topk(c, x, 5),
        lambda c: topk(c, x, True),
        lambda c: topk(c, np.zeros((2, 2, 2), np.uint64), 1),
        lambda c: maximum(c, np.zeros((1, 2, 3), np.uint64)),
        lambda c: argmax(c, np.zeros((0, 3), np.uint64)),
        lambda c: maximum(c, np.zeros(3, np.int64)),
        lambda c: lt(c, np.zeros(3, np.uint64), np.zeros(4, np.uint64)),
    ]
    for fn in bad:
        with pytest.raises(SpecError):
            run(fn, fn)
    with pytest.raises(SpecError):  # the removal constant 2^(l-3) needs l >= 4
        run(lambda c: topk(c, x, 1), lambda c: topk(c, x, 1), bits=3)


def test_the_servers_view_does_not_depend_on_the_routing() -> None:
    """Inputs with a different argmax and different top-2 sets give the same message sequence."""
    a = np.array([[9, 1, -3, 4, 0], [0, 0, 2, -7, 2]])
    b = np.array([[-3, 1, 2, 4, 8], [5, 6, 2, 0, 1]])
    assert not np.array_equal(a.argmax(1), b.argmax(1))
    assert [set(r) for r in topk_order(a, 2)] != [set(r) for r in topk_order(b, 2)]
    views = []
    for x in (a, b):
        xc, _ = share(x, 64)

        def client(ctx: PartyContext, xc: RingVec = xc) -> tuple[Any, TopK]:
            return argmax(ctx, xc), topk(ctx, xc, 2, True)

        def server(ctx: PartyContext) -> tuple[Any, TopK]:
            zero = np.zeros((2, 5), np.uint64)
            return argmax(ctx, zero), topk(ctx, zero, 2, True)

        res = run(client, server, record="hash")
        assert_server_view(res.transcript, "argmax", "topk")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1] and len(views[0]) > 0


@layer_settings(5)
@given(
    rows=st.integers(1, 3),
    n=st.integers(1, 9),
    bits=st.sampled_from([16, 64]),
    data=st.data(),
)
def test_costs_equal_the_formulas(rows: int, n: int, bits: int, data: st.DataObject) -> None:
    fxp = FixedPoint(Ring(bits), 0)
    z = np.zeros((rows, n), np.uint64)
    k = data.draw(st.integers(1, min(n, 3)))
    flag = data.draw(st.booleans())
    assert_cost(lt_cost(rows * n, bits), lambda c: lt(c, z, z), lambda c: lt(c, z, z), fxp)
    assert_cost(maximum_cost(rows, n, bits), lambda c: maximum(c, z), lambda c: maximum(c, z), fxp)
    assert_cost(argmax_cost(rows, n, bits), lambda c: argmax(c, z), lambda c: argmax(c, z), fxp)
    assert_cost(
        topk_cost(rows, n, k, bits, flag),
        lambda c: topk(c, z, k, flag),
        lambda c: topk(c, z, k, flag),
        fxp,
    )


def test_selection_vectors_hold_the_oracles_results() -> None:
    """The recorded outputs of vectors/protocols/{lt,maximum,argmax,topk}.json reconstruct to
    the plaintext results of the recorded inputs (ties to the lower index)."""
    root = Path(__file__).resolve().parent.parent / "vectors" / "protocols"
    ring = Ring(16)

    def cases(name: str) -> list[dict[str, Any]]:
        data = json.loads((root / f"{name}.json").read_text())
        assert data["params"]["ring_bits"] == 16
        return [t for g in data["testGroups"] for t in g["tests"]]

    def ring_hex(text: str) -> RingVec:
        data = bytes.fromhex(text)
        return ring_vec_decode(ring, data, len(data) // ring.byte_width)

    def total(c: dict[str, Any], key: str, side: str = "inputs") -> np.ndarray:
        a, b = (ring_hex(c[side][p][key]) for p in ("client", "server"))
        return ring.to_signed(ring.add(a, b))

    for c in cases("lt"):
        x, y = total(c, "x"), total(c, "y")
        assert x[0] == y[0]
        z = [
            bit_vec_decode(bytes.fromhex(c["outputs"][p]["z"]), x.size)
            for p in ("client", "server")
        ]
        assert np.array_equal(z[0] ^ z[1], (x < y).astype(np.uint8))
    for c in cases("maximum"):
        x = total(c, "x").reshape(2, 5)
        assert np.array_equal(total(c, "z", "outputs"), x.max(axis=1))
    for c in cases("argmax"):
        x = total(c, "x").reshape(2, 5)
        z = total(c, "z", "outputs")
        assert x[0, 1] == x[0, 3] == x[0].max() and z[2] == 1
        assert np.array_equal(z, np.concatenate([x.max(axis=1), x.argmax(axis=1)]))
    for c in cases("topk"):
        x = total(c, "x").reshape(2, 5)
        want = topk_order(x, 2)
        assert want[0].tolist() == [1, 3]
        # z: the ring vector of 8 elements (2 bytes each), then the 20-bit one-hot.
        split = {p: c["outputs"][p]["z"] for p in ("client", "server")}
        z = ring.to_signed(ring.add(*(ring_hex(v[:32]) for v in split.values())))
        hot = [bit_vec_decode(bytes.fromhex(v[32:]), 20) for v in split.values()]
        assert np.array_equal(z[:4].reshape(2, 2), np.take_along_axis(x, want, 1))
        assert np.array_equal(z[4:].reshape(2, 2), want)
        assert np.array_equal(
            (hot[0] ^ hot[1]).reshape(2, 2, 5), (np.arange(5) == want[..., None]).astype(np.uint8)
        )
