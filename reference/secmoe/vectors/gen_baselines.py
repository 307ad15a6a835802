"""Vector table of spec §34: the baselines (BumbleBee's compute-then-select GeLU).

A table entry (``shared_file``) like those of ``gen_protocols``: both parties call the protocol
on their own shares, and each party's output ``z`` is its share of the result.
"""

from __future__ import annotations

from secmoe.encoding import FixedPoint, Ring, fxp_encode
from secmoe.protocols.gelu_bumblebee import gelu_bumblebee
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import Shares, arg_x, out_ring, shared_file

ULP = 2.0**-18
# Both sides of each breakpoint (-5 and -1.97 belong to the piece on their right, 3 to its left),
# one value inside each piece and one far outside [-5, 3] on each side.
VALUES = [-40.0, -5.0 - ULP, -5.0, -3.0, -1.97 - ULP, -1.97, 0.5, 3.0, 3.0 + ULP, 40.0]


def _gelu(src: Prg, ring: Ring) -> Shares:
    x = fxp_encode(FixedPoint(ring, 18), VALUES)
    xc = src.next_ring(x.size, ring.bits)
    xs = ring.sub(x, xc)
    return Shares({"x": hex_ring(ring, xc)}, {"x": hex_ring(ring, xs)}, {"n": xc.size})


shared_file(
    "gelu_bumblebee",
    "34.1.2",
    "BumbleBee's GeLU by compute-then-select (f = 18) around -5, -1.97, 3 and far outside.",
    gelu_bumblebee,
    _gelu,
    64,
    frac=18,
    spec="34-baselines.md",
    args=arg_x,
    out=out_ring,
)
