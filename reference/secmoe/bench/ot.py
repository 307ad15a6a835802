"""Benchmark ``ot``: the default COT engine (Ferret, spec §11.10) and the IKNP figures beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.errors import SpecError
from secmoe.ot.ferret import (
    FERRET_128,
    FERRET_TOY,
    FerretReceiver,
    FerretSender,
    ferret_extend_recv,
    ferret_extend_send,
    ferret_setup,
)
from secmoe.ot.iknp import iknp_extend_recv, iknp_extend_send, iknp_setup
from secmoe.ot.tccr import tccr_hash, tweaks
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local

Steps = dict[str, tuple[float, float, Any]]
ITERATIONS = 2


def _timed(steps: Steps, name: str, fn: Callable[[], Any]) -> None:
    t0 = time.perf_counter()
    out = fn()
    steps[name] = (t0, time.perf_counter(), out)


def _span(c: Steps, s: Steps, name: str) -> float:
    """From the first party's start to the last party's end."""
    return max(c[name][1], s[name][1]) - min(c[name][0], s[name][0])


def _span_ready(c: Steps, s: Steps, name: str) -> float:
    """From the moment both parties are ready (S may finish its set-up first and run ahead,
    as it needs nothing from R) to the last party's end."""
    return max(c[name][1], s[name][1]) - max(c[name][0], s[name][0])


def _payload(ctx: PartyContext) -> int:
    return ctx.channel.cost.total().bytes


def _ferret(opts: BenchOptions) -> dict[str, object]:
    """One direction (server = S): set-up on a fresh context, then timed iterations."""
    params = FERRET_TOY if opts.quick else FERRET_128

    def server(ctx: PartyContext) -> Steps:
        steps: Steps = {}
        _timed(steps, "setup", lambda: ferret_setup(ctx, "server", params))
        st = steps["setup"][2]
        assert isinstance(st, FerretSender)
        steps["setup_bytes"] = (0.0, 0.0, _payload(ctx))
        _timed(steps, "iter", lambda: [ferret_extend_send(ctx, st) for _ in range(ITERATIONS)])
        steps["iter_bytes"] = (0.0, 0.0, _payload(ctx) - steps["setup_bytes"][2])
        steps["delta"] = (0.0, 0.0, st.delta)
        return steps

    def client(ctx: PartyContext) -> Steps:
        steps: Steps = {}
        _timed(steps, "setup", lambda: ferret_setup(ctx, "server", params))
        st = steps["setup"][2]
        assert isinstance(st, FerretReceiver)
        _timed(steps, "iter", lambda: [ferret_extend_recv(ctx, st) for _ in range(ITERATIONS)])
        return steps

    opts.say(f"bench ot: ferret {params.name}, set-up and {ITERATIONS} iterations")
    res = run_local(
        client, server, client_seed=bytes([1]) * 32, server_seed=bytes([2]) * 32, timeout=900
    )
    c, s = res.client, res.server
    delta = s["delta"][2]
    total = 0
    for q, (t, r) in zip(s["iter"][2], c["iter"][2], strict=True):
        if not np.array_equal(t, q ^ (r[:, None] * delta)):
            raise SpecError("Ferret COTs are wrong")
        total += len(q)
    return {
        "engine": "ferret",
        "cot_per_s": round(total / _span_ready(c, s, "iter")),
        "bytes_per_cot": round(s["iter_bytes"][2] / total, 4),
        "setup_bytes": s["setup_bytes"][2],
    }


def _iknp(opts: BenchOptions) -> dict[str, object]:
    """IKNP (spec §10.3) at n = 2^20: random OTs (extension + hash) and raw COTs (extension)."""
    n = 1 << (14 if opts.quick else 20)
    choices = Prg(bytes(32), dst("bench", "ot")).next_bits(n)

    def client(ctx: PartyContext) -> Steps:
        steps: Steps = {}
        _timed(steps, "base", lambda: iknp_setup(ctx, "server"))
        before = ctx.channel.cost.total().wire_bytes

        def rot() -> Any:
            t, index = iknp_extend_recv(ctx, choices)
            return tccr_hash(tweaks(index), t)

        _timed(steps, "rot", rot)
        steps["rot_bytes"] = (0.0, 0.0, ctx.channel.cost.total().wire_bytes - before)
        _timed(steps, "cot", lambda: iknp_extend_recv(ctx, choices)[0])
        return steps

    def server(ctx: PartyContext) -> Steps:
        steps: Steps = {}
        _timed(steps, "base", lambda: iknp_setup(ctx, "server"))

        def rot() -> Any:
            q, s, index = iknp_extend_send(ctx, n)
            tw = tweaks(index)
            return tccr_hash(tw, q), tccr_hash(tw, q ^ s)

        _timed(steps, "rot", rot)
        _timed(steps, "cot", lambda: iknp_extend_send(ctx, n))
        return steps

    opts.say(f"bench ot: iknp, {n} OTs")
    res = run_local(
        client, server, client_seed=bytes([1]) * 32, server_seed=bytes([2]) * 32, timeout=600
    )
    c, s = res.client, res.server
    m0, m1 = s["rot"][2]
    if not np.array_equal(c["rot"][2], np.where(choices[:, None] == 1, m1, m0)):
        raise SpecError("random OTs are wrong")
    q, s_row, _ = s["cot"][2]
    if not np.array_equal(c["cot"][2], q ^ (choices[:, None] * s_row)):
        raise SpecError("IKNP COTs are wrong")
    return {
        "n_ots": n,
        "rot_per_s": round(n / _span(c, s, "rot")),
        "cot_per_s": round(n / _span(c, s, "cot")),
        "bytes_per_ot": round(c["rot_bytes"][2] / n, 4),
        "base_ot_s": round(_span(c, s, "base"), 4),
    }


@register_bench(
    "ot",
    "COT engines: Ferret (default) COTs per second, bytes per COT, set-up bytes; IKNP figures",
    ("engine", "cot_per_s", "bytes_per_cot", "setup_bytes", "iknp"),
)
def bench_ot(opts: BenchOptions) -> dict[str, object]:
    return {**_ferret(opts), "iknp": _iknp(opts)}
