"""Accuracy of BumbleBee's GeLU pieces next to SecMoE's table (spec/34-baselines.md#accuracy).

The baseline uses BumbleBee's published coefficients (``secmoe.model.bumblebee``); nothing of it
is fitted here. For comparison only, the tool also refits the same shape by least squares on
BumbleBee's own segments (a cubic on [-5, -1.97], the terms 1, x, x^2, x^4, x^6 on [-1.97, 3],
each on 100001 evenly spaced points, coefficients rounded to multiples of 2^-32, the method of
spec §6.2.2), to show how much of the baseline's error comes from its coefficients.

Usage:
    python tools/fit_bumblebee.py            # print the figures (the rows of the spec's tables)
    python tools/fit_bumblebee.py --check    # exit 1 if spec/34-baselines.md lacks any of them
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from secmoe.encoding import FixedPoint
from secmoe.model.bumblebee import (
    BREAKPOINTS,
    encoded_pieces,
    gelu_bumblebee_fixed,
    gelu_bumblebee_float,
)
from secmoe.model.piecewise import FIT_POINTS, FIT_QUANTUM, gelu, piecewise_fixed, piecewise_float
from secmoe.model.tables import GELU

SPEC = Path(__file__).resolve().parent.parent / "spec" / "34-baselines.md"
REPORT_POINTS = 200001  # evenly spaced points of [-5, 3], as for SecMoE's table (spec §6.2)
P6_TERMS = (0, 1, 2, 4, 6)


def _errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    err = np.abs(got - want)
    return float(err.max()), float(err.mean())


def refit() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Least-squares P3 and P6 of BumbleBee's shape on its segments (informative only)."""
    out = []
    for (a, b), terms in (
        ((BREAKPOINTS[0], BREAKPOINTS[1]), (0, 1, 2, 3)),
        ((BREAKPOINTS[1], BREAKPOINTS[2]), P6_TERMS),
    ):
        x = np.linspace(a, b, FIT_POINTS)
        design = np.stack([x**k for k in terms], axis=1)
        coef, *_ = np.linalg.lstsq(design, gelu(x), rcond=None)
        full = [0.0] * (max(terms) + 1)
        for k, c in zip(terms, coef, strict=True):
            full[k] = float(np.round(c / FIT_QUANTUM) * FIT_QUANTUM)
        out.append(tuple(full))
    return out[0], out[1]


def _refit_float(p3: tuple[float, ...], p6: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    v3 = sum(c * x**k for k, c in enumerate(p3))
    v6 = sum(c * x**k for k, c in enumerate(p6))
    lo, mid, hi = BREAKPOINTS
    out: np.ndarray = np.where(x < lo, 0.0, np.where(x < mid, v3, np.where(x <= hi, v6, x)))
    return out


def figures() -> list[str]:
    """The spec's table rows: accuracy on [-5, 3], then the quantised coefficients at f = 18."""
    fxp = FixedPoint()
    x = np.linspace(-5.0, 3.0, REPORT_POINTS)
    exact = gelu(x)
    enc = fxp.encode(x)
    rows = []
    for name, flt, fixed in (
        (
            "SecMoE `piecewise` (GeLU table, §6.2)",
            piecewise_float(GELU, x),
            fxp.decode(piecewise_fixed(GELU, fxp, enc)),
        ),
        (
            "BumbleBee `gelu_bumblebee` (published pieces)",
            gelu_bumblebee_float(x),
            fxp.decode(gelu_bumblebee_fixed(fxp, enc)),
        ),
    ):
        fm, fa = _errors(flt, exact)
        xm, xa = _errors(fixed, exact)
        rows.append(f"| {name} | {fm:.6f} / {fa:.6f} | {xm:.6f} / {xa:.6f} |")
    r3, r6 = refit()
    fm, fa = _errors(_refit_float(r3, r6, x), exact)
    rows.append(
        f"| least-squares refit of BumbleBee's shape (informative) | {fm:.6f} / {fa:.6f} | - |"
    )
    a, b = (fxp.ring.to_signed(v) for v in encoded_pieces(fxp))
    rows.append(f"| P3 | `{', '.join(str(int(v)) for v in a)}` |")
    rows.append(f"| P6 | `{', '.join(str(int(v)) for v in b)}` |")
    rows.append(f"| refit P3 | `{', '.join(repr(c) for c in r3)}` |")
    rows.append(f"| refit P6 | `{', '.join(repr(c) for c in r6)}` |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    rows = figures()
    if args.check:
        text = SPEC.read_text(encoding="utf-8")
        missing = [r for r in rows if r not in text]
        for r in missing:
            print(f"{SPEC.name} lacks: {r}", file=sys.stderr)
        return 1 if missing else 0
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
