"""Vector generators for spec §32: comparison of shares, maximum, argmax, top-k.

The cases reuse the two-party case builder of ``gen_protocols``: both parties call the same
function on their own shares, and each party's output ``z`` is its share of the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secmoe.encoding import Ring, RingVec
from secmoe.protocols.topk import TopK, argmax, lt, maximum, topk
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_bits, hex_ring
from secmoe.vectors.gen_protocols import Inputs, MakeInputs, _reg

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


def _lt(src: Prg, ring: Ring) -> Inputs:
    x = _signed(src, 6, ring.bits - 2)
    y = _signed(src, 6, ring.bits - 2)
    y[0] = x[0]  # a tie: [x < y] = 0
    (xc, xs), (yc, ys) = _split(src, ring, x, (6,)), _split(src, ring, y, (6,))
    return Inputs(
        (xc, yc),
        (xs, ys),
        {"x": hex_ring(ring, xc), "y": hex_ring(ring, yc)},
        {"x": hex_ring(ring, xs), "y": hex_ring(ring, ys)},
        hex_bits,
        {"n": xc.size},
    )


def _rows(src: Prg, ring: Ring, bound_bits: int) -> tuple[RingVec, RingVec]:
    """A 2 x 5 matrix whose first row has its maximum twice (at indices 1 and 3)."""
    x = _signed(src, 10, bound_bits)
    x[1] = x[3] = max(x[:5]) + 1
    return _split(src, ring, x, (2, 5))


def _matrix(encode: Any, bound_bits: int) -> MakeInputs:
    def make(src: Prg, ring: Ring) -> Inputs:
        xc, xs = _rows(src, ring, bound_bits)
        rows, n = xc.shape
        return Inputs(
            (xc,),
            (xs,),
            {"x": hex_ring(ring, xc)},
            {"x": hex_ring(ring, xs)},
            encode(ring),
            {"rows": rows, "n": n},
        )

    return make


def _topk(src: Prg, ring: Ring) -> Inputs:
    xc, xs = _rows(src, ring, ring.bits - 5)

    def encode(out: TopK) -> str:
        assert out.onehot is not None
        both = np.concatenate([out.values.reshape(-1), out.indices.reshape(-1)])
        return hex_ring(ring, both) + hex_bits(out.onehot)

    return Inputs(
        (xc, 2, True),
        (xs, 2, True),
        {"x": hex_ring(ring, xc), "k": 2, "onehot": True},
        {"x": hex_ring(ring, xs), "k": 2, "onehot": True},
        encode,
        {"rows": xc.shape[0], "n": xc.shape[1]},
    )


_reg(
    "lt",
    "32.1.1",
    ["[x < y] of shared signed x, y (|x|, |y| < 2^14), one tie; z: XOR shares as a bit vector."],
    lt,
    _lt,
    BITS,
    spec=SPEC,
)
_reg(
    "maximum",
    "32.2.1",
    ["Row maxima of a shared 2 x 5 matrix (|x| <= 2^13), row 0 with a tied maximum."],
    maximum,
    _matrix(lambda ring: lambda v: hex_ring(ring, v), BITS - 3),
    BITS,
    spec=SPEC,
)
_reg(
    "argmax",
    "32.2.2",
    [
        "Row maxima and their indices of a shared 2 x 5 matrix; row 0's maximum is at indices",
        "1 and 3, the lower wins. z: ring vector of the 2 maxima then the 2 indices.",
    ],
    argmax,
    _matrix(lambda ring: lambda v: hex_ring(ring, np.concatenate(v)), BITS - 3),
    BITS,
    spec=SPEC,
)
_reg(
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
)
