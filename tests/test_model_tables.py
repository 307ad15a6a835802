"""Piecewise activation tables: fitting, accuracy, fixed-point evaluation (spec/06-models.md §6.2)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from secmoe.encoding import FixedPoint, Ring
from secmoe.model.fixed import sigmoid_fixed
from secmoe.model.piecewise import (
    fit_table,
    gelu,
    piecewise_fixed,
    piecewise_float,
    quantise_rows,
    segment_index,
    silu,
)
from secmoe.model.plain import sigmoid
from secmoe.model.tables import GELU, QUANTISED_F18, RELU, SIGMOID, SILU, TABLES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import fit_piecewise  # noqa: E402

SPEC = (ROOT / "spec" / "06-models.md").read_text(encoding="utf-8")


def test_tables_py_equals_a_fresh_fit() -> None:
    # main(["--check"]) runs check(): a fresh fit rendered and compared with the committed file.
    assert fit_piecewise.main(["--check"]) == 0


def test_gelu_table_meets_the_papers_accuracy() -> None:
    x = np.linspace(-5, 3, 400001)
    err = np.abs(piecewise_float(GELU, x) - gelu(x))
    assert err.max() <= 1.2e-2 and err.mean() <= 1.7e-3
    fxp = FixedPoint()
    errf = np.abs(fxp.decode(piecewise_fixed(GELU, fxp, fxp.encode(x))) - gelu(x))
    assert errf.max() <= 1.2e-2 and errf.mean() <= 1.7e-3


def test_silu_and_relu_tables() -> None:
    xs = np.linspace(-8, 8, 100001)
    assert np.abs(piecewise_float(SILU, xs) - silu(xs)).max() < 1.2e-2
    assert np.array_equal(piecewise_float(RELU, xs), np.maximum(xs, 0))


def test_sigmoid_table_accuracy_and_range() -> None:
    # The figures of spec §6.2 (Tables): a third of SiLU's error; values within [0, 1].
    x = np.linspace(-8, 8, 200001)
    err = np.abs(piecewise_float(SIGMOID, x) - sigmoid(x))
    assert err.max() < 3.5e-3 and err.mean() < 1e-3
    fxp = FixedPoint()
    got = fxp.decode(sigmoid_fixed(fxp, fxp.encode(x)))
    assert np.abs(got - sigmoid(x)).max() < 3.5e-3
    assert got.min() >= 0.0 and got.max() <= 1.0
    far = fxp.encode([-1000.0, -5.75, 5.75 + 2.0**-18, 1000.0])
    assert [int(v) for v in fxp.ring.to_signed(sigmoid_fixed(fxp, far))] == [0, 0, 1 << 18, 1 << 18]


def test_sigmoid_rows_mirror_through_one_half() -> None:
    # sigma(x) = 1 - sigma(-x): mirrored segments have opposite c2, equal c1, c0 summing to 1.
    rows = SIGMOID.coeffs
    for j, m in ((1, 4), (2, 3)):
        assert abs(rows[j][0] + rows[m][0]) <= 2.0**-32
        assert abs(rows[j][1] - rows[m][1]) <= 2.0**-32
        assert abs(rows[j][2] + rows[m][2] - 1.0) <= 2.0**-31
    assert rows[0] == (0.0, 0.0, 0.0) and rows[-1] == (0.0, 0.0, 1.0)


def test_fit_reproduces_the_committed_gelu_rows() -> None:
    fresh = fit_table("gelu", gelu, GELU.breakpoints)
    assert fresh == GELU
    for row in GELU.coeffs:
        for c in row:
            assert c * 2.0**32 == round(c * 2.0**32)  # multiples of 2^-32


def test_odd_symmetry_shows_in_the_rows() -> None:
    # act(x) = x + act(-x): a segment and its mirror image through 0 share c2 and c0, and
    # their c1 sum to 1 (up to the 2^-32 rounding).
    pairs = 0
    for table in (GELU, SILU):
        ends = (-np.inf, *table.breakpoints, np.inf)
        spans = [(ends[j], ends[j + 1]) for j in range(len(ends) - 1)]
        for j, (lo, hi) in enumerate(spans):
            if lo < 0 and (-hi, -lo) in spans[j + 1 :] and np.isfinite(lo):
                a, b = table.coeffs[j], table.coeffs[spans.index((-hi, -lo))]
                assert abs(a[0] - b[0]) <= 2.0**-32 and abs(a[2] - b[2]) <= 2.0**-32
                assert abs(a[1] + b[1] - 1.0) <= 2.0**-31
                pairs += 1
    assert (
        pairs == 3
    )  # GeLU: [-3, -1] / [1, 3]; SiLU: [-7.5, -1.5] / [1.5, 7.5], [-1.5, 0] / [0, 1.5]


def test_quantised_rows_match_encoding_and_spec() -> None:
    fxp = FixedPoint()
    for name, table in TABLES.items():
        assert quantise_rows(table, fxp) == QUANTISED_F18[name]
    # The spec's quantised GeLU row list equals the committed one.
    line = next(ln for ln in SPEC.splitlines() if ln.startswith("| GeLU | `(0, 0, 0)`"))
    rows = [tuple(int(v) for v in r.split(", ")) for r in re.findall(r"`\(([-0-9, ]+)\)`", line)]
    assert tuple(rows) == QUANTISED_F18["gelu"]
    # And its float rows.
    line = next(ln for ln in SPEC.splitlines() if ln.startswith("| GeLU | -5, -3"))
    frows = [
        tuple(float(v) for v in r.split(", ")) for r in re.findall(r"`\(([-0-9., e]+)\)`", line)
    ]
    assert tuple(frows) == GELU.coeffs
    for name, label in (("silu", "SiLU"), ("sigmoid", "sigmoid")):
        line = next(ln for ln in SPEC.splitlines() if ln.startswith(f"| {label} | `(0, 0, 0)`"))
        found = re.findall(r"`\(([-0-9, ]+)\)`", line)
        assert tuple(tuple(int(v) for v in r.split(", ")) for r in found) == QUANTISED_F18[name]


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(st.floats(min_value=-20, max_value=20, allow_nan=False), min_size=1, max_size=30)
)
def test_piecewise_fixed_tracks_float(xs: list[float]) -> None:
    fxp = FixedPoint()
    x = fxp.decode(fxp.encode(xs))
    for table in (GELU, SILU, RELU, SIGMOID):
        got = fxp.decode(piecewise_fixed(table, fxp, fxp.encode(x)))
        assert np.array_equal(segment_index(table, x), segment_index(table, x))
        # Three truncations and the coefficient rounding: well under 1e-3 on |x| <= 20.
        assert np.abs(got - piecewise_float(table, x)).max() < 1e-3


@settings(max_examples=30, deadline=None)
@given(
    # |x| < 2^7, the range MoEConfig's headroom rule guarantees for products (x * x here).
    v=st.lists(st.integers(min_value=-(2**22), max_value=2**22), min_size=1, max_size=20),
    bits=st.sampled_from([40, 64]),
)
def test_identity_and_zero_rows_are_exact(v: list[int], bits: int) -> None:
    fxp = FixedPoint(Ring(bits), 16)
    x = fxp.ring.from_int(v)
    y = fxp.ring.to_signed(piecewise_fixed(RELU, fxp, x))
    assert [int(a) for a in y] == [max(a, 0) for a in v]


def test_segments_are_right_closed_at_the_encoded_breakpoints() -> None:
    fxp = FixedPoint()
    ulp = 2.0**-fxp.frac_bits
    for lo, b in enumerate(GELU.breakpoints):
        # x == b lies in segment lo (b_{lo-1} < x <= b_lo); one ulp above lies in lo + 1.
        for x, row in ((b, GELU.coeffs[lo]), (b + ulp, GELU.coeffs[lo + 1])):
            want = row[0] * x * x + row[1] * x + row[2]
            got = fxp.decode(piecewise_fixed(GELU, fxp, fxp.encode([x])))[0]
            assert abs(got - want) < 1e-4
    relu_at_zero = piecewise_fixed(RELU, fxp, fxp.encode([0.0, ulp, -ulp]))
    assert [int(v) for v in fxp.ring.to_signed(relu_at_zero)] == [0, 1, 0]
