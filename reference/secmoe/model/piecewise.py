"""Piecewise-quadratic activations: the table type and its plaintext evaluation (spec/06-models.md#piecewise)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError

Floats = NDArray[np.float64]
Activation = Callable[[Floats], Floats]
Row = tuple[float, float, float]
FIT_POINTS = 100001  # grid points per middle segment, both ends included
FIT_QUANTUM = 2.0**-32  # fitted coefficients are rounded to multiples of this
# GPT-OSS's clamped SwiGLU (spec §6.2 Tables): the swiglu_alpha and swiglu_limit its two tables
# are fitted for, and the breakpoints of a(g) = min(g, L) sigma(alpha min(g, L)).
GPTOSS_ALPHA = 1.702
GPTOSS_LIMIT = 7.0
GPTOSS_ACT_BREAKPOINTS = (-4.0, -1.0, 0.0, 1.0, 3.0, GPTOSS_LIMIT)


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


def quantise_rows(table: PiecewiseTable, fxp: FixedPoint) -> tuple[tuple[int, int, int], ...]:
    """The rows as signed fixed-point integers ``floor(c * 2^f + 1/2)`` (what the protocol uses)."""
    rows = fxp.ring.to_signed(fxp_encode(fxp, [list(r) for r in table.coeffs]))
    return tuple((int(r[0]), int(r[1]), int(r[2])) for r in rows)


def fit_table(
    name: str, fn: Activation, breakpoints: tuple[float, ...], right: Row = (0.0, 1.0, 0.0)
) -> PiecewiseTable:
    """Fit a table: 0 left of b_0, ``right`` (default x) right of b_{k-1}, least-squares
    quadratics between; a bounded activation such as sigmoid takes ``right`` = (0, 0, 1), and GPT-OSS's gate half its constant.

    Implements spec §6.2.2 `fit_table` (spec/06-models.md#fit_table).
    """
    if len(breakpoints) < 2:
        raise SpecError("fit_table needs at least two breakpoints")
    middle: list[Row] = []
    for a, b in itertools.pairwise(breakpoints):
        # Step 1: the grid: FIT_POINTS evenly spaced points on [a, b], both ends included.
        x = np.linspace(a, b, FIT_POINTS)
        # Step 2: unweighted least squares on the columns (x^2, x, 1).
        design = np.stack([x * x, x, np.ones_like(x)], axis=1)
        coef, *_ = np.linalg.lstsq(design, fn(x), rcond=None)
        # Step 3: round each coefficient to the nearest multiple of 2^-32 (ties to even).
        c2, c1, c0 = (quantise(float(c)) for c in coef)
        middle.append((c2, c1, c0))
    # Step 4: the outer rows.
    return PiecewiseTable(name, breakpoints, ((0.0, 0.0, 0.0), *middle, right))


def quantise(c: float) -> float:
    """c rounded to the nearest multiple of 2^-32 (ties to even), as fitted coefficients are."""
    return float(np.round(c / FIT_QUANTUM) * FIT_QUANTUM)


def gptoss_act(x: ArrayLike) -> Floats:
    """GPT-OSS's gate half ``a(g) = g' sigma(alpha g')``, ``g' = min(g, L)``, at the fitted
    alpha and L: ``silu(alpha g') / alpha``."""
    clamped = np.minimum(np.asarray(x, dtype=np.float64), GPTOSS_LIMIT)
    out: Floats = silu(GPTOSS_ALPHA * clamped) / GPTOSS_ALPHA
    return out


def gptoss_clip_table() -> PiecewiseTable:
    """GPT-OSS's up half ``c(u) = clip(u, -L, L) + 1``: exactly piecewise linear, not fitted."""
    lim = GPTOSS_LIMIT
    return PiecewiseTable(
        "gptoss_clip", (-lim, lim), ((0.0, 0.0, 1.0 - lim), (0.0, 1.0, 1.0), (0.0, 0.0, 1.0 + lim))
    )


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
    """max(x, 0)."""
    arr = np.asarray(x, dtype=np.float64)
    out: Floats = np.maximum(arr, 0.0)
    return out
