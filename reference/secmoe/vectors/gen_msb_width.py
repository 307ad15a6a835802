"""Vector generator for spec §30.3.2 with a width below l: the MSB in Z_2^m of a shared value,
the comparison ring of ``piecewise`` (m = 33 at l = 64, spec §30.5.1).

The cases reuse the two-party case builder of ``gen_protocols``; the file is registered by hand
because its name (``msb_width``) is not the anchor of the algorithm (``msb``).
"""

from __future__ import annotations

from secmoe.encoding import Ring
from secmoe.protocols.compare import msb
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_bits, hex_ring
from secmoe.vectors.gen_protocols import NORMAL, Inputs, _file
from secmoe.vectors.registry import register

BITS, WIDTH = 64, 33


def _msb_width(src: Prg, ring: Ring) -> Inputs:
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)
    return Inputs(
        (xc, WIDTH),
        (xs, WIDTH),
        {"x": hex_ring(ring, xc), "width": WIDTH},
        {"x": hex_ring(ring, xs), "width": WIDTH},
        hex_bits,
        {"n": xc.size},
    )


register(
    "protocols.msb_width",
    "protocols/msb_width.json",
    section="30.3.2",
    anchor="spec/30-protocols.md#msb",
    params={"ring_bits": BITS, "width": WIDTH},
    mode="real",
    header=[
        "Bit m - 1 of a shared ring element (its MSB in Z_2^m, m = 33 < l = 64): one millionaire",
        "on m - 1 = 32 bits after each party reduces its share mod 2^m.",
        "Inputs are each party's shares; outputs each party's share of the result.",
    ],
    notes={"Normal": NORMAL},
)(lambda: _file("protocols.msb_width", msb, _msb_width, BITS, 0))
