"""Vector table of spec §33: exp, reciprocal, softmax, rsqrt, layernorm, rmsnorm.

Table entries (``shared_file``) like those of ``gen_protocols``: both parties call the same
function on their own shares (the server also on its weights), and each party's output ``z`` is
its share of the result. All at l = 64, f = 18.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.encoding import FixedPoint, Ring, RingVec, fxp_encode
from secmoe.model.norm import NORM_BOUND
from secmoe.protocols.norm import layernorm, rmsnorm, rsqrt
from secmoe.protocols.softmax import exp, reciprocal, softmax
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import (
    MakeShares,
    Shares,
    arg_x,
    arg_x_and,
    out_ring,
    param,
    ring_of,
    shared_file,
)
from secmoe.vectors.registry import Json

BITS, FRAC = 64, 18
SPEC = "33-functions.md"
UNIT = 2.0**-FRAC


def _uniform(src: Prg, count: int, lo: float, hi: float) -> list[float]:
    """count values on the 2^-f grid of [lo, hi)."""
    steps = int((hi - lo) / UNIT)
    return [lo + int(v) * UNIT for v in src.next_below(count, steps)]


def _split(src: Prg, ring: Ring, values: Any) -> tuple[RingVec, RingVec]:
    x = fxp_encode(FixedPoint(ring, FRAC), values)
    xc = src.next_ring(x.size, ring.bits).reshape(x.shape)
    return xc, ring.sub(x, xc)


def _shape(x: RingVec) -> Json:
    """The group parameters of a shared input: ``n`` values, or ``rows`` of ``n``."""
    if x.ndim == 2:
        return {"rows": x.shape[0], "n": x.shape[1]}
    return {"n": x.size}


def _norm_args(*weights: str) -> Callable[[Ring, Json, Json], tuple[Any, ...]]:
    """x (T x d), the server's ``weights`` (None for the client, who has none), then eps."""

    def args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
        x = ring_of(ring, mine["x"], (param(params, "T"), param(params, "d")))
        ws = [ring_of(ring, mine[w]) if w in mine else None for w in weights]
        return (x, *ws, float(params["eps"]))

    return args


def _one(values: Callable[[Prg], Any], *extra: Any, names: tuple[str, ...] = ()) -> MakeShares:
    """Inputs for a function of one shared argument and public parameters ``extra``."""

    def make(src: Prg, ring: Ring) -> Shares:
        xc, xs = _split(src, ring, values(src))
        public = dict(zip(names, extra, strict=True))
        return Shares(
            {"x": hex_ring(ring, xc), **public}, {"x": hex_ring(ring, xs), **public}, _shape(xc)
        )

    return make


def _norm(with_beta: bool, eps: float) -> MakeShares:
    """Two tokens of d = 3 (one almost constant), the server's gamma (and beta); ``eps`` is passed
    to the protocol and recorded with the shape."""

    def make(src: Prg, ring: Ring) -> Shares:
        fxp = FixedPoint(ring, FRAC)
        x = np.array([_uniform(src, 3, -4.0, 4.0), [1.0, 1.0 + 2 * UNIT, 1.0 - UNIT]])
        xc, xs = _split(src, ring, x)
        gamma = fxp_encode(fxp, _uniform(src, 3, -2.0, 2.0))
        beta = fxp_encode(fxp, _uniform(src, 3, -1.0, 1.0))
        server_json = {"x": hex_ring(ring, xs), "gamma": hex_ring(ring, gamma)}
        if with_beta:
            server_json["beta"] = hex_ring(ring, beta)
        return Shares(
            {"x": hex_ring(ring, xc)},
            server_json,
            {"T": x.shape[0], "d": x.shape[1], "eps": repr(eps)},
        )

    return make


shared_file(
    "exp",
    "33.1.1",
    ["exp_fixed of shared z <= 0, around the clip point -14 and far below it (f = 18)."],
    exp,
    _one(lambda src: [0.0, -14.0, -14.0 - UNIT, -40.0, *_uniform(src, 2, -14.0, 0.0)]),
    BITS,
    FRAC,
    spec=SPEC,
    args=arg_x,
    out=out_ring,
)
shared_file(
    "reciprocal",
    "33.2.1",
    ["reciprocal_fixed of shared s in [1, 8] with the public bound 8, at segment edges (f = 18)."],
    reciprocal,
    _one(lambda src: [1.0, 2.0, 2.0 + UNIT, 8.0, *_uniform(src, 2, 1.0, 8.0)], 8, names=("bound",)),
    BITS,
    FRAC,
    spec=SPEC,
    args=arg_x_and("bound"),
    out=out_ring,
)
shared_file(
    "softmax",
    "33.3.1",
    ["softmax_fixed of 2 rows of 4 shared logits; row 0 has a tied maximum (f = 18)."],
    softmax,
    _one(lambda src: np.array([[3.0, -1.5, 3.0, -20.0], _uniform(src, 4, -8.0, 8.0)])),
    BITS,
    FRAC,
    spec=SPEC,
    args=arg_x,
    out=out_ring,
)
shared_file(
    "rsqrt",
    "33.4.2",
    ["rsqrt_fixed of shared v in [2^-18, 2^16] with the public bound 2^16 (f = 18)."],
    rsqrt,
    _one(
        lambda src: [UNIT, 1.0, 65536.0, *_uniform(src, 3, 0.0, 100.0)],
        NORM_BOUND,
        names=("bound",),
    ),
    BITS,
    FRAC,
    spec=SPEC,
    args=arg_x_and("bound"),
    out=out_ring,
)
shared_file(
    "layernorm",
    "33.5.2",
    [
        "layernorm_fixed of 2 shared tokens of d = 3 (eps = 1e-5), the second almost constant;",
        "gamma and beta are the server's (encoded), absent from the client's inputs.",
    ],
    layernorm,
    _norm(True, 1e-5),
    BITS,
    FRAC,
    spec=SPEC,
    args=_norm_args("gamma", "beta"),
    out=out_ring,
)
shared_file(
    "rmsnorm",
    "33.5.4",
    [
        "rmsnorm_fixed of 2 shared tokens of d = 3 (eps = 1e-6, encoded as one unit); gamma is",
        "the server's (encoded), absent from the client's inputs.",
    ],
    rmsnorm,
    _norm(False, 1e-6),
    BITS,
    FRAC,
    spec=SPEC,
    args=_norm_args("gamma"),
    out=out_ring,
)
