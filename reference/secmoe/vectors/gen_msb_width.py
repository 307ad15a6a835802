"""Vector table entry of spec §30.3.2 with a width below l: the MSB in Z_2^m of a shared value,
the comparison ring of ``piecewise`` (m = 33 at l = 64, spec §30.5.1).

A table entry like those of ``gen_protocols``, whose name (``msb_width``) is not the anchor of
the algorithm (``msb``).
"""

from __future__ import annotations

from secmoe.encoding import Ring
from secmoe.protocols.compare import msb
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import Shares, arg_x_and, out_bits, shared_file

BITS, WIDTH = 64, 33


def _msb_width(src: Prg, ring: Ring) -> Shares:
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)
    return Shares(
        {"x": hex_ring(ring, xc), "width": WIDTH},
        {"x": hex_ring(ring, xs), "width": WIDTH},
        {"n": xc.size},
    )


shared_file(
    "msb_width",
    "30.3.2",
    [
        "Bit m - 1 of a shared ring element (its MSB in Z_2^m, m = 33 < l = 64): one millionaire",
        "on m - 1 = 32 bits after each party reduces its share mod 2^m.",
    ],
    msb,
    _msb_width,
    BITS,
    args=arg_x_and("width"),
    out=out_bits,
    algorithm="msb",
    params={"width": WIDTH},
)
