"""A party's context and the runners that execute a two-party protocol (spec/04-messages.md#runner).

A protocol is written as two functions, ``client(ctx, ...)`` and ``server(ctx, ...)``, each
doing its own sends and receives on ``ctx.channel``. :func:`run_local` runs them in two threads
over an in-process pair; :func:`serve_tcp` and :func:`connect_tcp` run one party each, in
separate processes, over TCP.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.net.channel import DEFAULT_TIMEOUT, Channel, CostRecord, RecordMode, TranscriptEntry
from secmoe.net.transport import Transport, local_pair, tcp_accept, tcp_connect, tcp_listen
from secmoe.randomness import Prg, instance_prg, lp

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


@dataclass
class PartyContext:
    """What a party's protocol code runs with: its channel, its seed and the parameters.

    Randomness: ``ctx.prg(protocol, usage)`` returns the PRG of the next instance of that
    (protocol, usage) pair, ``Prg(seed, dst(protocol, usage), binder_u64(counter))`` with the
    counter starting at 0 (spec §2.2.2).
    """

    party: Party
    channel: Channel
    seed: bytes
    fxp: FixedPoint = field(default_factory=FixedPoint)
    progress: Callable[[str], None] | None = None
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    # Long-lived per-session state of subprotocols (e.g. OT-extension sessions), by name.
    store: dict[str, object] = field(default_factory=dict)

    @property
    def ring(self) -> Ring:
        return self.fxp.ring

    def prg(self, protocol: str, usage: str) -> Prg:
        """The PRG of the next instance of ``(protocol, usage)`` (see ``instance_prg``)."""
        key = (protocol, usage)
        counter = self.counters.get(key, 0)
        self.counters[key] = counter + 1
        return instance_prg(self.seed, protocol, usage, counter)

    def say(self, message: str) -> None:
        """Report progress on long runs (to stderr in the CLI; silent by default)."""
        if self.progress is not None:
            self.progress(f"[{self.party}] {message}")


@dataclass
class RunResult(Generic[A, B]):
    """Both parties' outputs and what the run cost, as each party counted it."""

    client: A
    server: B
    cost: CostRecord
    server_cost: CostRecord
    transcript: list[TranscriptEntry]


def _run_party(fn: Callable[[PartyContext], T], ctx: PartyContext, box: dict[str, object]) -> None:
    try:
        box["out"] = fn(ctx)
    except BaseException as exc:
        box["err"] = exc
    finally:
        ctx.channel.close()


def run_local(
    client: Callable[[PartyContext], A],
    server: Callable[[PartyContext], B],
    *,
    client_seed: bytes,
    server_seed: bytes,
    fxp: FixedPoint | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    record: RecordMode = "none",
    progress: Callable[[str], None] | None = None,
) -> RunResult[A, B]:
    """Run both parties in threads over an in-process channel pair.

    Implements spec §4.4.1 `run_local` (spec/04-messages.md#run_local).

    If a party raises, its channel is closed so the other party fails fast with
    ``peer_closed``; the first party's own error is re-raised here.
    """
    fxp = fxp or FixedPoint()
    tc, ts = local_pair()
    cctx = PartyContext(
        "client", Channel(tc, "client", timeout=timeout, record=record), client_seed, fxp, progress
    )
    sctx = PartyContext(
        "server", Channel(ts, "server", timeout=timeout, record=record), server_seed, fxp, progress
    )
    cbox: dict[str, object] = {}
    sbox: dict[str, object] = {}
    th = threading.Thread(
        target=_run_party, args=(server, sctx, sbox), name="secmoe-server", daemon=True
    )
    th.start()
    _run_party(client, cctx, cbox)
    th.join()
    errors = [b["err"] for b in (cbox, sbox) if "err" in b]
    if errors:
        # The root cause is the error that is not a consequence of the other party stopping.
        roots = [
            e for e in errors if not (isinstance(e, ProtocolError) and e.kind == "peer_closed")
        ]
        err = roots[0] if roots else errors[0]
        assert isinstance(err, BaseException)
        raise err
    return RunResult(
        client=cbox["out"],  # type: ignore[arg-type]
        server=sbox["out"],  # type: ignore[arg-type]
        cost=cctx.channel.cost,
        server_cost=sctx.channel.cost,
        transcript=cctx.channel.transcript,
    )


# --- TCP: one party per process ---------------------------------------------------------------


def hello_payload(protocol: str, fxp: FixedPoint) -> bytes:
    """``lp(b"secmoe/v1") || lp(protocol) || u8 l || u8 f`` (spec §4.4.2)."""
    return (
        lp(b"secmoe/v1") + lp(protocol.encode()) + struct.pack("<BB", fxp.ring.bits, fxp.frac_bits)
    )


def handshake(ch: Channel, protocol: str, fxp: FixedPoint) -> None:
    """Exchange and compare hello messages in phase ``handshake``.

    Implements spec §4.4.2 `handshake` (spec/04-messages.md#handshake).
    """
    mine = hello_payload(protocol, fxp)
    with ch.phase("handshake"):
        if ch.party == "client":
            ch.send("session/hello", mine)
            theirs = ch.recv("session/hello")
        else:
            theirs = ch.recv("session/hello")
            ch.send("session/hello", mine)
    if theirs != mine:
        raise ProtocolError(
            "handshake",
            ch.party,
            "session/hello",
            f"peer runs another protocol or parameters (ours {mine.hex()}, theirs {theirs.hex()})",
        )


HANDSHAKE_TIMEOUT = 10.0  # seconds per frame of the handshake (and of session/done)
DONE_LABEL = "session/done"


@dataclass(frozen=True)
class SessionLimits:
    """What one TCP session may take from its peer (spec §4.4.3 `serve`).

    ``timeout``: seconds per frame (one deadline per frame); ``handshake_timeout``: the same for
    the frames of phases ``handshake`` and ``close``; ``budget``: wire bytes accepted from the
    peer in the whole session (None: unlimited).
    """

    timeout: float = DEFAULT_TIMEOUT
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    budget: int | None = None


def run_tcp_party(
    transport: Transport,
    party: Party,
    protocol: str,
    fn: Callable[[PartyContext], T],
    seed: bytes,
    fxp: FixedPoint,
    limits: SessionLimits,
    progress: Callable[[str], None] | None,
    on_stop: Callable[[], None] | None = None,
) -> tuple[T, CostRecord]:
    """One party's TCP session: handshake, the protocol, then ``session/done`` (spec §4.4.2).

    The client sends ``session/done`` (empty) once its side of the protocol has returned, and
    the server receives it: the server so knows that the client got everything, and an end of
    stream before it is a dead peer (spec §4.4.3). ``on_stop`` runs once, as soon as the
    protocol has returned or raised (before ``session/done`` and before the connection closes).
    """
    quick = min(limits.timeout, limits.handshake_timeout)
    ch = Channel(transport, party, timeout=quick, budget=limits.budget)
    ctx = PartyContext(party, ch, seed, fxp, progress)
    ok = False
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped and on_stop is not None:
            on_stop()
        stopped = True

    try:
        handshake(ch, protocol, fxp)
        ch.timeout = limits.timeout
        out = fn(ctx)
        # Past the protocol only session/done is awaited, and a receive fails at once when
        # the stream ends: the vanished-peer watcher (on_stop's caller) is no longer needed.
        stop()
        ch.timeout = quick
        with ch.phase("close"):
            if party == "client":
                ch.send(DONE_LABEL, b"")
            else:
                ch.recv(DONE_LABEL, 0)
        ok = True
    finally:
        stop()
        ch.close(flush=ok)
    return out, ch.cost


def serve_tcp(
    host: str,
    port: int,
    protocol: str,
    server: Callable[[PartyContext], T],
    *,
    seed: bytes,
    fxp: FixedPoint | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    accept_timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
    on_listen: Callable[[int], None] | None = None,
    limits: SessionLimits | None = None,
) -> tuple[T, CostRecord]:
    """Listen, accept one client, run the handshake and the server's side of ``protocol``
    in this process (``secmoe serve`` serves many sessions: :mod:`secmoe.serve`)."""
    if not protocol:
        raise SpecError("protocol name is empty")
    srv = tcp_listen(host, port)
    try:
        if on_listen is not None:
            on_listen(srv.getsockname()[1])
        transport = tcp_accept(srv, accept_timeout)
    finally:
        srv.close()
    return run_tcp_party(
        transport,
        "server",
        protocol,
        server,
        seed,
        fxp or FixedPoint(),
        limits or SessionLimits(timeout=timeout),
        progress,
    )


def connect_tcp(
    host: str,
    port: int,
    protocol: str,
    client: Callable[[PartyContext], T],
    *,
    seed: bytes,
    fxp: FixedPoint | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = 10.0,
    progress: Callable[[str], None] | None = None,
    limits: SessionLimits | None = None,
) -> tuple[T, CostRecord]:
    """Connect, run the handshake and the client's side of ``protocol``."""
    transport = tcp_connect(host, port, connect_timeout)
    return run_tcp_party(
        transport,
        "client",
        protocol,
        client,
        seed,
        fxp or FixedPoint(),
        limits or SessionLimits(timeout=timeout),
        progress,
    )
