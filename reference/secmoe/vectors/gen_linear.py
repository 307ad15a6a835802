"""Vector table of spec §31: matrix products on shares under the client's HE key.

Tiny shapes at ``he8192``: two tokens, three input columns, two outputs. Payloads over 1024
bytes (every ciphertext) appear in the transcripts as SHA-256 hashes.
"""

from __future__ import annotations

from typing import Any

from secmoe.encoding import FixedPoint, Ring, RingVec, fxp_encode
from secmoe.protocols.linear import matmul, matmul_ss
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import Shares, out_ring, param, ring_of, shared_file
from secmoe.vectors.registry import Json


def _fixed(src: Prg, ring: Ring, shape: tuple[int, int], scale: float) -> RingVec:
    """Fixed-point values (f = 18) uniform in [-scale, scale) on a 2^-10 grid."""
    n = shape[0] * shape[1]
    raw = [(int(v) - (1 << 10)) * scale / (1 << 10) for v in src.next_below(n, 1 << 11)]
    return fxp_encode(FixedPoint(ring, 18), raw).reshape(shape)


def _split(src: Prg, ring: Ring, v: RingVec) -> tuple[RingVec, RingVec]:
    mine = src.next_ring(v.size, ring.bits).reshape(v.shape)
    return mine, ring.sub(v, mine)


def _matmul_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    """X (T x d_in), the server's W (d_out x d_in; None for the client), d_out."""
    t, d_in, d_out = param(params, "T"), param(params, "d_in"), param(params, "d_out")
    w = ring_of(ring, mine["w"], (d_out, d_in)) if "w" in mine else None
    return ring_of(ring, mine["x"], (t, d_in)), w, d_out


def _matmul_ss_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    a, b, c = param(params, "a"), param(params, "b"), param(params, "c")
    return ring_of(ring, mine["x"], (a, b)), ring_of(ring, mine["y"], (b, c))


def _matmul(src: Prg, ring: Ring) -> Shares:
    x, w = _fixed(src, ring, (2, 3), 2.0), _fixed(src, ring, (2, 3), 1.0)
    xc, xs = _split(src, ring, x)
    return Shares(
        {"x": hex_ring(ring, xc.reshape(-1)), "shape": [2, 3], "d_out": 2},
        {"x": hex_ring(ring, xs.reshape(-1)), "w": hex_ring(ring, w.reshape(-1)), "d_out": 2},
        {"T": x.shape[0], "d_in": x.shape[1], "d_out": w.shape[0]},
    )


def _matmul_ss(src: Prg, ring: Ring) -> Shares:
    x, y = _fixed(src, ring, (2, 3), 2.0), _fixed(src, ring, (3, 2), 2.0)
    (xc, xs), (yc, ys) = _split(src, ring, x), _split(src, ring, y)
    return Shares(
        {"x": hex_ring(ring, xc.reshape(-1)), "y": hex_ring(ring, yc.reshape(-1))},
        {"x": hex_ring(ring, xs.reshape(-1)), "y": hex_ring(ring, ys.reshape(-1))},
        {"a": x.shape[0], "b": x.shape[1], "c": y.shape[1]},
    )


shared_file(
    "matmul",
    "31.1.1",
    "trunc(X W^T): X (2 x 3) shared, W (2 x 3) the server's, he8192, row-major hex.",
    matmul,
    _matmul,
    64,
    frac=18,
    spec="31-linear.md",
    args=_matmul_args,
    out=out_ring,
)
shared_file(
    "matmul_ss",
    "31.2.1",
    "trunc(X Y): X (2 x 3) and Y (3 x 2) both shared, he8192, row-major hex.",
    matmul_ss,
    _matmul_ss,
    64,
    frac=18,
    spec="31-linear.md",
    args=_matmul_ss_args,
    out=out_ring,
)
