"""Benchmark ``ot``: 2^20 random and correlated OTs, base OTs, Beaver triples (issue keys)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.encoding import Ring
from secmoe.errors import SpecError
from secmoe.ot.flavours import cot_recv, cot_send, rot_recv, rot_send
from secmoe.ot.iknp import ot_setup
from secmoe.ot.triples import beaver_triples
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local

Steps = dict[str, tuple[float, float, Any]]


def _timed(steps: Steps, name: str, fn: Callable[[], Any]) -> None:
    t0 = time.perf_counter()
    out = fn()
    steps[name] = (t0, time.perf_counter(), out)


@register_bench(
    "ot",
    "IKNP OT extension: random / correlated OTs per second, bytes per OT, base OTs, triples",
    ("rot_per_s", "cot_per_s", "bytes_per_ot", "base_ot_s", "triples_per_s", "cores", "n_ots"),
)
def bench_ot(opts: BenchOptions) -> dict[str, object]:
    n = 1 << (14 if opts.quick else 20)
    n_triples = 1 << (8 if opts.quick else 13)
    ring = Ring(64)
    src = Prg(bytes(32), dst("bench", "ot"))
    choices = src.next_bits(n)
    delta = src.next_ring(n)

    def client(ctx: PartyContext) -> Steps:
        steps: Steps = {}
        _timed(steps, "base", lambda: ot_setup(ctx))
        before = ctx.channel.cost.total().wire_bytes
        _timed(steps, "rot", lambda: rot_recv(ctx, choices))
        steps["rot_bytes"] = (0.0, 0.0, ctx.channel.cost.total().wire_bytes - before)
        _timed(steps, "cot", lambda: cot_recv(ctx, choices, 64))
        _timed(steps, "triples", lambda: beaver_triples(ctx, n_triples, 64))
        return steps

    def server(ctx: PartyContext) -> Steps:
        steps: Steps = {}
        _timed(steps, "base", lambda: ot_setup(ctx))
        _timed(steps, "rot", lambda: rot_send(ctx, n))
        _timed(steps, "cot", lambda: cot_send(ctx, delta, 64))
        _timed(steps, "triples", lambda: beaver_triples(ctx, n_triples, 64))
        return steps

    opts.say(f"bench ot: {n} OTs, {n_triples} triples")
    res = run_local(
        client, server, client_seed=bytes([1]) * 32, server_seed=bytes([2]) * 32, timeout=600
    )
    c, s = res.client, res.server

    def span(name: str) -> float:
        return max(c[name][1], s[name][1]) - min(c[name][0], s[name][0])

    m0, m1 = s["rot"][2]
    if not np.array_equal(c["rot"][2], np.where(choices[:, None] == 1, m1, m0)):
        raise SpecError("random OTs are wrong")
    if not np.array_equal(
        c["cot"][2], ring.add(s["cot"][2], ring.mul(choices.astype(np.uint64), delta))
    ):
        raise SpecError("correlated OTs are wrong")
    (a0, b0, c0), (a1, b1, c1) = c["triples"][2], s["triples"][2]
    if not np.array_equal(ring.add(c0, c1), ring.mul(ring.add(a0, a1), ring.add(b0, b1))):
        raise SpecError("Beaver triples are wrong")
    wire_per_ot = c["rot_bytes"][2] / n
    return {
        "n_ots": n,
        "rot_per_s": round(n / span("rot")),
        "cot_per_s": round(n / span("cot")),
        "bytes_per_ot": round(wire_per_ot, 4),
        "bytes_per_ot_theory": 16,
        "framing_overhead": round(wire_per_ot / 16 - 1, 6),
        "cot_bytes_per_ot": 16 + 8,
        "base_ot_s": round(span("base"), 4),
        "n_triples": n_triples,
        "triples_per_s": round(n_triples / span("triples")),
        "cores": os.cpu_count() or 1,
        "correct": True,
    }
