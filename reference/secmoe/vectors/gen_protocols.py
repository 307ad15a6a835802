"""Vector table of spec §30: products, b2a, mux, comparison, one-hot, truncation, piecewise.

Each entry (``shared_file``): the protocol, how a party's arguments are read from its inputs,
how its share is written, and how a case's inputs are drawn. Both parties call the protocol on
their own arguments, and each party's output is its share of the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secmoe.encoding import FixedPoint, Ring, fxp_encode
from secmoe.model.tables import TABLES
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import millionaire, msb, onehot
from secmoe.protocols.mul import and_bits, mul
from secmoe.protocols.piecewise import piecewise
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_bits, hex_ring
from secmoe.vectors.play import (
    Shares,
    arg_x,
    arg_x_and,
    arg_xy,
    arg_xy_bits,
    bits_of,
    out_bits,
    out_ring,
    param,
    ring_of,
    shared_file,
)
from secmoe.vectors.registry import Json


def _b2a_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return (bits_of(mine["b"], param(params)),)


def _mux_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return bits_of(mine["b"], param(params)), ring_of(ring, mine["x"])


def _millionaire_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    """The client holds v, the server u; both the bit width."""
    key = "v" if "v" in mine else "u"
    return np.asarray(mine[key], dtype=np.uint64), int(mine["bits"])


def _onehot_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return ring_of(ring, mine["index"]), int(mine["entries"])


def _piecewise_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return TABLES[mine["table"]], ring_of(ring, mine["x"])


def _mul(src: Prg, ring: Ring) -> Shares:
    xc, xs, yc, ys = (src.next_ring(4, ring.bits) for _ in range(4))
    return Shares(
        {"x": hex_ring(ring, xc), "y": hex_ring(ring, yc)},
        {"x": hex_ring(ring, xs), "y": hex_ring(ring, ys)},
        {"n": xc.size},
    )


def _and(src: Prg, ring: Ring) -> Shares:
    xc, xs, yc, ys = (src.next_bits(12) for _ in range(4))
    return Shares(
        {"x": hex_bits(xc), "y": hex_bits(yc)},
        {"x": hex_bits(xs), "y": hex_bits(ys)},
        {"n": xc.size},
    )


def _b2a(src: Prg, ring: Ring) -> Shares:
    bc, bs = src.next_bits(10), src.next_bits(10)
    return Shares({"b": hex_bits(bc)}, {"b": hex_bits(bs)}, {"n": bc.size})


def _mux(src: Prg, ring: Ring) -> Shares:
    bc, bs = src.next_bits(6), src.next_bits(6)
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)
    return Shares(
        {"b": hex_bits(bc), "x": hex_ring(ring, xc)},
        {"b": hex_bits(bs), "x": hex_ring(ring, xs)},
        {"n": bc.size},
    )


def _millionaire(src: Prg, ring: Ring) -> Shares:
    u, v = src.next_ring(5, 13), src.next_ring(5, 13)
    v[0] = u[0]  # one tie: [u < v] = 0
    return Shares(
        {"v": [int(x) for x in v], "bits": 13},
        {"u": [int(x) for x in u], "bits": 13},
        {"n": u.size},
    )


def _msb(src: Prg, ring: Ring) -> Shares:
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)
    return Shares({"x": hex_ring(ring, xc)}, {"x": hex_ring(ring, xs)}, {"n": xc.size})


def _onehot(src: Prg, ring: Ring) -> Shares:
    index = ring.from_int([int(v) for v in src.next_below(3, 8)])
    ic = src.next_ring(3, ring.bits)
    is_ = ring.sub(index, ic)
    return Shares(
        {"index": hex_ring(ring, ic), "entries": 8},
        {"index": hex_ring(ring, is_), "entries": 8},
        {"n": ic.size},
    )


def _trunc(src: Prg, ring: Ring) -> Shares:
    x = ring.from_int([int(v) - (1 << 13) for v in src.next_below(6, 1 << 14)])
    xc = src.next_ring(6, ring.bits)
    xs = ring.sub(x, xc)
    return Shares(
        {"x": hex_ring(ring, xc), "s": 4}, {"x": hex_ring(ring, xs), "s": 4}, {"n": xc.size}
    )


def _piecewise(src: Prg, ring: Ring) -> Shares:
    fxp = FixedPoint(ring, 18)
    x = fxp_encode(fxp, [-6.0, -3.0, -1.0 + 2**-18, 0.5, 1.0, 2.75, 3.0 + 2**-18, 7.25])
    xc = src.next_ring(x.size, ring.bits)
    xs = ring.sub(x, xc)
    return Shares(
        {"x": hex_ring(ring, xc), "table": "gelu"},
        {"x": hex_ring(ring, xs), "table": "gelu"},
        {"n": xc.size},
    )


shared_file(
    "mul",
    "30.1.1",
    "Beaver multiplication, triples from Gilboa COTs in the same run.",
    mul,
    _mul,
    64,
    args=arg_xy,
    out=out_ring,
)
shared_file(
    "and_bits",
    "30.1.2",
    "AND of XOR-shared bits with OT-generated AND triples.",
    and_bits,
    _and,
    1,
    args=arg_xy_bits,
    out=out_bits,
)
shared_file(
    "b2a",
    "30.2.1",
    "Boolean to arithmetic shares with one correlated OT per bit.",
    b2a,
    _b2a,
    64,
    args=_b2a_args,
    out=out_ring,
)
shared_file(
    "mux",
    "30.2.2",
    "b * x with XOR-shared b and arithmetic x: one COT per element each way.",
    mux,
    _mux,
    16,
    args=_mux_args,
    out=out_ring,
)
shared_file(
    "millionaire",
    "30.3.1",
    "[u < v] for the server's u and the client's v (13-bit values, 4 leaves).",
    millionaire,
    _millionaire,
    64,
    args=_millionaire_args,
    out=out_bits,
)
shared_file(
    "msb",
    "30.3.2",
    "The most significant bit of a shared ring element: one millionaire on l - 1 bits.",
    msb,
    _msb,
    16,
    args=arg_x,
    out=out_bits,
)
shared_file(
    "onehot",
    "30.3.5",
    "One-hot vectors of 3 shared indices among 8 experts (3 x 8 bits, row-major).",
    onehot,
    _onehot,
    64,
    args=_onehot_args,
    out=out_bits,
)
shared_file(
    "trunc",
    "30.4.1",
    "Exact truncation by s = 4 bits of values below 2^13 in magnitude.",
    trunc,
    _trunc,
    16,
    args=arg_x_and("s"),
    out=out_ring,
)
shared_file(
    "piecewise",
    "30.5.1",
    "GeLU by Select-Then-Compute at values around the breakpoints (f = 18).",
    piecewise,
    _piecewise,
    64,
    frac=18,
    args=_piecewise_args,
    out=out_ring,
)
