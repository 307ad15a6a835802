"""Measure a protocol run's cost in the form of ``secmoe.protocols.cost.Summary``.

Both parties first set up both OT directions (the formulas assume warm sessions); the bytes
the protocol itself sends are the difference of the counts before and after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secmoe.encoding import FixedPoint
from secmoe.errors import Party
from secmoe.net.channel import RecordMode
from secmoe.ot.pool import ot_setup, refill
from secmoe.protocols.cost import Pattern, Summary, ot_setup_pattern, seq, summary
from secmoe.session import PartyContext, RunResult, run_local

Fn = Callable[[PartyContext], Any]


def measured(client: Fn, server: Fn, fxp: FixedPoint | None = None) -> Summary:
    """Bytes per phase and direction of the protocol alone (after the warm-up), and the rounds
    of the whole run, warm-up included."""
    return measured_run(client, server, fxp)[0]


def measured_run(
    client: Fn, server: Fn, fxp: FixedPoint | None = None, record: RecordMode = "none"
) -> tuple[Summary, RunResult[Any, Any]]:
    """``measured``, and the run itself (outputs, transcript), the outputs being those of the
    protocol after the warm-up."""

    def wrap(fn: Fn) -> Fn:
        def party(ctx: PartyContext) -> tuple[dict[str, tuple[int, int]], Any]:
            ot_setup(ctx)
            before = {k: (v.bytes_c2s, v.bytes_s2c) for k, v in ctx.channel.cost.phases.items()}
            return before, fn(ctx)

        return party

    res = run_local(
        wrap(client),
        wrap(server),
        client_seed=bytes(32),
        server_seed=bytes([1]) * 32,
        fxp=fxp,
        record=record,
        # A packed expert product keeps the client waiting for the server's ct x ct products,
        # relinearisations and key switches: minutes on a loaded 2-core machine.
        timeout=900,
    )
    before = res.client[0]
    phases = {}
    for name, ph in res.cost.phases.items():
        c0, s0 = before.get(name, (0, 0))
        delta = (ph.bytes_c2s - c0, ph.bytes_s2c - s0)
        if delta != (0, 0):
            phases[name] = delta
    out = RunResult(res.client[1], res.server[1], res.cost, res.server_cost, res.transcript)
    return Summary(phases, res.cost.rounds), out


def assert_cost(pattern: Pattern, client: Fn, server: Fn, fxp: FixedPoint | None = None) -> None:
    """The run's measured cost equals the pattern's formula, byte for byte and round for round.

    The rounds are compared for the whole run, ``seq(ot_setup_pattern(), pattern)``: the
    parties leave the set-up out of lockstep, which the formula must account for like any other
    preceding step."""
    got = measured(client, server, fxp)
    want = Summary(summary(pattern).bytes, seq(ot_setup_pattern(), pattern).rounds())
    assert got == want, f"measured {got}, formula {want}"


def assert_warm_cost(
    pattern: Pattern, client: Fn, server: Fn, fxp: FixedPoint | None = None
) -> None:
    """On pools pre-filled with exactly the COTs the pattern takes (spec §10.4.1), the run
    sends ``pattern.warm()``: no refill, only the protocol's own messages."""
    need: dict[Party, int] = {"server": pattern.cots("client"), "client": pattern.cots("server")}

    def prefill(fn: Fn) -> Fn:
        def party(ctx: PartyContext) -> Any:
            refill(ctx, need)
            ctx.channel.send("test/sync", b"\x00")  # both parties leave the refill in lockstep
            ctx.channel.recv("test/sync", 1)
            rounds = ctx.channel.cost.rounds
            before = {k: (v.bytes_c2s, v.bytes_s2c) for k, v in ctx.channel.cost.phases.items()}
            out = fn(ctx)
            return before, rounds, out

        return party

    res = run_local(
        prefill(client),
        prefill(server),
        client_seed=bytes(32),
        server_seed=bytes([1]) * 32,
        fxp=fxp,
    )
    before, start, _ = res.client
    phases = {}
    for name, ph in res.cost.phases.items():
        c0, s0 = before.get(name, (0, 0))
        if (ph.bytes_c2s - c0, ph.bytes_s2c - s0) != (0, 0):
            phases[name] = (ph.bytes_c2s - c0, ph.bytes_s2c - s0)
    warm = pattern.warm()
    assert phases == summary(warm).bytes, f"measured {phases}, formula {summary(warm).bytes}"
    assert res.cost.rounds - start == warm.rounds()
