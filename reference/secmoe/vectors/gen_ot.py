"""Vector table of spec §10: base OT, the OT flavours, triples, and the dealer mode."""

from __future__ import annotations

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
from secmoe.vectors.build import hex_bits, hex_ring
from secmoe.vectors.play import (
    CaseSpec,
    Group,
    Play,
    bits_of,
    bytes_hex,
    case_fxp,
    param,
    ring_of,
    rows_of,
    table_file,
)
from secmoe.vectors.registry import Json, Note, case_seed, inputs_prg

NORMAL = Note("NORMAL", "an ordinary input")
FRESH = Note("EDGE_CASE", "the first OT of a direction: the transcript starts with the base OTs")
DEALER = Note(
    "DEALER", "correlations from the labelled dealer mode, not from the two-party protocol"
)


def _s_bits(ctx: PartyContext) -> str:
    """The extension sender's secret s, as an intermediate for debugging implementations."""
    session = ctx.store.get(f"ot.iknp/sender={ctx.party}")
    return hex_bits(session.s) if isinstance(session, IknpSender) else ""


def _play_base_ot(case: Json, params: Json) -> Play:
    c, s = case["inputs"]["client"], case["inputs"]["server"]
    choices = bits_of(c["choices"], param(c))

    def encode(party: Party, out: Any) -> Json:
        if party == "client":
            return {"keys": [k.hex() for k in out]}
        return {"keys": [[k0.hex(), k1.hex()] for k0, k1 in out]}

    return Play(
        case_fxp(params),
        lambda ctx: base_ot_recv(ctx, choices),
        lambda ctx: base_ot_send(ctx, param(s)),
        encode,
    )


def _base_ot_groups() -> list[Group]:
    cases = []
    for n in (1, 4):
        protocol, case_id = "ot.base_ot", f"ot.base_ot/n{n}"
        choices = inputs_prg(protocol, case_id).next_bits(n)
        inputs = {"client": {"choices": hex_bits(choices), "n": n}, "server": {"n": n}}
        cases.append(CaseSpec(case_id, f"{n} base OTs", inputs))
    return [Group({}, cases)]


table_file(
    "ot.base_ot",
    "ot/base_ot.json",
    section="10.2",
    anchor="spec/10-ot.md#base_ot_send",
    params={"group": "ed25519"},
    header=[
        "Chou-Orlandi base OT: the server is the base-OT sender, the client chooses; keys are 16 bytes."
    ],
    notes={"Normal": NORMAL},
    player=_play_base_ot,
    groups=_base_ot_groups,
)


def _play_flavours(case: Json, params: Json) -> Play:
    """One flavour per case, told by the server's inputs: delta (COT), m0 (chosen-message OT),
    messages (1-of-N OT), else random OT."""
    c, s = case["inputs"]["client"], case["inputs"]["server"]
    fxp = case_fxp(params)
    if "messages" in s:
        n, n_msgs, width = param(s), param(s, "N"), param(s, "b")
        index = np.asarray(c["choices"], dtype=np.int64)
        msgs = bits_of(s["messages"], n * n_msgs * width).reshape(n, n_msgs, width)
        return Play(
            fxp,
            lambda ctx: one_of_n_recv(ctx, index, n_msgs, width),
            lambda ctx: one_of_n_send(ctx, msgs),
            lambda p, out: {"x": hex_bits(out.reshape(-1))} if p == "client" else {},
        )
    choices = bits_of(c["choices"], param(c))
    if "delta" in s:
        ring = Ring(param(s, "w"))
        delta = ring_of(ring, s["delta"])
        return Play(
            fxp,
            lambda ctx: cot_recv(ctx, choices, ring.bits),
            lambda ctx: cot_send(ctx, delta, ring.bits),
            lambda p, out: {"x" if p == "client" else "x0": hex_ring(ring, out)},
        )
    if "m0" in s:
        length = param(s, "L")
        m0, m1 = rows_of(s["m0"], length), rows_of(s["m1"], length)
        return Play(
            fxp,
            lambda ctx: ot_recv(ctx, choices, length),
            lambda ctx: ot_send(ctx, m0, m1),
            lambda p, out: {"m_c": bytes_hex(out)} if p == "client" else {},
        )

    def rot_server(ctx: PartyContext) -> Any:
        m0, m1 = rot_send(ctx, param(s))
        return m0, m1, _s_bits(ctx)

    def rot_out(p: Party, out: Any) -> Json:
        if p == "client":
            return {"m_c": bytes_hex(out)}
        return {"m0": bytes_hex(out[0]), "m1": bytes_hex(out[1])}

    return Play(
        fxp,
        lambda ctx: rot_recv(ctx, choices),
        rot_server,
        rot_out,
        intermediates=lambda c_out, s_out: {"server": {"s": s_out[2]}},
    )


def _flavours_groups() -> list[Group]:
    p = "ot.flavours"
    cid = "ot.flavours/rot/n16"
    ch = inputs_prg(p, cid).next_bits(16)
    inputs: Json = {"client": {"choices": hex_bits(ch), "n": 16}, "server": {"n": 16}}
    cases = [CaseSpec(cid, "16 random OTs", inputs, ("Fresh",))]
    for bits, n in ((64, 8), (8, 8), (1, 13)):
        cid = f"ot.flavours/cot/l{bits}/n{n}"
        src = inputs_prg(p, cid)
        ch, delta = src.next_bits(n), src.next_ring(n, bits)
        inputs = {
            "client": {"choices": hex_bits(ch), "n": n, "w": bits},
            "server": {"delta": hex_ring(Ring(bits), delta), "n": n, "w": bits},
        }
        cases.append(CaseSpec(cid, f"{n} correlated OTs over Z_2^{bits}", inputs, ("Fresh",)))
    cid = "ot.flavours/ot/n6/l5"
    src = inputs_prg(p, cid)
    ch = src.next_bits(6)
    m0, m1 = src.next_bytes(30), src.next_bytes(30)
    inputs = {
        "client": {"choices": hex_bits(ch), "n": 6, "L": 5},
        "server": {"m0": m0.hex(), "m1": m1.hex(), "n": 6, "L": 5},
    }
    cases.append(CaseSpec(cid, "6 chosen-message OTs of 5 bytes", inputs, ("Fresh",)))
    for n_msgs in (4, 16):
        cid = f"ot.flavours/one_of_n/n{n_msgs}"
        src = inputs_prg(p, cid)
        choices = src.next_below(5, n_msgs)
        msgs = src.next_bits(5 * n_msgs * 10)
        shape = {"n": 5, "N": n_msgs, "b": 10}
        inputs = {
            "client": {"choices": [int(v) for v in choices], **shape},
            "server": {"messages": hex_bits(msgs), **shape},
        }
        comment = f"5 instances of 1-of-{n_msgs} OT with 10-bit messages"
        cases.append(CaseSpec(cid, comment, inputs, ("Fresh",)))
    return [Group({}, cases)]


table_file(
    "ot.flavours",
    "ot/flavours.json",
    section="10.5",
    anchor="spec/10-ot.md#rot_send",
    params={"kappa": 128},
    header=[
        "Flavours on the pool's random COTs (engine iknp), each case a fresh session (the",
        "transcript starts with both directions' base OTs, then the just-in-time refill).",
        "The server is the extension sender and the client the receiver. Rows and messages are hex.",
        "intermediates.server.s is the sender's secret 128-bit string (packed bits).",
    ],
    notes={"Fresh": FRESH},
    player=_play_flavours,
    groups=_flavours_groups,
)


def _play_triples(case: Json, params: Json) -> Play:
    """Beaver triples over Z_2^l where the inputs give ``l``, else AND triples."""
    mine = case["inputs"]["client"]
    n = param(mine)
    if "l" in mine:
        ring = Ring(param(mine, "l"))

        def beaver(ctx: PartyContext) -> Any:
            return beaver_triples(ctx, n, ring.bits)

        def enc(p: Party, t: Any) -> Json:
            return {k: hex_ring(ring, v) for k, v in zip("abc", t, strict=True)}

        return Play(case_fxp(params), beaver, beaver, enc)

    def run(ctx: PartyContext) -> Any:
        return and_triples(ctx, n)

    def enc_bits(p: Party, t: Any) -> Json:
        return {k: hex_bits(v) for k, v in zip("abc", t, strict=True)}

    return Play(case_fxp(params), run, run, enc_bits)


def _triples_groups() -> list[Group]:
    cases = []
    for bits, n in ((16, 2), (64, 2)):
        inputs: Json = {"client": {"n": n, "l": bits}, "server": {"n": n, "l": bits}}
        cid = f"ot.triples/beaver/l{bits}/n{n}"
        cases.append(CaseSpec(cid, f"{n} Beaver triples over Z_2^{bits}", inputs, ("Fresh",)))
    inputs = {"client": {"n": 10}, "server": {"n": 10}}
    cases.append(CaseSpec("ot.triples/and/n10", "10 AND triples", inputs, ("Fresh",)))
    return [Group({}, cases)]


table_file(
    "ot.triples",
    "ot/triples.json",
    section="10.6",
    anchor="spec/10-ot.md#beaver_triples",
    params={},
    header=["Beaver triples over Z_2^l (Gilboa) and AND triples, both directions fresh."],
    notes={"Fresh": FRESH},
    player=_play_triples,
    groups=_triples_groups,
)


def _dealer(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """Each party's triples from the dealer's seed."""
    seed, n, ring = bytes.fromhex(inputs["dealer_seed"]), param(inputs), Ring(param(inputs, "l"))
    out: Json = {}
    parties: tuple[Party, ...] = ("client", "server")
    for party in parties:
        a, b, c = dealer_triples(seed, party, n, ring.bits)
        out[party] = {"a": hex_ring(ring, a), "b": hex_ring(ring, b), "c": hex_ring(ring, c)}
    return out, None


def _dealer_groups() -> list[Group]:
    cid = "ot.dealer_triples/l64/n3"
    inputs = {"dealer_seed": case_seed("ot.dealer_triples", cid).hex(), "n": 3, "l": 64}
    return [Group({}, [CaseSpec(cid, "3 dealer triples over Z_2^64", inputs, ("Dealer",))])]


table_file(
    "ot.dealer_triples",
    "ot/dealer_triples.json",
    section="10.6.3",
    anchor="spec/10-ot.md#dealer_triples",
    params={},
    header=["DEALER MODE (teaching and tests only): each party's shares from the dealer's seed."],
    notes={"Dealer": DEALER},
    fn=_dealer,
    groups=_dealer_groups,
    mode="dealer",
)
