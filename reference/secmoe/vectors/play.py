"""The vector table's machinery: a generic recorder for two-party and for local vector files,
and the players that run a case's parties from its JSON (spec/05-test-vectors.md#interop).

A two-party file is one table entry (:func:`table_file`): protocol id, spec section, params,
its groups of cases (each a :class:`CaseSpec`: id, comment, both parties' ``inputs``) and its
*player*. Given a case and its parameters (the file's ``params`` updated by its group's), the
player returns a :class:`Play`: the fixed-point parameters, the client's and the server's
functions on a :class:`PartyContext` (each reads its arguments from its own ``inputs``), and
the encoder of a party's output as the case's ``outputs[party]``. :func:`record` runs both with
the test DRNG's seeds and writes the case; ``secmoe interop`` runs one party from the same
player (:func:`play_case`), so the generator and the live checker cannot disagree. Protocols on
shares (every file of ``protocols/``) are entries of :func:`shared_file`. A local file is an entry
of :func:`table_file`: its cases and the function of their ``inputs`` it tests (an invalid case
is checked to raise its stated error); a local function that also draws a party's randomness
(a client's keys, a server's flooding) gets the case's party PRGs (:func:`case_prgs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, Ring, RingVec, bit_vec_decode
from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext
from secmoe.vectors.build import (
    hex_bits,
    hex_ring,
    invalid_case,
    local_case,
    run_case,
    two_party_case,
)
from secmoe.vectors.registry import (
    Json,
    Mode,
    Note,
    case_seed,
    inputs_prg,
    register,
    registered,
)

PartyFn = Callable[[PartyContext], Any]
NORMAL = Note("NORMAL", "an ordinary input; the transcript includes the OT-based correlations")


@dataclass(frozen=True)
class Play:
    """One case, ready to run: the fixed-point parameters, each party's function, and the
    encoder of a party's output as the case's ``outputs[party]``."""

    fxp: FixedPoint
    client: PartyFn
    server: PartyFn
    encode: Callable[[Party, Any], Json]
    # What the vector lists besides the outputs, from both parties' results (generator only).
    intermediates: Callable[[Any, Any], Json] | None = None

    def party(self, party: Party) -> PartyFn:
        return self.client if party == "client" else self.server


Player = Callable[[Json, Json], Play]


def case_fxp(params: Json) -> FixedPoint:
    """The fixed-point parameters of a case: ``ring_bits`` and ``frac_bits`` of its group (or
    file) parameters, 64 and 18 where absent (spec §5.6)."""
    return FixedPoint(Ring(int(params.get("ring_bits", 64))), int(params.get("frac_bits", 18)))


# --- decoding ------------------------------------------------------------------------------------


def ring_of(ring: Ring, text: str, shape: tuple[int, ...] | None = None) -> RingVec:
    """A ring vector from the hex of its encoding; the count follows from the length."""
    data = bytes.fromhex(text)
    if len(data) % ring.byte_width:
        raise SpecError(f"{len(data)} bytes are not a whole number of Z_2^{ring.bits} elements")
    v = ring.decode_vec(data, len(data) // ring.byte_width)
    return v.reshape(shape) if shape is not None else v


def bits_of(text: str, n: int) -> NDArray[np.uint8]:
    return bit_vec_decode(bytes.fromhex(text), n)


def rows_of(text: str, width: int = 16) -> NDArray[np.uint8]:
    """Rows of ``width`` bytes, concatenated in the hex."""
    return np.frombuffer(bytes.fromhex(text), np.uint8).reshape(-1, width).copy()


def param(params: Json, key: str = "n") -> int:
    if key not in params:
        raise SpecError(f"the case's params lack {key!r}")
    return int(params[key])


def bytes_hex(a: Any) -> str:
    """A byte array (any shape) as the hex of its bytes in row-major order."""
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes().hex()


def _same(fn: Callable[[PartyContext, Json], Any], inputs: Json) -> tuple[PartyFn, PartyFn]:
    """Both parties run ``fn`` on their own inputs."""
    return (lambda ctx: fn(ctx, inputs["client"]), lambda ctx: fn(ctx, inputs["server"]))


def both(key: str, enc: Callable[[Any], Any]) -> Callable[[Party, Any], Json]:
    return lambda party, out: {key: enc(out)}


# --- protocols on shares: both parties call one function on their own arguments ----------------

Args = Callable[[Ring, Json, Json], tuple[Any, ...]]  # (ring, the party's inputs, params) -> args
Out = Callable[[Ring], Callable[[Any], str]]  # ring -> the encoder of a party's share


@dataclass(frozen=True)
class Shares:
    """A case of a protocol on shares: each party's inputs and the group's shapes (§5.4)."""

    client: Json
    server: Json
    shapes: Json


MakeShares = Callable[[Prg, Ring], Shares]


def shared_player(call: Callable[..., Any], args: Args, out: Out) -> Player:
    """Both parties call ``call(ctx, *args(ring, their inputs, params))``; each party's output
    is ``{"z": out(ring)(its share)}``."""

    def play(case: Json, params: Json) -> Play:
        fxp = case_fxp(params)
        ring = fxp.ring

        def run(ctx: PartyContext, mine: Json) -> Any:
            return call(ctx, *args(ring, mine, params))

        c, s = _same(run, case["inputs"])
        return Play(fxp, c, s, both("z", out(ring)))

    return play


def out_ring(ring: Ring) -> Callable[[Any], str]:
    return lambda v: hex_ring(ring, np.asarray(v).reshape(-1))


def out_bits(ring: Ring) -> Callable[[Any], str]:
    return hex_bits


def arg_x(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    """The shared x: a vector, or a ``(rows, n)`` matrix where the params have ``rows``."""
    shape = (param(params, "rows"), param(params)) if "rows" in params else None
    return (ring_of(ring, mine["x"], shape),)


def arg_xy(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return ring_of(ring, mine["x"]), ring_of(ring, mine["y"])


def arg_xy_bits(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return bits_of(mine["x"], param(params)), bits_of(mine["y"], param(params))


def arg_x_and(*keys: str) -> Args:
    """The shared x, then the public values ``keys`` of the party's inputs."""
    return lambda ring, mine, params: (*arg_x(ring, mine, params), *(mine[k] for k in keys))


def shared_file(
    name: str,
    section: str,
    header: str | list[str],
    call: Callable[..., Any],
    make: MakeShares,
    bits: int,
    frac: int = 0,
    spec: str = "30-protocols.md",
    *,
    args: Args,
    out: Out,
    algorithm: str | None = None,
    params: Json | None = None,
) -> None:
    """The table entry of ``protocols.<name>``: two cases over Z_2^bits made by ``make``.

    ``algorithm`` names the spec anchor when it is not ``name``; ``params`` adds file params.
    """
    protocol = f"protocols.{name}"
    ring = Ring(bits)

    def groups() -> list[Group]:
        cases, shapes = [], []
        for i in range(2):
            cid = f"{protocol}/l{bits}/{i}"
            made = make(inputs_prg(protocol, cid), ring)
            shapes.append(made.shapes)
            inputs = {"client": made.client, "server": made.server}
            cases.append(CaseSpec(cid, f"case {i} over Z_2^{bits}", inputs))
        if any(sh != shapes[0] for sh in shapes):
            raise SpecError(f"{protocol}: the cases of one group must share their shapes")
        return [Group({"ring_bits": bits, "frac_bits": frac, **shapes[0]}, cases)]

    table_file(
        protocol,
        f"protocols/{name}.json",
        section=section,
        anchor=f"spec/{spec}#{algorithm or name}",
        params={"ring_bits": bits, **(params or {})},
        header=[
            *([header] if isinstance(header, str) else header),
            "Inputs are each party's shares; outputs each party's share of the result.",
        ],
        notes={"Normal": NORMAL},
        player=shared_player(call, args, out),
        groups=groups,
    )


def play_case(protocol: str, case: Json, params: Json) -> Play:
    """The :class:`Play` of one case of the vector file of ``protocol``: its table entry's."""
    players = {r.spec.protocol: r.player for r in registered() if r.player is not None}
    if protocol not in players:
        raise SpecError(f"no two-party player for {protocol!r}; known: {sorted(players)}")
    play = players[protocol](case, params)
    assert isinstance(play, Play)
    return play


# --- the generic recorder ----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSpec:
    """A case before it runs: its id, comment, inputs (a two-party case's: both parties') and
    flags; an invalid (local) case also names the valid case it mutates and its error."""

    id: str
    comment: str
    inputs: Json
    flags: tuple[str, ...] = ("Normal",)
    base_id: str | None = None
    error: Json | None = None  # {"kind", "party", "label"}; the kind is checked when recorded


@dataclass(frozen=True)
class Group:
    """A test group: its params and its cases."""

    params: Json
    cases: list[CaseSpec]


def record(protocol: str, player: Player, params: Json, spec: CaseSpec) -> Json:
    """Run a case by its player with the test DRNG's seeds and write it as the schema's case."""
    play = player({"id": spec.id, "inputs": spec.inputs}, params)
    seeds, res = run_case(play.client, play.server, protocol, spec.id, fxp=play.fxp)
    return two_party_case(
        spec.id,
        spec.comment,
        seeds,
        res,
        inputs=spec.inputs,
        outputs={
            "client": play.encode("client", res.client),
            "server": play.encode("server", res.server),
        },
        intermediates=None
        if play.intermediates is None
        else play.intermediates(res.client, res.server),
        flags=list(spec.flags),
    )


# --- local files: a function of the case's inputs -----------------------------------------------

# (inputs, params) -> (outputs, intermediates or None); raises the case's error on invalid inputs.
LocalFn = Callable[[Json, Json], tuple[Json, Json | None]]
# A party's PRG of one case, a fresh stream at each call: Prg(case_seed, dst("vectors", party)).
PartyPrg = Callable[[Party], Prg]
# As LocalFn, for a function that also draws a party's randomness from the case's PartyPrg.
SeededFn = Callable[[Json, Json, PartyPrg], tuple[Json, Json | None]]


def case_prgs(protocol: str, case_id: str) -> PartyPrg:
    """The party PRGs of a local case, ``Prg(case_seed(protocol, case_id), dst("vectors",
    party))``: the streams its file's header names for the randomness its inputs do not list."""
    seed = case_seed(protocol, case_id)
    return lambda party: Prg(seed, dst("vectors", party))


def _error_of(fn: LocalFn, inputs: Json, params: Json) -> tuple[str, str]:
    """The kind and message of the error ``fn`` raises on ``inputs``, ``("none", "")`` if none."""
    try:
        fn(inputs, params)
    except SpecError as exc:
        return "spec_error", str(exc)
    except ProtocolError as exc:
        return exc.kind, str(exc)
    return "none", ""


def record_local(fn: LocalFn, params: Json, spec: CaseSpec) -> Json:
    """A local case: ``fn`` applied to its inputs; an invalid case is checked to raise its error."""
    if spec.error is None:
        outputs, intermediates = fn(spec.inputs, params)
        return local_case(
            spec.id,
            spec.comment,
            inputs=spec.inputs,
            outputs=outputs,
            flags=list(spec.flags),
            intermediates=intermediates,
        )
    kind, message = _error_of(fn, spec.inputs, params)
    unnamed = [n for n in spec.error.get("names", []) if n not in message]
    if kind != spec.error["kind"] or spec.base_id is None or unnamed:
        raise SpecError(
            f"{spec.id}: the inputs give {kind!r} ({message}), the case states {spec.error}"
        )
    return invalid_case(
        spec.id,
        spec.comment,
        base_id=spec.base_id,
        inputs=spec.inputs,
        error=spec.error,
        flags=list(spec.flags),
    )


def table_file(
    protocol: str,
    path: str,
    *,
    section: str,
    anchor: str,
    params: Json,
    header: tuple[str, ...] | list[str],
    notes: dict[str, Note],
    groups: Callable[[], list[Group]],
    player: Player | None = None,
    fn: LocalFn | None = None,
    seeded: SeededFn | None = None,
    mode: Mode | None = None,
) -> None:
    """A table entry: a vector file and its cases, recorded by the case's ``player`` (a
    two-party file, mode ``real``) or by the local function ``fn`` (mode ``local`` or
    ``dealer``), or ``seeded``, given the case's party PRGs besides its inputs and params.
    A case runs with the file's params updated by its group's (§5.4)."""
    if [player, fn, seeded].count(None) != 2:
        raise SpecError(f"{protocol}: a table entry has a player or a local function")

    def one(merged: Json, case: CaseSpec) -> Json:
        if player is not None:
            return record(protocol, player, merged, case)
        if seeded is not None:
            prgs = case_prgs(protocol, case.id)
            return record_local(lambda i, p: seeded(i, p, prgs), merged, case)
        assert fn is not None
        return record_local(fn, merged, case)

    def generate() -> list[Json]:
        return [
            {"params": g.params, "tests": [one({**params, **g.params}, c) for c in g.cases]}
            for g in groups()
        ]

    register(
        protocol,
        path,
        section=section,
        anchor=anchor,
        params=params,
        mode=mode or ("real" if player is not None else "local"),
        header=header,
        notes=notes,
        player=player,
    )(generate)
