"""Benchmark ``nonlinear``: bytes, rounds and throughput of the protocols on shares (spec §30-34).

Each entry is two two-party runs over the in-process channel. A first run (engine "iknp",
just-in-time refills) counts the COTs the entry takes in each direction; the measured run sets
up both OT directions (``ot_setup``) and fills the pools with exactly those COTs (*warm pools*,
spec §10.4: the base OTs and the COT generation are not counted), then the protocol runs once
on ``elems`` elements. Bytes are the payload bytes of both directions, split by phase; rounds
are the run's round count after the set-up; ``cots_per_elem`` is what the engine supplies per
element and ``amortised_bytes_per_elem`` adds it at Ferret's amortised bytes per COT (the
default engine, spec §11.8); ``elems_per_s`` is elements over the wall time of the protocol
(the first party's start to the last party's end). Every entry reconstructs its output and
compares it with its fixed-point oracle; a wrong output raises.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.encoding import FixedPoint, RingVec
from secmoe.errors import Party as ErrParty
from secmoe.errors import SpecError
from secmoe.model.bumblebee import gelu_bumblebee_fixed
from secmoe.model.fixed import exp_fixed, softmax_fixed
from secmoe.model.norm import layernorm_fixed
from secmoe.model.piecewise import gelu, piecewise_fixed
from secmoe.model.plain import topk_order
from secmoe.model.tables import GELU, SILU
from secmoe.ot.ferret import FERRET_128, ferret_extend_cost
from secmoe.ot.pool import DEFAULT_ENGINE, ot_setup, pool_taken, refill, set_engine
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import lt_public
from secmoe.protocols.gelu_bumblebee import gelu_bumblebee
from secmoe.protocols.mul import mul
from secmoe.protocols.norm import layernorm
from secmoe.protocols.piecewise import piecewise
from secmoe.protocols.softmax import exp, softmax
from secmoe.protocols.topk import TopK, lt, topk
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local

FXP = FixedPoint()
# Ferret's amortised bytes per COT at the default set (spec §11.8): one iteration's messages
# over the COTs it returns; what a warm pool's COTs cost the default engine.
FERRET_BPC = ferret_extend_cost(FERRET_128, "client").bytes_from("client") / FERRET_128.out
RING = FXP.ring
Entry = dict[str, object]
Party = Callable[[PartyContext], Any]
Check = Callable[[Any, Any], None]
ENTRIES = (
    "cmp",
    "cmp_public",
    "b2a",
    "mux",
    "trunc",
    "mul_trunc",
    "exp",
    "topk_8",
    "topk_128",
    "gelu",
    "gelu_bumblebee",
    "silu",
    "softmax",
    "layernorm",
)


@dataclass(frozen=True)
class Case:
    """One entry: what an element is, how many, each party's call, and the output check (which
    raises on a wrong result)."""

    unit: str
    elems: int
    client: Party
    server: Party
    check: Check


def _src(name: str) -> Prg:
    return Prg(bytes(32), dst("bench.nonlinear", name))


def _split(src: Prg, x: RingVec) -> tuple[RingVec, RingVec]:
    xc = src.next_ring(x.size).reshape(x.shape)
    return xc, RING.sub(x, xc)


def _uniform(src: Prg, n: int, lo: float, hi: float) -> RingVec:
    """n fixed-point values uniform on the grid of [lo, hi) with step 2^-f."""
    steps = int((hi - lo) * FXP.scale)
    return RING.from_int(src.next_below(n, steps).astype(np.int64) + int(lo * FXP.scale))


def _expect(name: str, got: NDArray[Any], want: NDArray[Any]) -> None:
    if not np.array_equal(got, want):
        raise SpecError(f"bench nonlinear: {name} output differs from its oracle")


def _run(case: Case, need: dict[ErrParty, int] | None) -> tuple[Any, Any, Any, Any]:
    """One two-party run of the case after ``ot_setup`` and, with ``need``, a pool refill of
    that many COTs per direction (both outside the measured part)."""

    def wrap(fn: Party) -> Party:
        def party(ctx: PartyContext) -> Any:
            # The warm part is the same on any engine; "iknp" fills the pools fastest here.
            set_engine(ctx, "iknp")
            ot_setup(ctx)
            if need is not None:
                refill(ctx, need)
            # One exchange so that both parties leave the set-up in lockstep: the entry's first
            # message then starts a new round (its bytes are before the measured part).
            ctx.channel.send("bench/sync", b"\x00")
            ctx.channel.recv("bench/sync", 1)
            before = {k: v.bytes_c2s + v.bytes_s2c for k, v in ctx.channel.cost.phases.items()}
            start = ctx.channel.cost.rounds
            taken = pool_taken(ctx)
            t0 = time.perf_counter()
            out = fn(ctx)
            t1 = time.perf_counter()
            after = pool_taken(ctx)
            used = {k: after[k] - taken[k] for k in after}
            return out, before, start, t0, t1, used

        return party

    res = run_local(
        wrap(case.client),
        wrap(case.server),
        client_seed=bytes([1]) * 32,
        server_seed=bytes([2]) * 32,
        fxp=FXP,
        timeout=600,
    )
    return res.client, res.server, res.cost, res


def measure(case: Case) -> Entry:
    """Run a case on warm pools and return its entry (raises if the output is wrong).

    A first run with just-in-time refills counts the COTs the case takes in each direction;
    the measured run starts with pools holding exactly those (*warm*), so its bytes and rounds
    are the protocol's own. ``cots_per_elem`` is what the engine must supply per element.
    """
    first_c, _, _, _ = _run(case, None)
    need = first_c[5]
    (out_c, before, start, t0c, t1c, used), (out_s, _, _, t0s, t1s, _), cost, _ = _run(case, need)
    if used != need:
        raise SpecError(f"bench nonlinear: the warm run took {used} COTs, the first {need}")
    case.check(out_c, out_s)
    delta = {k: v.bytes_c2s + v.bytes_s2c - before.get(k, 0) for k, v in cost.phases.items()}
    online, offline = delta.pop("online", 0), delta.pop("offline", 0)
    if any(delta.values()):
        raise SpecError(f"bench nonlinear: bytes outside the online / offline phases: {delta}")
    n = case.elems
    return {
        "unit": case.unit,
        "elems": n,
        "bytes_per_elem": (online + offline) / n,
        "online_bytes_per_elem": online / n,
        "offline_bytes_per_elem": offline / n,
        "rounds": cost.rounds - start,
        "cots_per_elem": sum(need.values()) / n,
        "amortised_bytes_per_elem": round(
            (online + offline) / n + sum(need.values()) / n * FERRET_BPC, 3
        ),
        "elems_per_s": round(n / (max(t1c, t1s) - min(t0c, t0s)), 1),
    }


# --- the cases -----------------------------------------------------------------------------------


def _case_cmp(n: int) -> Case:
    src = _src("cmp")
    x, y = _uniform(src, n, -64.0, 64.0), _uniform(src, n, -64.0, 64.0)
    y[: n // 4] = x[: n // 4]  # ties: [x < y] = 0
    (xc, xs), (yc, ys) = _split(src, x), _split(src, y)
    want = (RING.to_signed(x) < RING.to_signed(y)).astype(np.uint8)
    return Case(
        "one scalar: [x < y] for shared x and y (topk.lt)",
        n,
        lambda ctx: lt(ctx, xc, yc),
        lambda ctx: lt(ctx, xs, ys),
        lambda c, s: _expect("cmp", c ^ s, want),
    )


def _case_cmp_public(n: int) -> Case:
    src = _src("cmp_public")
    x = _uniform(src, n, -64.0, 64.0)
    xc, xs = _split(src, x)
    c = FXP.encode(np.full(n, 0.5))
    want = (RING.to_signed(x) < RING.to_signed(c)).astype(np.uint8)
    return Case(
        "one scalar: [x < c] for shared x and a public c (lt_public)",
        n,
        lambda ctx: lt_public(ctx, xc, c),
        lambda ctx: lt_public(ctx, xs, c),
        lambda oc, os_: _expect("cmp_public", oc ^ os_, want),
    )


def _case_b2a(n: int) -> Case:
    src = _src("b2a")
    b, bc = src.next_bits(n), src.next_bits(n)
    return Case(
        "one bit: XOR shares to arithmetic shares in Z_2^64",
        n,
        lambda ctx: b2a(ctx, bc),
        lambda ctx: b2a(ctx, b ^ bc),
        lambda c, s: _expect("b2a", RING.add(c, s), b.astype(np.uint64)),
    )


def _case_mux(n: int) -> Case:
    src = _src("mux")
    b, bc = src.next_bits(n), src.next_bits(n)
    x = src.next_ring(n)
    xc, xs = _split(src, x)
    want = np.where(b == 1, x, np.uint64(0))
    return Case(
        "one scalar: b x for a shared bit b and a shared x",
        n,
        lambda ctx: mux(ctx, bc, xc),
        lambda ctx: mux(ctx, b ^ bc, xs),
        lambda c, s: _expect("mux", RING.add(c, s), want),
    )


def _case_trunc(n: int) -> Case:
    src = _src("trunc")
    x = RING.from_int(src.next_below(n, 1 << 50).astype(np.int64) - (1 << 49))
    xc, xs = _split(src, x)
    return Case(
        "one scalar: floor(x / 2^f), f = 18 (a fixed-point product's truncation)",
        n,
        lambda ctx: trunc(ctx, xc),
        lambda ctx: trunc(ctx, xs),
        lambda c, s: _expect("trunc", RING.add(c, s), FXP.trunc(x)),
    )


def _case_mul_trunc(n: int) -> Case:
    src = _src("mul_trunc")
    x, y = _uniform(src, n, -64.0, 64.0), _uniform(src, n, -64.0, 64.0)
    (xc, xs), (yc, ys) = _split(src, x), _split(src, y)
    return Case(
        "one scalar: trunc(x y) for shared fixed-point x and y (mul, then trunc by f)",
        n,
        lambda ctx: trunc(ctx, mul(ctx, xc, yc)),
        lambda ctx: trunc(ctx, mul(ctx, xs, ys)),
        lambda c, s: _expect("mul_trunc", RING.add(c, s), FXP.mul(x, y)),
    )


def _case_exp(n: int) -> Case:
    src = _src("exp")
    z = _uniform(src, n, -16.0, 0.0)
    zc, zs = _split(src, z)
    return Case(
        "one scalar: exp(z) for shared z in [-16, 0] (softmax's exp)",
        n,
        lambda ctx: exp(ctx, zc),
        lambda ctx: exp(ctx, zs),
        lambda c, s: _expect("exp", RING.add(c, s), exp_fixed(FXP, z)),
    )


def _case_topk(rows: int, width: int) -> Case:
    src = _src(f"topk_{width}")
    x = _uniform(src, rows * width, -16.0, 16.0).reshape(rows, width)
    x[:, -1] = x[:, 0]  # a tie in every row: the lower index wins
    xc, xs = _split(src, x)
    order = topk_order(RING.to_signed(x), 1)
    want_v = np.take_along_axis(x, order, axis=1)

    def check(c: TopK, s: TopK) -> None:
        _expect(f"topk_{width}", RING.add(c.values, s.values), want_v)
        _expect(f"topk_{width}", RING.add(c.indices, s.indices), RING.from_int(order))

    return Case(
        f"one row of E = {width} router logits: its top-1 value and index (topk, k = 1)",
        rows,
        lambda ctx: topk(ctx, xc, 1),
        lambda ctx: topk(ctx, xs, 1),
        check,
    )


def _case_silu(n: int) -> Case:
    src = _src("silu")
    x = _uniform(src, n, -8.0, 8.0)
    xc, xs = _split(src, x)
    return Case(
        "one scalar: SiLU by Select-Then-Compute (piecewise, SiLU table), x in [-8, 8]",
        n,
        lambda ctx: piecewise(ctx, SILU, xc),
        lambda ctx: piecewise(ctx, SILU, xs),
        lambda c, s: _expect("silu", RING.add(c, s), piecewise_fixed(SILU, FXP, x)),
    )


def _case_softmax(rows: int, width: int) -> Case:
    src = _src("softmax")
    z = _uniform(src, rows * width, -8.0, 8.0).reshape(rows, width)
    zc, zs = _split(src, z)
    return Case(
        f"one row of n = {width} logits in [-8, 8] (softmax over the row)",
        rows,
        lambda ctx: softmax(ctx, zc),
        lambda ctx: softmax(ctx, zs),
        lambda c, s: _expect("softmax", RING.add(c, s), softmax_fixed(FXP, z)),
    )


def _case_layernorm(tokens: int, d: int) -> Case:
    src = _src("layernorm")
    x = _uniform(src, tokens * d, -4.0, 4.0).reshape(tokens, d)
    gamma, beta = _uniform(src, d, 0.5, 1.5), _uniform(src, d, -0.5, 0.5)
    xc, xs = _split(src, x)
    return Case(
        f"one token of d = {d} (layernorm; gamma, beta the server's)",
        tokens,
        lambda ctx: layernorm(ctx, xc, None, None),
        lambda ctx: layernorm(ctx, xs, gamma, beta),
        lambda c, s: _expect("layernorm", RING.add(c, s), layernorm_fixed(FXP, x, gamma, beta)),
    )


def gelu_entries(n: int) -> tuple[dict[str, Entry], dict[str, float]]:
    """Ours (piecewise, GeLU table) and BumbleBee's GeLU on the same n inputs in [-5, 3], and
    our secure GeLU's max / mean absolute error against exact GeLU on them."""
    src = _src("gelu")
    x = _uniform(src, n, -5.0, 3.0)
    xc, xs = _split(src, x)
    errors: dict[str, float] = {}

    def ours(c: RingVec, s: RingVec) -> None:
        y = RING.add(c, s)
        _expect("gelu", y, piecewise_fixed(GELU, FXP, x))
        err = np.abs(FXP.decode(y) - gelu(FXP.decode(x)))
        errors.update(gelu_max_abs_err=float(err.max()), gelu_mean_abs_err=float(err.mean()))

    unit = "one scalar: GeLU of x in [-5, 3]"
    entries = {
        "gelu": measure(
            Case(
                f"{unit} by Select-Then-Compute (piecewise, GeLU table)",
                n,
                lambda ctx: piecewise(ctx, GELU, xc),
                lambda ctx: piecewise(ctx, GELU, xs),
                ours,
            )
        ),
        "gelu_bumblebee": measure(
            Case(
                f"{unit} by BumbleBee's compute-then-select (gelu_bumblebee)",
                n,
                lambda ctx: gelu_bumblebee(ctx, xc),
                lambda ctx: gelu_bumblebee(ctx, xs),
                lambda c, s: _expect(
                    "gelu_bumblebee", RING.add(c, s), gelu_bumblebee_fixed(FXP, x)
                ),
            )
        ),
    }
    return entries, {k: round(v, 6) for k, v in errors.items()}


def bytes_ratio(entries: dict[str, Entry]) -> float:
    """Our GeLU's total bytes per element over BumbleBee's, rounded to 4 places."""
    ours, theirs = entries["gelu"]["bytes_per_elem"], entries["gelu_bumblebee"]["bytes_per_elem"]
    assert isinstance(ours, float) and isinstance(theirs, float)
    return round(ours / theirs, 4)


@register_bench(
    "nonlinear",
    "non-linear protocols on shares: bytes / element (online, offline), rounds, elements / s; "
    "our GeLU against BumbleBee's",
    (*ENTRIES, "gelu_bytes_ratio", "gelu_max_abs_err", "gelu_mean_abs_err"),
)
def bench_nonlinear(opts: BenchOptions) -> dict[str, object]:
    n = 64 if opts.quick else 4096
    topk8_rows, topk128_rows = (8, 1) if opts.quick else (512, 32)
    sm_rows, sm_n = (2, 16) if opts.quick else (32, 128)
    ln_tokens, ln_d = (2, 16) if opts.quick else (8, 768)
    cases: dict[str, Callable[[], Case]] = {
        "cmp": lambda: _case_cmp(n),
        "cmp_public": lambda: _case_cmp_public(n),
        "b2a": lambda: _case_b2a(n),
        "mux": lambda: _case_mux(n),
        "trunc": lambda: _case_trunc(n),
        "mul_trunc": lambda: _case_mul_trunc(n),
        "exp": lambda: _case_exp(n),
        "topk_8": lambda: _case_topk(topk8_rows, 8),
        "topk_128": lambda: _case_topk(topk128_rows, 128),
        "silu": lambda: _case_silu(n),
        "softmax": lambda: _case_softmax(sm_rows, sm_n),
        "layernorm": lambda: _case_layernorm(ln_tokens, ln_d),
    }
    out: dict[str, object] = {}
    for name, make in cases.items():
        opts.say(f"bench nonlinear: {name}")
        out[name] = measure(make())
    opts.say("bench nonlinear: gelu, gelu_bumblebee")
    gelu_out, errors = gelu_entries(n)
    out.update(gelu_out)
    out["gelu_bytes_ratio"] = bytes_ratio(gelu_out)
    out.update(errors)
    out["setup"] = (
        "warm pools: ot_setup ran in both directions and the pools were filled with exactly the "
        "COTs each entry takes (a first run counted them) before it; base OTs and COT generation "
        "are not counted in bytes_per_elem / rounds; cots_per_elem is what the engine supplies, "
        f"amortised_bytes_per_elem adds them at the default engine's ({DEFAULT_ENGINE}, "
        f"{FERRET_128.name}) {FERRET_BPC:.4f} bytes per COT"
    )
    out["params"] = {"ring_bits": RING.bits, "frac_bits": FXP.frac_bits}
    out["cores"] = os.cpu_count() or 1
    return {k: out[k] for k in (*ENTRIES, *[k for k in out if k not in ENTRIES])}
