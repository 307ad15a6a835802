"""Per-direction pools of random correlated OTs, filled by an engine (spec/10-ot.md#pools-and-engines).

A *direction* is named by its extension sender S (the party holding the global correlation
Delta). In each direction S holds rows q_i and Delta, the extension receiver R holds rows t_i and
random bits r_i with t_i = q_i XOR r_i Delta. Every COT gets a *pool number* p, counting up
from 0 in the order COTs enter the pool of that direction; a flavour hashes a COT only with
tweaks (p, w), so no tweak ever repeats in a direction.

Refill rule (spec §10.4.1): a consumer that takes m COTs from a pool holding L < m first
refills it, in channel phase ``offline``, with the shortfall m - L: the "iknp" engine extends by
exactly m - L random-choice OTs (one message ``ot/iknp/u`` from R); an engine producing fixed
batches (Ferret) runs ceil((m - L) / out) iterations. COTs are taken first in, first out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec
from secmoe.errors import Party, SpecError
from secmoe.ot.ferret import (
    FERRET_128,
    FERRET_TOY,
    FerretParams,
    FerretReceiver,
    FerretSender,
    ferret_extend_recv,
    ferret_extend_send,
    ferret_setup,
)
from secmoe.ot.iknp import Rows, iknp_extend_recv, iknp_extend_send, iknp_setup
from secmoe.session import PartyContext

# "ferret": the 128-bit set; "ferret-toy-INSECURE": the toy set, for tests and vectors that say so.
FERRET_SETS: dict[str, FerretParams] = {"ferret": FERRET_128, "ferret-toy-INSECURE": FERRET_TOY}
ENGINES = ("iknp", *FERRET_SETS)
# The default of real runs: Ferret at the 128-bit set. A process may choose another default with
# the environment variable SECMOE_OT_ENGINE (the test suite runs on "iknp", whose just-in-time
# refills keep every cost a closed formula), a block with ``default_engine``, a session with
# ``set_engine``.
DEFAULT_ENGINE = "ferret"
_ENGINE_KEY = "ot.engine"
_default = [os.environ.get("SECMOE_OT_ENGINE", DEFAULT_ENGINE)]


@dataclass
class SendCots:
    """COTs taken as extension sender: rows q (m, 16), Delta (16,), pool numbers (m,)."""

    q: Rows
    delta: NDArray[np.uint8]
    index: NDArray[np.uint64]


@dataclass
class RecvCots:
    """COTs taken as extension receiver: rows t (m, 16), random bits r (m,), pool numbers (m,)."""

    t: Rows
    r: BitVec
    index: NDArray[np.uint64]


@dataclass
class Pool:
    """One direction's pool as one party holds it (``rows`` = q or t; ``bits`` = r, receiver
    only); ``pos`` is the first unused COT, ``numbered`` the COTs ever entered."""

    sender: Party
    rows: Rows = field(default_factory=lambda: np.zeros((0, 16), np.uint8))
    bits: BitVec = field(default_factory=lambda: np.zeros(0, np.uint8))
    delta: NDArray[np.uint8] | None = None
    pos: int = 0
    numbered: int = 0
    taken: int = 0
    refill_bytes: int = 0

    @property
    def level(self) -> int:
        return int(self.rows.shape[0]) - self.pos

    def append(self, rows: Rows, bits: BitVec | None) -> None:
        self.rows = np.concatenate([self.rows[self.pos :], rows])
        if bits is not None:
            self.bits = np.concatenate([self.bits[self.pos :], bits])
        self.pos = 0
        self.numbered += rows.shape[0]


def set_engine(ctx: PartyContext, name: str) -> None:
    """Choose the COT engine of this party's session (both parties must choose the same)."""
    if name not in ENGINES:
        raise SpecError(f"unknown OT engine {name!r}; known: {', '.join(ENGINES)}")
    if any(k.startswith("ot.pool/") for k in ctx.store):
        raise SpecError("the OT engine is fixed once a pool exists")
    ctx.store[_ENGINE_KEY] = name


def engine(ctx: PartyContext) -> str:
    """The session's COT engine: the one set with ``set_engine``, else the process default."""
    name = ctx.store.get(_ENGINE_KEY, _default[0])
    assert isinstance(name, str)
    if name not in ENGINES:
        raise SpecError(f"unknown OT engine {name!r}; known: {', '.join(ENGINES)}")
    return name


@contextmanager
def default_engine(name: str) -> Iterator[None]:
    """Within the block, sessions that did not choose an engine use ``name`` (all threads)."""
    if name not in ENGINES:
        raise SpecError(f"unknown OT engine {name!r}; known: {', '.join(ENGINES)}")
    old = _default[0]
    _default[0] = name
    try:
        yield
    finally:
        _default[0] = old


def _pool(ctx: PartyContext, sender: Party) -> Pool:
    key = f"ot.pool/sender={sender}"
    pool = ctx.store.get(key)
    if pool is None:
        pool = Pool(sender)
        ctx.store[key] = pool
    assert isinstance(pool, Pool)
    return pool


def ot_setup(ctx: PartyContext) -> None:
    """Set up both directions' engines, the client-sender direction first (spec §10.4.1).

    Implements spec §10.4.1 `ot_setup` (spec/10-ot.md#ot_setup).
    """
    name = engine(ctx)
    for sender in ("client", "server"):
        if name == "iknp":
            iknp_setup(ctx, sender)
            continue
        key = f"ot.ferret/sender={sender}"
        if key not in ctx.store:
            ctx.store[key] = ferret_setup(ctx, sender, FERRET_SETS[name])


def _ferret(ctx: PartyContext, sender: Party) -> FerretSender | FerretReceiver:
    st = ctx.store[f"ot.ferret/sender={sender}"]
    assert isinstance(st, FerretSender | FerretReceiver)
    return st


def _iterations(ctx: PartyContext, count: int) -> int:
    """Ferret iterations a refill of ``count`` COTs runs: ceil(count / out)."""
    out = FERRET_SETS[engine(ctx)].out
    return -(-count // out)


def _send_half(ctx: PartyContext, pool: Pool, count: int, as_sender: bool) -> None:
    """This party's sending half of a refill: as R for "iknp" (U), as S for Ferret."""
    before = _sent(ctx)
    if engine(ctx) == "iknp":
        # iknp: random choice bits from the pool's PRG stream, one extension of exactly `count`.
        r = ctx.prg("ot.pool", "r").next_bits(count)
        t, _ = iknp_extend_recv(ctx, r)
        pool.append(t, r)
    else:
        st = _ferret(ctx, pool.sender)
        assert isinstance(st, FerretSender) and as_sender
        for _ in range(_iterations(ctx, count)):
            pool.delta = st.delta
            pool.append(ferret_extend_send(ctx, st), None)
    pool.refill_bytes += _sent(ctx) - before


def _recv_half(ctx: PartyContext, pool: Pool, count: int) -> None:
    """This party's receiving half: as S for "iknp" (keep q and Delta), as R for Ferret."""
    if engine(ctx) == "iknp":
        q, s, _ = iknp_extend_send(ctx, count)
        pool.delta = s
        pool.append(q, None)
        return
    st = _ferret(ctx, pool.sender)
    assert isinstance(st, FerretReceiver)
    for _ in range(_iterations(ctx, count)):
        t, r = ferret_extend_recv(ctx, st)
        pool.append(t, r)


def _sent(ctx: PartyContext) -> int:
    t = ctx.channel.cost.total()
    return t.bytes_c2s if ctx.party == "client" else t.bytes_s2c


def refill(ctx: PartyContext, needs: dict[Party, int]) -> None:
    """Refill each direction (by its sender) whose pool holds fewer than ``needs[sender]``.

    Implements spec §10.4.2 `refill` (spec/10-ot.md#refill). Both parties call it with the
    same ``needs``. Each party first sends, then receives: with "iknp" its U as receiver (the
    direction whose sender is the peer), then the peer's U; with Ferret its iterations as
    sender (whose messages all go from the sender), then the peer's.
    """
    short = {s: m - _pool(ctx, s).level for s, m in needs.items() if m > _pool(ctx, s).level}
    if not short:
        return
    ot_setup(ctx)  # the first refill of a session sets up both directions, in a fixed order
    me, peer = ctx.party, ctx.channel.peer
    with ctx.channel.phase("offline"):
        if engine(ctx) == "iknp":
            if peer in short:
                _send_half(ctx, _pool(ctx, peer), short[peer], as_sender=False)
            if me in short:
                _recv_half(ctx, _pool(ctx, me), short[me])
        else:
            if me in short:
                _send_half(ctx, _pool(ctx, me), short[me], as_sender=True)
            if peer in short:
                _recv_half(ctx, _pool(ctx, peer), short[peer])


def prefill_both(ctx: PartyContext, m: int) -> None:
    """Before a consumer takes ``m`` COTs of each direction in the same round: with a batch
    engine (Ferret) refill both directions first, so that neither party waits as receiver for the
    other; "iknp" keeps its just-in-time refills (spec §10.4.2, the both-directions rule)."""
    if engine(ctx) != "iknp":
        refill(ctx, {ctx.party: m, ctx.channel.peer: m})


def _take(pool: Pool, m: int) -> tuple[Rows, BitVec, NDArray[np.uint64]]:
    if m < 0 or pool.level < m:
        raise SpecError(f"the pool holds {pool.level} COTs, {m} asked")
    start = pool.pos
    first = pool.numbered - pool.rows.shape[0] + start
    rows = pool.rows[start : start + m]
    bits = pool.bits[start : start + m] if pool.bits.size else np.zeros(0, np.uint8)
    pool.pos += m
    pool.taken += m
    return rows, bits, np.arange(first, first + m, dtype=np.uint64)


def take_send(ctx: PartyContext, m: int) -> SendCots:
    """m COTs of the direction whose sender is this party (refilled first if short).

    Implements spec §10.4.3 `take_send` (spec/10-ot.md#take_send).
    """
    refill(ctx, {ctx.party: m})
    return _send_cots(ctx, m)


def take_recv(ctx: PartyContext, m: int) -> RecvCots:
    """m COTs of the direction whose sender is the peer (refilled first if short).

    Implements spec §10.4.4 `take_recv` (spec/10-ot.md#take_recv).
    """
    refill(ctx, {ctx.channel.peer: m})
    return _recv_cots(ctx, m)


def take_both(ctx: PartyContext, as_sender: int, as_receiver: int) -> tuple[SendCots, RecvCots]:
    """COTs of both directions at once, both refilled in the same rounds if short.

    Implements spec §10.4.5 `take_both` (spec/10-ot.md#take_both). Both parties call it with the
    numbers as each sees them (my ``as_sender`` is the peer's ``as_receiver``).
    """
    refill(ctx, {ctx.party: as_sender, ctx.channel.peer: as_receiver})
    return _send_cots(ctx, as_sender), _recv_cots(ctx, as_receiver)


def _send_cots(ctx: PartyContext, m: int) -> SendCots:
    pool = _pool(ctx, ctx.party)
    rows, _, index = _take(pool, m)
    delta = pool.delta if pool.delta is not None else np.zeros(16, np.uint8)
    return SendCots(rows, delta, index)


def _recv_cots(ctx: PartyContext, m: int) -> RecvCots:
    rows, bits, index = _take(_pool(ctx, ctx.channel.peer), m)
    return RecvCots(rows, bits, index)


def pool_taken(ctx: PartyContext) -> dict[Party, int]:
    """COTs taken so far from each direction (by its sender)."""
    return {s: _pool(ctx, s).taken for s in ("client", "server")}


def pool_stats(ctx: PartyContext) -> dict[str, int]:
    """COTs taken (both directions) and the bytes this party sent in refills, for benchmarks."""
    pools = [p for k, p in ctx.store.items() if k.startswith("ot.pool/")]
    return {
        "taken": sum(p.taken for p in pools if isinstance(p, Pool)),
        "refill_bytes": sum(p.refill_bytes for p in pools if isinstance(p, Pool)),
    }
