"""Vector generators for spec §30: products, b2a, mux, comparison, one-hot, truncation, piecewise.

Each file holds two cases; in each, both parties call the same protocol function on their own
arguments (``Inputs``), and each party's output is its share of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from secmoe.encoding import FixedPoint, Ring, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.tables import GELU
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import millionaire, msb, onehot
from secmoe.protocols.mul import and_bits, mul
from secmoe.protocols.piecewise import piecewise
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_bits, hex_ring, run_case, two_party_case
from secmoe.vectors.registry import Json, Note, inputs_prg, register

NORMAL = Note("NORMAL", "an ordinary input; the transcript includes the OT-based correlations")


@dataclass(frozen=True)
class Inputs:
    """One case: each party's positional arguments after ``ctx``, their JSON, the output encoder
    and the shapes of the inputs (the group's ``params``, spec §5.1)."""

    client_args: tuple[Any, ...]
    server_args: tuple[Any, ...]
    client_json: Json
    server_json: Json
    encode: Callable[[Any], str]
    shapes: Json = field(default_factory=dict)


Protocol = Callable[..., Any]
MakeInputs = Callable[[Prg, Ring], Inputs]


def _file(protocol: str, call: Protocol, make: MakeInputs, bits: int, frac: int) -> list[Json]:
    ring = Ring(bits)
    cases = []
    shapes: list[Json] = []
    for i in range(2):
        cid = f"{protocol}/l{bits}/{i}"
        inp = make(inputs_prg(protocol, cid), ring)
        shapes.append(inp.shapes)

        def client(ctx: PartyContext, inp: Inputs = inp) -> Any:
            return call(ctx, *inp.client_args)

        def server(ctx: PartyContext, inp: Inputs = inp) -> Any:
            return call(ctx, *inp.server_args)

        seeds, res = run_case(client, server, protocol, cid, fxp=FixedPoint(ring, frac))
        cases.append(
            two_party_case(
                cid,
                f"case {i} over Z_2^{bits}",
                seeds,
                res,
                inputs={"client": inp.client_json, "server": inp.server_json},
                outputs={
                    "client": {"z": inp.encode(res.client)},
                    "server": {"z": inp.encode(res.server)},
                },
                flags=["Normal"],
            )
        )
    if any(s != shapes[0] for s in shapes):
        raise SpecError(f"{protocol}: the cases of one group must share their shapes")
    return [{"params": {"ring_bits": bits, "frac_bits": frac, **shapes[0]}, "tests": cases}]


def _reg(
    name: str,
    section: str,
    header: str | list[str],
    call: Protocol,
    make: MakeInputs,
    bits: int,
    frac: int = 0,
    spec: str = "30-protocols.md",
) -> None:
    register(
        f"protocols.{name}",
        f"protocols/{name}.json",
        section=section,
        anchor=f"spec/{spec}#{name}",
        params={"ring_bits": bits},
        mode="real",
        header=[
            *([header] if isinstance(header, str) else header),
            "Inputs are each party's shares; outputs each party's share of the result.",
        ],
        notes={"Normal": NORMAL},
    )(lambda: _file(f"protocols.{name}", call, make, bits, frac))


def _mul(src: Prg, ring: Ring) -> Inputs:
    xc, xs, yc, ys = (src.next_ring(4, ring.bits) for _ in range(4))
    return Inputs(
        (xc, yc),
        (xs, ys),
        {"x": hex_ring(ring, xc), "y": hex_ring(ring, yc)},
        {"x": hex_ring(ring, xs), "y": hex_ring(ring, ys)},
        lambda v: hex_ring(ring, v),
        {"n": xc.size},
    )


def _and(src: Prg, ring: Ring) -> Inputs:
    xc, xs, yc, ys = (src.next_bits(12) for _ in range(4))
    return Inputs(
        (xc, yc),
        (xs, ys),
        {"x": hex_bits(xc), "y": hex_bits(yc)},
        {"x": hex_bits(xs), "y": hex_bits(ys)},
        hex_bits,
        {"n": xc.size},
    )


def _b2a(src: Prg, ring: Ring) -> Inputs:
    bc, bs = src.next_bits(10), src.next_bits(10)
    return Inputs(
        (bc,),
        (bs,),
        {"b": hex_bits(bc)},
        {"b": hex_bits(bs)},
        lambda v: hex_ring(ring, v),
        {"n": bc.size},
    )


def _mux(src: Prg, ring: Ring) -> Inputs:
    bc, bs = src.next_bits(6), src.next_bits(6)
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)
    return Inputs(
        (bc, xc),
        (bs, xs),
        {"b": hex_bits(bc), "x": hex_ring(ring, xc)},
        {"b": hex_bits(bs), "x": hex_ring(ring, xs)},
        lambda v: hex_ring(ring, v),
        {"n": bc.size},
    )


def _millionaire(src: Prg, ring: Ring) -> Inputs:
    u, v = src.next_ring(5, 13), src.next_ring(5, 13)
    v[0] = u[0]  # one tie: [u < v] = 0
    return Inputs(
        (v, 13),
        (u, 13),
        {"v": [int(x) for x in v], "bits": 13},
        {"u": [int(x) for x in u], "bits": 13},
        hex_bits,
        {"n": u.size},
    )


def _msb(src: Prg, ring: Ring) -> Inputs:
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)
    return Inputs(
        (xc,), (xs,), {"x": hex_ring(ring, xc)}, {"x": hex_ring(ring, xs)}, hex_bits, {"n": xc.size}
    )


def _onehot(src: Prg, ring: Ring) -> Inputs:
    index = ring.from_int([int(v) for v in src.next_below(3, 8)])
    ic = src.next_ring(3, ring.bits)
    is_ = ring.sub(index, ic)
    return Inputs(
        (ic, 8),
        (is_, 8),
        {"index": hex_ring(ring, ic), "entries": 8},
        {"index": hex_ring(ring, is_), "entries": 8},
        hex_bits,
        {"n": ic.size},
    )


def _trunc(src: Prg, ring: Ring) -> Inputs:
    x = ring.from_int([int(v) - (1 << 13) for v in src.next_below(6, 1 << 14)])
    xc = src.next_ring(6, ring.bits)
    xs = ring.sub(x, xc)
    return Inputs(
        (xc, 4),
        (xs, 4),
        {"x": hex_ring(ring, xc), "s": 4},
        {"x": hex_ring(ring, xs), "s": 4},
        lambda v: hex_ring(ring, v),
        {"n": xc.size},
    )


def _piecewise(src: Prg, ring: Ring) -> Inputs:
    fxp = FixedPoint(ring, 18)
    x = fxp_encode(fxp, [-6.0, -3.0, -1.0 + 2**-18, 0.5, 1.0, 2.75, 3.0 + 2**-18, 7.25])
    xc = src.next_ring(x.size, ring.bits)
    xs = ring.sub(x, xc)
    return Inputs(
        (GELU, xc),
        (GELU, xs),
        {"x": hex_ring(ring, xc), "table": "gelu"},
        {"x": hex_ring(ring, xs), "table": "gelu"},
        lambda v: hex_ring(ring, v),
        {"n": xc.size},
    )


_reg(
    "mul",
    "30.1.1",
    "Beaver multiplication, triples from Gilboa COTs in the same run.",
    mul,
    _mul,
    64,
)
_reg(
    "and_bits", "30.1.2", "AND of XOR-shared bits with OT-generated AND triples.", and_bits, _and, 1
)
_reg("b2a", "30.2.1", "Boolean to arithmetic shares with one correlated OT per bit.", b2a, _b2a, 64)
_reg(
    "mux",
    "30.2.2",
    "b * x with XOR-shared b and arithmetic x: one COT per element each way.",
    mux,
    _mux,
    16,
)
_reg(
    "millionaire",
    "30.3.1",
    "[u < v] for the server's u and the client's v (13-bit values, 4 leaves).",
    millionaire,
    _millionaire,
    64,
)
_reg(
    "msb",
    "30.3.2",
    "The most significant bit of a shared ring element: one millionaire on l - 1 bits.",
    msb,
    _msb,
    16,
)
_reg(
    "onehot",
    "30.3.5",
    "One-hot vectors of 3 shared indices among 8 experts (3 x 8 bits, row-major).",
    onehot,
    _onehot,
    64,
)
_reg(
    "trunc",
    "30.4.1",
    "Exact truncation by s = 4 bits of values below 2^13 in magnitude.",
    trunc,
    _trunc,
    16,
)
_reg(
    "piecewise",
    "30.5.1",
    "GeLU by Select-Then-Compute at values around the breakpoints (f = 18).",
    piecewise,
    _piecewise,
    64,
    frac=18,
)
