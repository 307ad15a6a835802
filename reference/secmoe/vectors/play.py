"""How every two-party vector case runs one party: from the case's JSON to each party's function
(spec/05-test-vectors.md#interop).

``PLAYERS`` maps a vector file's ``protocol`` to a *player*: given the case (its ``inputs``) and
its parameters (the file's ``params`` updated by its group's), the player returns a :class:`Play` — the fixed-point parameters of the
run, the client's and the server's functions on a :class:`PartyContext`, and the encoder of a
party's output in the case's ``outputs`` format. ``secmoe interop`` runs one party from it; the
tests run both and compare with the transcript. Everything a party needs is read from the JSON:
ring vectors from their hex, counts and shapes from ``params``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, Ring, RingVec, bit_vec_decode
from secmoe.errors import Party, SpecError
from secmoe.he import packing
from secmoe.he.matmul import he_matmul
from secmoe.he.params import preset
from secmoe.model.tables import TABLES
from secmoe.ot.base import base_ot_recv, base_ot_send
from secmoe.ot.flavours import (
    cot_recv,
    cot_send,
    one_of_n_recv,
    one_of_n_send,
    ot_recv,
    ot_send,
    rot_recv,
    rot_send,
)
from secmoe.ot.triples import and_triples, beaver_triples
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import millionaire, msb, onehot
from secmoe.protocols.gelu_bumblebee import gelu_bumblebee
from secmoe.protocols.linear import matmul, matmul_ss
from secmoe.protocols.mul import and_bits, mul
from secmoe.protocols.norm import layernorm, rmsnorm, rsqrt
from secmoe.protocols.piecewise import piecewise
from secmoe.protocols.softmax import exp, reciprocal, softmax
from secmoe.protocols.topk import TopK, argmax, lt, maximum, topk
from secmoe.protocols.trunc import trunc
from secmoe.session import PartyContext
from secmoe.sharing import arith_reveal, arith_share, bool_reveal, bool_share, share_add_reveal
from secmoe.vectors.build import hex_bits, hex_ring, run_case, two_party_case
from secmoe.vectors.registry import Json, Note, register, registered

PartyFn = Callable[[PartyContext], Any]
PARTIES: tuple[Party, Party] = ("client", "server")


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
PLAYERS: dict[str, Player] = {}


def case_fxp(params: Json) -> FixedPoint:
    """The fixed-point parameters of a case: ``ring_bits`` and ``frac_bits`` of its group (or
    file) parameters, 64 and 18 where absent (spec §5.6)."""
    return FixedPoint(Ring(int(params.get("ring_bits", 64))), int(params.get("frac_bits", 18)))


def player(*protocols: str) -> Callable[[Player], Player]:
    def deco(fn: Player) -> Player:
        for p in protocols:
            PLAYERS[p] = fn
        return fn

    return deco


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


def _shape(params: Json) -> tuple[int, ...] | None:
    """``(rows, n)`` for matrices, None (flat) for vectors."""
    return (param(params, "rows"), param(params, "n")) if "rows" in params else None


def _same(fn: Callable[[PartyContext, Json], Any], inputs: Json) -> tuple[PartyFn, PartyFn]:
    """Both parties run ``fn`` on their own inputs."""
    return (lambda ctx: fn(ctx, inputs["client"]), lambda ctx: fn(ctx, inputs["server"]))


def both(key: str, enc: Callable[[Any], Any]) -> Callable[[Party, Any], Json]:
    return lambda party, out: {key: enc(out)}


# --- §30, §32, §33, §34: both parties call one protocol on their shares ---------------------------


def _shared(
    call: Callable[..., Any],
    args: Callable[[Ring, Json, Json], tuple[Any, ...]],
    out: Callable[[Ring], Callable[[Any], str]],
) -> Player:
    """A protocol that both parties call as ``call(ctx, *args(ring, my_inputs, params))``; each
    party's output is ``{"z": out(ring)(share)}``."""

    def play(case: Json, params: Json) -> Play:
        fxp = case_fxp(params)
        ring = fxp.ring

        def run(ctx: PartyContext, mine: Json) -> Any:
            return call(ctx, *args(ring, mine, params))

        c, s = _same(run, case["inputs"])
        return Play(fxp, c, s, both("z", out(ring)))

    return play


def _ring_out(ring: Ring) -> Callable[[Any], str]:
    return lambda v: hex_ring(ring, np.asarray(v).reshape(-1))


def _bits_out(ring: Ring) -> Callable[[Any], str]:
    return hex_bits


def _x(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return (ring_of(ring, mine["x"], _shape(params)),)


def _xy(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return ring_of(ring, mine["x"]), ring_of(ring, mine["y"])


def _xy_bits(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return bits_of(mine["x"], param(params)), bits_of(mine["y"], param(params))


def _x_and(*keys: str) -> Callable[[Ring, Json, Json], tuple[Any, ...]]:
    """The shared x, then the public values ``keys`` of the party's inputs."""
    return lambda ring, mine, params: (*_x(ring, mine, params), *(mine[k] for k in keys))


def _mux_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return bits_of(mine["b"], param(params)), ring_of(ring, mine["x"])


def _millionaire_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    key = "v" if "v" in mine else "u"
    return np.asarray(mine[key], dtype=np.uint64), int(mine["bits"])


def _piecewise_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    return TABLES[mine["table"]], ring_of(ring, mine["x"])


def _norm_args(*weights: str) -> Callable[[Ring, Json, Json], tuple[Any, ...]]:
    """x (T x d), the server's weights (None for the client), then eps."""

    def args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
        x = ring_of(ring, mine["x"], (param(params, "T"), param(params, "d")))
        ws = [ring_of(ring, mine[w]) if w in mine else None for w in weights]
        return (x, *ws, float(params["eps"]))

    return args


def _matmul_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    t, d_in, d_out = param(params, "T"), param(params, "d_in"), param(params, "d_out")
    w = ring_of(ring, mine["w"], (d_out, d_in)) if "w" in mine else None
    return ring_of(ring, mine["x"], (t, d_in)), w, d_out


def _matmul_ss_args(ring: Ring, mine: Json, params: Json) -> tuple[Any, ...]:
    a, b, c = param(params, "a"), param(params, "b"), param(params, "c")
    return ring_of(ring, mine["x"], (a, b)), ring_of(ring, mine["y"], (b, c))


def _argmax_out(ring: Ring) -> Callable[[Any], str]:
    return lambda v: hex_ring(ring, np.concatenate(v))


def _topk_out(ring: Ring) -> Callable[[Any], str]:
    def enc(out: TopK) -> str:
        assert out.onehot is not None
        both = np.concatenate([out.values.reshape(-1), out.indices.reshape(-1)])
        return hex_ring(ring, both) + hex_bits(out.onehot)

    return enc


_SHARED: dict[str, tuple[Callable[..., Any], Any, Any]] = {
    "mul": (mul, _xy, _ring_out),
    "and_bits": (and_bits, _xy_bits, _bits_out),
    "b2a": (b2a, lambda ring, m, p: (bits_of(m["b"], param(p)),), _ring_out),
    "mux": (mux, _mux_args, _ring_out),
    "millionaire": (millionaire, _millionaire_args, _bits_out),
    "msb": (msb, _x, _bits_out),
    "msb_width": (msb, _x_and("width"), _bits_out),
    "onehot": (onehot, lambda ring, m, p: (ring_of(ring, m["index"]), m["entries"]), _bits_out),
    "trunc": (trunc, _x_and("s"), _ring_out),
    "piecewise": (piecewise, _piecewise_args, _ring_out),
    "lt": (lt, _xy, _bits_out),
    "maximum": (maximum, _x, _ring_out),
    "argmax": (argmax, _x, _argmax_out),
    "topk": (topk, _x_and("k", "onehot"), _topk_out),
    "exp": (exp, _x, _ring_out),
    "reciprocal": (reciprocal, _x_and("bound"), _ring_out),
    "softmax": (softmax, _x, _ring_out),
    "rsqrt": (rsqrt, _x_and("bound"), _ring_out),
    "layernorm": (layernorm, _norm_args("gamma", "beta"), _ring_out),
    "rmsnorm": (rmsnorm, _norm_args("gamma"), _ring_out),
    "matmul": (matmul, _matmul_args, _ring_out),
    "matmul_ss": (matmul_ss, _matmul_ss_args, _ring_out),
    "gelu_bumblebee": (gelu_bumblebee, _x, _ring_out),
}
for _name, (_call, _args, _out) in _SHARED.items():
    PLAYERS[f"protocols.{_name}"] = _shared(_call, _args, _out)


# --- §3: sharing ---------------------------------------------------------------------------------


def _owner(inputs: Json, key: str) -> Party:
    owners = [p for p in PARTIES if key in inputs[p]]
    if len(owners) != 1:
        raise SpecError(f"exactly one party must hold {key!r}")
    return owners[0]


@player("sharing.arith_share")
def _arith_share(case: Json, params: Json) -> Play:
    fxp = case_fxp(params)
    owner = _owner(case["inputs"], "x")
    x = ring_of(fxp.ring, case["inputs"][owner]["x"])

    def run(ctx: PartyContext) -> Any:
        return arith_share(ctx, owner, x if ctx.party == owner else None, x.size)

    return Play(fxp, run, run, both("share", lambda v: hex_ring(fxp.ring, v)))


@player("sharing.bool_share")
def _bool_share(case: Json, params: Json) -> Play:
    n = param(params)
    owner = _owner(case["inputs"], "b")
    b = bits_of(case["inputs"][owner]["b"], n)

    def run(ctx: PartyContext) -> Any:
        return bool_share(ctx, owner, b if ctx.party == owner else None, n)

    return Play(case_fxp(params), run, run, both("share", hex_bits))


@player("sharing.reveal")
def _reveal(case: Json, params: Json) -> Play:
    fxp = case_fxp(params)
    inputs = case["inputs"]
    # The file lists the kind and the recipient only in the case id (sharing.reveal/KIND/TO).
    _, kind, to = case["id"].split("/")
    arith = kind == "arith"

    def run(ctx: PartyContext, mine: Json) -> Any:
        if arith:
            return arith_reveal(ctx, ring_of(fxp.ring, mine["share"]), to)
        return bool_reveal(ctx, bits_of(mine["share"], int(mine["n"])), to)

    def encode(party: Party, out: Any) -> Json:
        if out is None:
            return {}
        return {"x": hex_ring(fxp.ring, out) if arith else hex_bits(out)}

    c, s = _same(run, inputs)
    return Play(fxp, c, s, encode)


@player("sharing.share_add_reveal")
def _share_add_reveal(case: Json, params: Json) -> Play:
    fxp = case_fxp(params)
    inputs = case["inputs"]
    x, y = ring_of(fxp.ring, inputs["client"]["x"]), ring_of(fxp.ring, inputs["server"]["y"])

    def encode(party: Party, out: Any) -> Json:
        return {} if out is None else {"sum": hex_ring(fxp.ring, out)}

    return Play(
        fxp, lambda ctx: share_add_reveal(ctx, x), lambda ctx: share_add_reveal(ctx, y), encode
    )


# --- §10, §11: oblivious transfer ------------------------------------------------------------------


@player("ot.base_ot")
def _base_ot(case: Json, params: Json) -> Play:
    c, s = case["inputs"]["client"], case["inputs"]["server"]
    choices = bits_of(c["choices"], int(c["n"]))

    def encode(party: Party, out: Any) -> Json:
        if party == "client":
            return {"keys": [k.hex() for k in out]}
        return {"keys": [[k0.hex(), k1.hex()] for k0, k1 in out]}

    return Play(
        case_fxp(params),
        lambda ctx: base_ot_recv(ctx, choices),
        lambda ctx: base_ot_send(ctx, int(s["n"])),
        encode,
    )


def _bytes_hex(a: Any) -> str:
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes().hex()


@player("ot.flavours")
def _flavours(case: Json, params: Json) -> Play:
    c, s = case["inputs"]["client"], case["inputs"]["server"]
    fxp = case_fxp(params)
    if "delta" in s:  # correlated OT over Z_2^w
        ring = Ring(int(s["w"]))
        ch, delta = bits_of(c["choices"], int(c["n"])), ring_of(ring, s["delta"])
        bits = ring.bits
        return Play(
            fxp,
            lambda ctx: cot_recv(ctx, ch, bits),
            lambda ctx: cot_send(ctx, delta, bits),
            lambda p, out: (
                {"x": hex_ring(ring, out)} if p == "client" else {"x0": hex_ring(ring, out)}
            ),
        )
    if "m0" in s:  # chosen-message OT of L bytes
        n, length = int(s["n"]), int(s["L"])
        ch = bits_of(c["choices"], n)
        m0, m1 = rows_of(s["m0"], length), rows_of(s["m1"], length)
        return Play(
            fxp,
            lambda ctx: ot_recv(ctx, ch, length),
            lambda ctx: ot_send(ctx, m0, m1),
            lambda p, out: {"m_c": _bytes_hex(out)} if p == "client" else {},
        )
    if "messages" in s:  # 1-of-N OT of b-bit messages
        n, n_msgs, width = int(s["n"]), int(s["N"]), int(s["b"])
        choices = np.asarray(c["choices"], dtype=np.int64)
        msgs = bits_of(s["messages"], n * n_msgs * width).reshape(n, n_msgs, width)
        return Play(
            fxp,
            lambda ctx: one_of_n_recv(ctx, choices, n_msgs, width),
            lambda ctx: one_of_n_send(ctx, msgs),
            lambda p, out: {"x": hex_bits(out.reshape(-1))} if p == "client" else {},
        )
    ch = bits_of(c["choices"], int(c["n"]))  # random OT
    n = int(s["n"])

    def rot_out(p: Party, out: Any) -> Json:
        if p == "client":
            return {"m_c": _bytes_hex(out)}
        return {"m0": _bytes_hex(out[0]), "m1": _bytes_hex(out[1])}

    return Play(fxp, lambda ctx: rot_recv(ctx, ch), lambda ctx: rot_send(ctx, n), rot_out)


@player("ot.triples")
def _triples(case: Json, params: Json) -> Play:
    mine = case["inputs"]["client"]
    n = int(mine["n"])
    if "l" in mine:
        ring = Ring(int(mine["l"]))

        def beaver(ctx: PartyContext) -> Any:
            return beaver_triples(ctx, n, ring.bits)

        def enc(p: Party, t: Any) -> Json:
            return {k: hex_ring(ring, v) for k, v in zip("abc", t, strict=True)}

        return Play(case_fxp(params), beaver, beaver, enc)

    def enc_bits(p: Party, t: Any) -> Json:
        return {k: hex_bits(v) for k, v in zip("abc", t, strict=True)}

    def run(ctx: PartyContext) -> Any:
        return and_triples(ctx, n)

    return Play(case_fxp(params), run, run, enc_bits)


# --- §20: the HE matrix product --------------------------------------------------------------------


@player("he.matvec")
def _matvec(case: Json, params: Json) -> Play:
    p = preset(str(params["set"]))
    ring = Ring(64)
    c, s = case["inputs"]["client"], case["inputs"]["server"]
    d_in, d_out = param(c, "d_in"), param(c, "d_out")
    shape = packing.matmul_shape(p, param(c, "T"), d_in, d_out)
    w = np.asarray(s["w"], dtype=np.int64).reshape(d_out, d_in)
    xc, xs = ring_of(ring, c["x"]), ring_of(ring, s["x"])
    return Play(
        case_fxp(params),
        lambda ctx: he_matmul(ctx, params=p, shape=shape, x_share=xc),
        lambda ctx: he_matmul(ctx, params=p, shape=shape, x_share=xs, w=w),
        both("y", lambda v: hex_ring(ring, v)),
    )


# --- §40, §41, §50: the MoE layer, its baselines, a transformer block -----------------------------


def play_case(protocol: str, case: Json, params: Json) -> Play:
    """The :class:`Play` of one case of the vector file of ``protocol``: its table entry's."""
    players = {r.spec.protocol: r.player for r in registered() if r.player is not None}
    players = {**PLAYERS, **players}
    if protocol not in players:
        raise SpecError(f"no two-party player for {protocol!r}; known: {sorted(players)}")
    play = players[protocol](case, params)
    assert isinstance(play, Play)
    return play


# --- the generic recorder ----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSpec:
    """A two-party case before it runs: its id, comment, inputs (both parties') and flags."""

    id: str
    comment: str
    inputs: Json
    flags: tuple[str, ...] = ("Normal",)


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


def two_party_file(
    protocol: str,
    path: str,
    *,
    section: str,
    anchor: str,
    params: Json,
    header: tuple[str, ...] | list[str],
    notes: dict[str, Note],
    player: Player,
    groups: Callable[[], list[Group]],
) -> None:
    """A table entry: a two-party vector file, its player and its cases (spec §5.6)."""

    def generate() -> list[Json]:
        out = []
        for g in groups():
            merged = {**params, **g.params}  # a group's value applies over the file's (§5.4)
            out.append(
                {
                    "params": g.params,
                    "tests": [record(protocol, player, merged, c) for c in g.cases],
                }
            )
        return out

    register(
        protocol,
        path,
        section=section,
        anchor=anchor,
        params=params,
        mode="real",
        header=header,
        notes=notes,
        player=player,
    )(generate)
