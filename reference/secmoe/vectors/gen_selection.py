"""Vector table of spec §32: comparison of shares, maximum, argmax, top-k.

Table entries (``shared_file``) like those of ``gen_protocols``: both parties call the same
function on their own shares, and each party's output ``z`` is its share of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.encoding import Ring, RingVec
from secmoe.protocols.topk import TopK, argmax, lt, maximum, topk
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_bits, hex_ring
from secmoe.vectors.play import (
    MakeShares,
    Shares,
    arg_x,
    arg_x_and,
    arg_xy,
    out_bits,
    out_ring,
    shared_file,
)

BITS = 16
SPEC = "32-selection.md"


def _signed(src: Prg, count: int, bound_bits: int) -> list[int]:
    """count signed values of magnitude below 2^bound_bits."""
    top = 1 << bound_bits
    return [int(v) - top + 1 for v in src.next_below(count, 2 * top - 1)]


def _split(
    src: Prg, ring: Ring, values: list[int], shape: tuple[int, ...]
) -> tuple[RingVec, RingVec]:
    x = ring.from_int(values).reshape(shape)
    xc = src.next_ring(x.size, ring.bits).reshape(shape)
    return xc, ring.sub(x, xc)


def _argmax_out(ring: Ring) -> Callable[[Any], str]:
    """The maxima then the indices, one ring vector."""
    return lambda v: hex_ring(ring, np.concatenate(v))


def _topk_out(ring: Ring) -> Callable[[Any], str]:
    """The values then the indices (a ring vector), then the one-hot's bit vector."""

    def enc(out: TopK) -> str:
        assert out.onehot is not None
        both = np.concatenate([out.values.reshape(-1), out.indices.reshape(-1)])
        return hex_ring(ring, both) + hex_bits(out.onehot)

    return enc


def _lt(src: Prg, ring: Ring) -> Shares:
    x = _signed(src, 6, ring.bits - 2)
    y = _signed(src, 6, ring.bits - 2)
    y[0] = x[0]  # a tie: [x < y] = 0
    (xc, xs), (yc, ys) = _split(src, ring, x, (6,)), _split(src, ring, y, (6,))
    return Shares(
        {"x": hex_ring(ring, xc), "y": hex_ring(ring, yc)},
        {"x": hex_ring(ring, xs), "y": hex_ring(ring, ys)},
        {"n": xc.size},
    )


def _rows(src: Prg, ring: Ring, bound_bits: int) -> tuple[RingVec, RingVec]:
    """A 2 x 5 matrix whose first row has its maximum twice (at indices 1 and 3)."""
    x = _signed(src, 10, bound_bits)
    x[1] = x[3] = max(x[:5]) + 1
    return _split(src, ring, x, (2, 5))


def _matrix(bound_bits: int) -> MakeShares:
    def make(src: Prg, ring: Ring) -> Shares:
        xc, xs = _rows(src, ring, bound_bits)
        rows, n = xc.shape
        return Shares({"x": hex_ring(ring, xc)}, {"x": hex_ring(ring, xs)}, {"rows": rows, "n": n})

    return make


def _topk(src: Prg, ring: Ring) -> Shares:
    xc, xs = _rows(src, ring, ring.bits - 5)

    return Shares(
        {"x": hex_ring(ring, xc), "k": 2, "onehot": True},
        {"x": hex_ring(ring, xs), "k": 2, "onehot": True},
        {"rows": xc.shape[0], "n": xc.shape[1]},
    )


shared_file(
    "lt",
    "32.1.1",
    ["[x < y] of shared signed x, y (|x|, |y| < 2^14), one tie; z: XOR shares as a bit vector."],
    lt,
    _lt,
    BITS,
    spec=SPEC,
    args=arg_xy,
    out=out_bits,
)
shared_file(
    "maximum",
    "32.2.1",
    ["Row maxima of a shared 2 x 5 matrix (|x| <= 2^13), row 0 with a tied maximum."],
    maximum,
    _matrix(BITS - 3),
    BITS,
    spec=SPEC,
    args=arg_x,
    out=out_ring,
)
shared_file(
    "argmax",
    "32.2.2",
    [
        "Row maxima and their indices of a shared 2 x 5 matrix; row 0's maximum is at indices",
        "1 and 3, the lower wins. z: ring vector of the 2 maxima then the 2 indices.",
    ],
    argmax,
    _matrix(BITS - 3),
    BITS,
    spec=SPEC,
    args=arg_x,
    out=_argmax_out,
)
shared_file(
    "topk",
    "32.3.1",
    [
        "Top-2 with one-hot of a shared 2 x 5 matrix (|x| <= 2^11); row 0's two largest are a",
        "tie at indices 1 and 3. z: ring vector of the values (2 x 2, row-major) then the",
        "indices (2 x 2), followed by the bit vector of the one-hot (2 x 2 x 5, row-major).",
    ],
    topk,
    _topk,
    BITS,
    spec=SPEC,
    args=arg_x_and("k", "onehot"),
    out=_topk_out,
)
