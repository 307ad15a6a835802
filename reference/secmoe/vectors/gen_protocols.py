"""Vector generators for spec §30: products, b2a and mux."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secmoe.encoding import FixedPoint, Ring, fxp_encode
from secmoe.model.tables import GELU
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import millionaire, msb, onehot
from secmoe.protocols.mul import and_bits, mul
from secmoe.protocols.piecewise import piecewise
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_bits, hex_ring, run_case, two_party_case
from secmoe.vectors.registry import Json, Note, case_seed, register

NORMAL = Note("NORMAL", "an ordinary input; the transcript includes the OT-based correlations")


def _src(protocol: str, case_id: str) -> Prg:
    return Prg(case_seed(protocol, case_id), dst("vectors", "inputs"))


def _file(
    protocol: str,
    bits: int,
    body: Callable[[Prg, Ring], tuple[Any, Any, Any, Any, Callable[[Any], str]]],
    n_cases: int = 2,
    frac: int = 0,
) -> list[Json]:
    """Cases whose two inputs are share pairs; ``body`` returns (client fn, server fn, client
    inputs, server inputs, output encoder)."""
    ring = Ring(bits)
    cases = []
    for i in range(n_cases):
        cid = f"{protocol}/l{bits}/{i}"
        fc, fs, ic, is_, enc = body(_src(protocol, cid), ring)
        seeds, res = run_case(fc, fs, protocol, cid, fxp=FixedPoint(ring, frac))
        cases.append(
            two_party_case(
                cid,
                f"case {i} over Z_2^{bits}",
                seeds,
                res,
                inputs={"client": ic, "server": is_},
                outputs={"client": {"z": enc(res.client)}, "server": {"z": enc(res.server)}},
                flags=["Normal"],
            )
        )
    return [{"params": {"ring_bits": bits, "frac_bits": frac}, "tests": cases}]


def _mul_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    xc, xs, yc, ys = (src.next_ring(4, ring.bits) for _ in range(4))

    def fc(ctx: PartyContext) -> Any:
        return mul(ctx, xc, yc)

    def fs(ctx: PartyContext) -> Any:
        return mul(ctx, xs, ys)

    return (
        fc,
        fs,
        {"x": hex_ring(ring, xc), "y": hex_ring(ring, yc)},
        {"x": hex_ring(ring, xs), "y": hex_ring(ring, ys)},
        lambda v: hex_ring(ring, v),
    )


def _and_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    xc, xs, yc, ys = (src.next_bits(12) for _ in range(4))

    def fc(ctx: PartyContext) -> Any:
        return and_bits(ctx, xc, yc)

    def fs(ctx: PartyContext) -> Any:
        return and_bits(ctx, xs, ys)

    return (
        fc,
        fs,
        {"x": hex_bits(xc), "y": hex_bits(yc)},
        {"x": hex_bits(xs), "y": hex_bits(ys)},
        hex_bits,
    )


def _b2a_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    bc, bs = src.next_bits(10), src.next_bits(10)

    def fc(ctx: PartyContext) -> Any:
        return b2a(ctx, bc)

    def fs(ctx: PartyContext) -> Any:
        return b2a(ctx, bs)

    return fc, fs, {"b": hex_bits(bc)}, {"b": hex_bits(bs)}, lambda v: hex_ring(ring, v)


def _mux_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    bc, bs = src.next_bits(6), src.next_bits(6)
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)

    def fc(ctx: PartyContext) -> Any:
        return mux(ctx, bc, xc)

    def fs(ctx: PartyContext) -> Any:
        return mux(ctx, bs, xs)

    return (
        fc,
        fs,
        {"b": hex_bits(bc), "x": hex_ring(ring, xc)},
        {"b": hex_bits(bs), "x": hex_ring(ring, xs)},
        lambda v: hex_ring(ring, v),
    )


def _millionaire_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    u, v = src.next_ring(5, 13), src.next_ring(5, 13)
    v[0] = u[0]  # one tie: [u < v] = 0

    def fc(ctx: PartyContext) -> Any:
        return millionaire(ctx, v, 13)

    def fs(ctx: PartyContext) -> Any:
        return millionaire(ctx, u, 13)

    return (
        fc,
        fs,
        {"v": [int(x) for x in v], "bits": 13},
        {"u": [int(x) for x in u], "bits": 13},
        hex_bits,
    )


def _msb_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    xc, xs = src.next_ring(6, ring.bits), src.next_ring(6, ring.bits)

    def fc(ctx: PartyContext) -> Any:
        return msb(ctx, xc)

    def fs(ctx: PartyContext) -> Any:
        return msb(ctx, xs)

    return fc, fs, {"x": hex_ring(ring, xc)}, {"x": hex_ring(ring, xs)}, hex_bits


def _trunc_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    x = ring.from_int([int(v) - (1 << 13) for v in src.next_below(6, 1 << 14)])
    xc = src.next_ring(6, ring.bits)
    xs = ring.sub(x, xc)

    def fc(ctx: PartyContext) -> Any:
        return trunc(ctx, xc, 4)

    def fs(ctx: PartyContext) -> Any:
        return trunc(ctx, xs, 4)

    return (
        fc,
        fs,
        {"x": hex_ring(ring, xc), "s": 4},
        {"x": hex_ring(ring, xs), "s": 4},
        lambda v: hex_ring(ring, v),
    )


def _piecewise_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    fxp = FixedPoint(ring, 18)
    x = fxp_encode(fxp, [-6.0, -3.0, -1.0 + 2**-18, 0.5, 1.0, 2.75, 3.0 + 2**-18, 7.25])
    xc = src.next_ring(x.size, ring.bits)
    xs = ring.sub(x, xc)

    def fc(ctx: PartyContext) -> Any:
        return piecewise(ctx, GELU, xc)

    def fs(ctx: PartyContext) -> Any:
        return piecewise(ctx, GELU, xs)

    return (
        fc,
        fs,
        {"x": hex_ring(ring, xc), "table": "gelu"},
        {"x": hex_ring(ring, xs), "table": "gelu"},
        lambda v: hex_ring(ring, v),
    )


def _onehot_body(src: Prg, ring: Ring) -> tuple[Any, Any, Any, Any, Callable[[Any], str]]:
    index = ring.from_int([int(v) for v in src.next_below(3, 8)])
    ic = src.next_ring(3, ring.bits)
    is_ = ring.sub(index, ic)

    def fc(ctx: PartyContext) -> Any:
        return onehot(ctx, ic, 8)

    def fs(ctx: PartyContext) -> Any:
        return onehot(ctx, is_, 8)

    return (
        fc,
        fs,
        {"index": hex_ring(ring, ic), "entries": 8},
        {"index": hex_ring(ring, is_), "entries": 8},
        hex_bits,
    )


def _reg(
    name: str,
    section: str,
    header: str,
    body: Callable[[Prg, Ring], tuple[Any, Any, Any, Any, Callable[[Any], str]]],
    bits: int,
    frac: int = 0,
) -> None:
    register(
        f"protocols.{name}",
        f"protocols/{name}.json",
        section=section,
        anchor=f"spec/30-protocols.md#{name}",
        params={"ring_bits": bits},
        mode="real",
        header=[
            header,
            "Inputs are each party's shares; outputs each party's share of the result.",
        ],
        notes={"Normal": NORMAL},
    )(lambda: _file(f"protocols.{name}", bits, body, frac=frac))


_reg(
    "mul",
    "30.1.1",
    "Beaver multiplication, triples from Gilboa COTs in the same run.",
    _mul_body,
    64,
)
_reg("and_bits", "30.1.2", "AND of XOR-shared bits with OT-generated AND triples.", _and_body, 1)
_reg("b2a", "30.2.1", "Boolean to arithmetic shares with one correlated OT per bit.", _b2a_body, 64)
_reg(
    "mux",
    "30.2.2",
    "b * x with XOR-shared b and arithmetic x: one COT per element each way.",
    _mux_body,
    16,
)
_reg(
    "millionaire",
    "30.3.1",
    "[u < v] for the server's u and the client's v (13-bit values, 4 leaves).",
    _millionaire_body,
    64,
)
_reg(
    "msb",
    "30.3.2",
    "The most significant bit of a shared ring element: one millionaire on l - 1 bits.",
    _msb_body,
    16,
)
_reg(
    "trunc",
    "30.4.1",
    "Exact truncation by s = 4 bits of values below 2^13 in magnitude.",
    _trunc_body,
    16,
)
_reg(
    "piecewise",
    "30.5.1",
    "GeLU by Select-Then-Compute at values around the breakpoints (f = 18).",
    _piecewise_body,
    64,
    frac=18,
)
_reg(
    "onehot",
    "30.3.5",
    "One-hot vectors of 3 shared indices among 8 experts (3 x 8 bits, row-major).",
    _onehot_body,
    64,
)
