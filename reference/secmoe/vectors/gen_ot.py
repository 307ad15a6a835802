"""Vector generators for spec §10: base OT, the OT flavours, triples, and the dealer mode."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from secmoe.encoding import Ring
from secmoe.errors import Party
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
from secmoe.ot.iknp import IknpSender
from secmoe.ot.triples import and_triples, beaver_triples, dealer_triples
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_bits, hex_ring, local_case, run_case, two_party_case
from secmoe.vectors.registry import Json, Note, case_seed, inputs_prg, register

NORMAL = Note("NORMAL", "an ordinary input")
FRESH = Note("EDGE_CASE", "the first OT of a direction: the transcript starts with the base OTs")
DEALER = Note(
    "DEALER", "correlations from the labelled dealer mode, not from the two-party protocol"
)


def _s_bits(ctx: PartyContext) -> str:
    """The extension sender's secret s, as an intermediate for debugging implementations."""
    session = ctx.store.get(f"ot.iknp/sender={ctx.party}")
    return hex_bits(session.s) if isinstance(session, IknpSender) else ""


Party2 = Callable[[PartyContext], Any]


def _cot_outputs(ring: Ring, c: Any, s: Any) -> Json:
    return {"client": {"x": hex_ring(ring, c)}, "server": {"x0": hex_ring(ring, s)}}


def _triple_outputs(ring: Ring, c: Any, s: Any) -> Json:
    def enc(t: Any) -> Json:
        return {"a": hex_ring(ring, t[0]), "b": hex_ring(ring, t[1]), "c": hex_ring(ring, t[2])}

    return {"client": enc(c), "server": enc(s)}


def _case(
    protocol: str,
    case_id: str,
    comment: str,
    client: Party2,
    server: Party2,
    inputs: Json,
    outputs: Callable[[Any, Any], Json],
    flags: list[str],
) -> Json:
    seeds, res = run_case(client, server, protocol, case_id)
    return two_party_case(
        case_id,
        comment,
        seeds,
        res,
        inputs=inputs,
        outputs=outputs(res.client, res.server),
        flags=flags,
    )


@register(
    "ot.base_ot",
    "ot/base_ot.json",
    section="10.2",
    anchor="spec/10-ot.md#base_ot_send",
    params={"group": "ed25519"},
    mode="real",
    header=[
        "Chou-Orlandi base OT: the server is the base-OT sender, the client chooses; keys are 16 bytes."
    ],
    notes={"Normal": NORMAL},
)
def _gen_base() -> list[Json]:
    cases: list[Json] = []
    for n in (1, 4):
        protocol, case_id = "ot.base_ot", f"ot.base_ot/n{n}"
        choices = inputs_prg(protocol, case_id).next_bits(n)
        cases.append(
            _case(
                protocol,
                case_id,
                f"{n} base OTs",
                partial(base_ot_recv, choices=choices),
                partial(base_ot_send, n=n),
                {"client": {"choices": hex_bits(choices), "n": n}, "server": {"n": n}},
                lambda c, s: {
                    "client": {"keys": [k.hex() for k in c]},
                    "server": {"keys": [[k0.hex(), k1.hex()] for k0, k1 in s]},
                },
                ["Normal"],
            )
        )
    return [{"params": {}, "tests": cases}]


@register(
    "ot.flavours",
    "ot/flavours.json",
    section="10.5",
    anchor="spec/10-ot.md#rot_send",
    params={"kappa": 128},
    mode="real",
    header=[
        "Flavours on the pool's random COTs (engine iknp), each case a fresh session (the",
        "transcript starts with both directions' base OTs, then the just-in-time refill).",
        "The server is the extension sender and the client the receiver. Rows and messages are hex.",
        "intermediates.server.s is the sender's secret 128-bit string (packed bits).",
    ],
    notes={"Fresh": FRESH},
)
def _gen_flavours() -> list[Json]:
    p = "ot.flavours"
    cases: list[Json] = []

    cid = "ot.flavours/rot/n16"
    ch = inputs_prg(p, cid).next_bits(16)
    box: dict[str, str] = {}

    def rot_server(ctx: PartyContext) -> Any:
        out = rot_send(ctx, 16)
        box["s"] = _s_bits(ctx)
        return out

    seeds, res = run_case(lambda ctx: rot_recv(ctx, ch), rot_server, p, cid)
    cases.append(
        two_party_case(
            cid,
            "16 random OTs",
            seeds,
            res,
            inputs={"client": {"choices": hex_bits(ch), "n": 16}, "server": {"n": 16}},
            intermediates={"server": {"s": box["s"]}},
            outputs={
                "client": {"m_c": res.client.tobytes().hex()},
                "server": {
                    "m0": res.server[0].tobytes().hex(),
                    "m1": res.server[1].tobytes().hex(),
                },
            },
            flags=["Fresh"],
        )
    )
    for bits, n in ((64, 8), (8, 8), (1, 13)):
        cid = f"ot.flavours/cot/l{bits}/n{n}"
        src = inputs_prg(p, cid)
        ch, delta = src.next_bits(n), src.next_ring(n, bits)
        ring = Ring(bits)
        cases.append(
            _case(
                p,
                cid,
                f"{n} correlated OTs over Z_2^{bits}",
                partial(cot_recv, choices=ch, bits=bits),
                partial(cot_send, delta=delta, bits=bits),
                {
                    "client": {"choices": hex_bits(ch), "n": n, "w": bits},
                    "server": {"delta": hex_ring(ring, delta), "n": n, "w": bits},
                },
                partial(_cot_outputs, ring),
                ["Fresh"],
            )
        )
    cid = "ot.flavours/ot/n6/l5"
    src = inputs_prg(p, cid)
    ch = src.next_bits(6)
    m0 = np.frombuffer(src.next_bytes(30), np.uint8).reshape(6, 5)
    m1 = np.frombuffer(src.next_bytes(30), np.uint8).reshape(6, 5)
    cases.append(
        _case(
            p,
            cid,
            "6 chosen-message OTs of 5 bytes",
            lambda ctx: ot_recv(ctx, ch, 5),
            lambda ctx: ot_send(ctx, m0, m1),
            {
                "client": {"choices": hex_bits(ch), "n": 6, "L": 5},
                "server": {"m0": m0.tobytes().hex(), "m1": m1.tobytes().hex(), "n": 6, "L": 5},
            },
            lambda c, s: {"client": {"m_c": c.tobytes().hex()}, "server": {}},
            ["Fresh"],
        )
    )
    for n_msgs in (4, 16):
        cid = f"ot.flavours/one_of_n/n{n_msgs}"
        src = inputs_prg(p, cid)
        choices = src.next_below(5, n_msgs).astype(np.int64)
        msgs = src.next_bits(5 * n_msgs * 10).reshape(5, n_msgs, 10)
        cases.append(
            _case(
                p,
                cid,
                f"5 instances of 1-of-{n_msgs} OT with 10-bit messages",
                partial(one_of_n_recv, choices=choices, n_msgs=n_msgs, width=10),
                partial(one_of_n_send, messages=msgs),
                {
                    "client": {"choices": [int(v) for v in choices], "n": 5, "N": n_msgs, "b": 10},
                    "server": {
                        "messages": hex_bits(msgs.reshape(-1)),
                        "n": 5,
                        "N": n_msgs,
                        "b": 10,
                    },
                },
                lambda c, s: {"client": {"x": hex_bits(c.reshape(-1))}, "server": {}},
                ["Fresh"],
            )
        )
    return [{"params": {}, "tests": cases}]


@register(
    "ot.triples",
    "ot/triples.json",
    section="10.6",
    anchor="spec/10-ot.md#beaver_triples",
    params={},
    mode="real",
    header=["Beaver triples over Z_2^l (Gilboa) and AND triples, both directions fresh."],
    notes={"Fresh": FRESH},
)
def _gen_triples() -> list[Json]:
    p = "ot.triples"
    cases: list[Json] = []
    for bits, n in ((16, 2), (64, 2)):
        ring = Ring(bits)
        cid = f"ot.triples/beaver/l{bits}/n{n}"

        cases.append(
            _case(
                p,
                cid,
                f"{n} Beaver triples over Z_2^{bits}",
                partial(beaver_triples, n=n, bits=bits),
                partial(beaver_triples, n=n, bits=bits),
                {"client": {"n": n, "l": bits}, "server": {"n": n, "l": bits}},
                partial(_triple_outputs, ring),
                ["Fresh"],
            )
        )
    cid = "ot.triples/and/n10"

    def enc_bits(t: Any) -> Json:
        return {"a": hex_bits(t[0]), "b": hex_bits(t[1]), "c": hex_bits(t[2])}

    cases.append(
        _case(
            p,
            cid,
            "10 AND triples",
            lambda ctx: and_triples(ctx, 10),
            lambda ctx: and_triples(ctx, 10),
            {"client": {"n": 10}, "server": {"n": 10}},
            lambda c, s: {"client": enc_bits(c), "server": enc_bits(s)},
            ["Fresh"],
        )
    )
    return [{"params": {}, "tests": cases}]


@register(
    "ot.dealer_triples",
    "ot/dealer_triples.json",
    section="10.6.3",
    anchor="spec/10-ot.md#dealer_triples",
    params={},
    mode="dealer",
    header=["DEALER MODE (teaching and tests only): each party's shares from the dealer's seed."],
    notes={"Dealer": DEALER},
)
def _gen_dealer() -> list[Json]:
    seed = case_seed("ot.dealer_triples", "ot.dealer_triples/l64/n3")
    ring = Ring(64)
    out: Json = {}
    parties: tuple[Party, ...] = ("client", "server")
    for party in parties:
        a, b, c = dealer_triples(seed, party, 3, 64)
        out[party] = {"a": hex_ring(ring, a), "b": hex_ring(ring, b), "c": hex_ring(ring, c)}
    case = local_case(
        "ot.dealer_triples/l64/n3",
        "3 dealer triples over Z_2^64",
        inputs={"dealer_seed": seed.hex(), "n": 3, "l": 64},
        outputs=out,
        flags=["Dealer"],
    )
    return [{"params": {}, "tests": [case]}]
