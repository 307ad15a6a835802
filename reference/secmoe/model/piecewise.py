"""Piecewise-quadratic activations: the table type and its plaintext evaluation (spec/06-models.md#piecewise)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class PiecewiseTable:
    """k breakpoints b_0 < ... < b_{k-1} and k + 1 rows (c2, c1, c0), one per segment.

    Segment j holds the x with b_{j-1} < x <= b_j (b_{-1} = -inf, b_k = +inf): segments are
    right-closed, so j = #{i : x > b_i}. Every row has degree 2 (padded with zeros).
    """

    name: str
    breakpoints: tuple[float, ...]
    coeffs: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        b = self.breakpoints
        if any(not b[i] < b[i + 1] for i in range(len(b) - 1)):
            raise SpecError(f"{self.name}: breakpoints must increase strictly")
        if len(self.coeffs) != len(b) + 1 or any(len(r) != 3 for r in self.coeffs):
            raise SpecError(f"{self.name}: need {len(b) + 1} rows of (c2, c1, c0)")

    @property
    def segments(self) -> int:
        return len(self.coeffs)


def segment_index(table: PiecewiseTable, x: ArrayLike) -> NDArray[np.int64]:
    """j = #{i : x > b_i} for each real x."""
    arr = np.asarray(x, dtype=np.float64)
    out: NDArray[np.int64] = (
        (arr[..., None] > np.asarray(table.breakpoints)).sum(axis=-1).astype(np.int64)
    )
    return out


def piecewise_float(table: PiecewiseTable, x: ArrayLike) -> Floats:
    """The table evaluated in float64: c2 x^2 + c1 x + c0 with the row of x's segment."""
    arr = np.asarray(x, dtype=np.float64)
    c = np.asarray(table.coeffs, dtype=np.float64)[segment_index(table, arr)]
    out: Floats = c[..., 0] * arr * arr + c[..., 1] * arr + c[..., 2]
    return out


def piecewise_fixed(table: PiecewiseTable, fxp: FixedPoint, x: RingVec) -> RingVec:
    """The table evaluated exactly as the secure protocol does, in Z_{2^l} with f fractional bits.

    Implements spec §6.2.1 `piecewise_fixed` (spec/06-models.md#piecewise_fixed).
    """
    ring = fxp.ring
    x = ring.check(np.asarray(x), "x")
    # Step 1: compare with the encoded breakpoints: j = #{i : signed(x) > signed(enc(b_i))}.
    bounds = ring.to_signed(fxp_encode(fxp, list(table.breakpoints)))
    j = (ring.to_signed(x)[..., None] > bounds).sum(axis=-1)
    # Step 2: the selected row, each coefficient encoded with f fractional bits.
    rows = np.stack([fxp_encode(fxp, [r[k] for r in table.coeffs]) for k in range(3)], axis=-1)
    c2, c1, c0 = (rows[j][..., k] for k in range(3))
    # Step 3: x2 = trunc(x * x); y = trunc(c2 * x2) + trunc(c1 * x) + c0.
    x2 = fxp_trunc(fxp, ring.mul(x, x))
    return ring.add(ring.add(fxp_trunc(fxp, ring.mul(c2, x2)), fxp_trunc(fxp, ring.mul(c1, x))), c0)


def gelu(x: ArrayLike) -> Floats:
    """Exact GeLU: x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2."""
    arr = np.asarray(x, dtype=np.float64)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    out: Floats = 0.5 * arr * (1.0 + erf(arr / math.sqrt(2.0)))
    return out


def silu(x: ArrayLike) -> Floats:
    """Exact SiLU: x * sigmoid(x), evaluated without overflow."""
    arr = np.asarray(x, dtype=np.float64)
    out: Floats = arr * np.exp(-np.logaddexp(0.0, -arr))
    return out


def relu(x: ArrayLike) -> Floats:
    arr = np.asarray(x, dtype=np.float64)
    out: Floats = np.maximum(arr, 0.0)
    return out
