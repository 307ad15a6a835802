"""Vector table of spec §11 (Ferret silent OT), all at the INSECURE toy parameter sets."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import Party
from secmoe.ot.ferret import (
    FERRET_TOY,
    FerretParams,
    FerretReceiver,
    FerretSender,
    ferret_extend_recv,
    ferret_extend_send,
    ferret_setup,
    mpcot_recv,
    mpcot_send,
    spcot_recv,
    spcot_send,
)
from secmoe.ot.ggm import ggm_expand, ggm_puncture
from secmoe.ot.lpn import lpn_code, lpn_encode
from secmoe.randomness import Prg
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_bits
from secmoe.vectors.play import (
    CaseSpec,
    Group,
    Play,
    bits_of,
    case_fxp,
    param,
    rows_of,
    table_file,
)
from secmoe.vectors.registry import Json, Note, inputs_prg

INSECURE = Note(
    "INSECURE_PARAMS",
    "the INSECURE toy parameter set of spec §11.7: for checking implementations only",
)
ITERATION = 1  # the MPCOT case's Ferret iteration number
HEADER_ROWS = (
    "Rows and nodes are hex, 16 bytes each, concatenated in order; bit vectors as bit-vec hex."
)


def _hex(a: NDArray[np.uint8]) -> str:
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes().hex()


def _rows(src: Prg, m: int) -> NDArray[np.uint8]:
    return np.frombuffer(src.next_bytes(16 * m), np.uint8).reshape(m, 16)


def _toy_params(p: FerretParams) -> Json:
    return {"name": p.name, "n": p.n, "k": p.k, "t": p.t, "log_bin": p.log_bin, "d": p.d}


def _ggm(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    depth = param(params, "depth")
    roots = rows_of(inputs["roots"])
    alpha = np.asarray(inputs["alpha"], dtype=np.int64)
    leaves, sums = ggm_expand(roots, depth)
    trees = np.arange(len(roots))
    bits = (alpha[:, None] >> np.arange(depth)) & 1
    known = sums[trees[:, None], np.arange(depth)[None, :], 1 - bits]
    outputs = {
        "leaves": _hex(leaves),
        "sums": _hex(sums),
        "punctured": _hex(ggm_puncture(alpha, known, depth)),
    }
    return outputs, {"known": _hex(known)}


def _ggm_groups() -> list[Group]:
    p, cid = "ot.ferret_ggm", "ot.ferret_ggm/t2/h3"
    src = inputs_prg(p, cid)
    roots = _rows(src, 2)
    alpha = src.next_below(2, 8)
    inputs = {"roots": _hex(roots), "alpha": [int(a) for a in alpha]}
    comment = "2 trees of depth 3, expanded and punctured"
    return [Group({}, [CaseSpec(cid, comment, inputs, ("Insecure",))])]


table_file(
    "ot.ferret_ggm",
    "ot/ferret_ggm.json",
    section="11.2",
    anchor="spec/11-silent-ot.md#ggm_expand",
    params={"t": 2, "depth": 3},
    header=[
        "GGM expansion of 2 trees of depth 3 and the puncturing of each at alpha_i.",
        "leaves: leaf x of tree i at position x t + i; sums: tree, level 1..h, side 0 then 1.",
        "punctured: the receiver's leaves, leaf alpha_i all zero.",
        HEADER_ROWS,
    ],
    notes={"Insecure": INSECURE},
    fn=_ggm,
    groups=_ggm_groups,
)


def _spcot(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    iteration = param(params, "iteration")
    roots, delta, q = rows_of(inputs["roots"]), rows_of(inputs["delta"])[0], rows_of(inputs["q"])
    b = bits_of(inputs["b"], len(q))
    t = q ^ (b[:, None] * delta)
    leaves, masked, corr = spcot_send(roots, delta, q, iteration)
    v, alpha = spcot_recv(masked, corr, t, b, iteration)
    return {
        "sender": {"leaves": _hex(leaves), "masked": _hex(masked), "corr": _hex(corr)},
        "receiver": {"leaves": _hex(v), "alpha": [int(a) for a in alpha]},
    }, None


def _spcot_groups() -> list[Group]:
    p, cid = "ot.ferret_spcot", "ot.ferret_spcot/t2/h4"
    src = inputs_prg(p, cid)
    roots, delta = _rows(src, 2), _rows(src, 1)[0]
    q, b = _rows(src, 8), src.next_bits(8)
    inputs = {"roots": _hex(roots), "delta": _hex(delta), "q": _hex(q), "b": hex_bits(b)}
    return [Group({}, [CaseSpec(cid, "2 single-point COTs of depth 4", inputs, ("Insecure",))])]


table_file(
    "ot.ferret_spcot",
    "ot/ferret_spcot.json",
    section="11.3",
    anchor="spec/11-silent-ot.md#spcot_send",
    params={"t": 2, "depth": 4, "iteration": 1},
    header=[
        "spcot_send / spcot_recv for 2 trees of depth 4 (iteration number 1), from given roots,",
        "Delta and tree COTs (q_j; b_j; t_j = q_j XOR b_j Delta), tree i level l at j = 4 i + l - 1.",
        "masked: M_j^0 || M_j^1 for j in order (the payload of ot/ferret/sums); corr: c_0 || c_1.",
        HEADER_ROWS,
    ],
    notes={"Insecure": INSECURE},
    fn=_spcot,
    groups=_spcot_groups,
)


def _play_mpcot(case: Json, params: Json) -> Play:
    c, s = case["inputs"]["client"], case["inputs"]["server"]
    par = FERRET_TOY
    t = rows_of(c["t"])
    b = bits_of(c["b"], t.shape[0])
    delta, q = rows_of(s["delta"])[0], rows_of(s["q"])
    iteration = int(params["iteration"])

    def encode(p: Party, out: Any) -> Json:
        if p == "client":
            return {"v": _hex(out[0]), "positions": [int(x) for x in out[1]]}
        return {"w": _hex(out)}

    return Play(
        case_fxp(params),
        lambda ctx: mpcot_recv(ctx, par, t, b, iteration),
        lambda ctx: mpcot_send(ctx, par, delta, q, iteration),
        encode,
    )


def _mpcot_cases() -> list[Group]:
    p, cid = "ot.ferret_mpcot", "ot.ferret_mpcot/toy"
    par = FERRET_TOY
    m = par.t * par.log_bin
    src = inputs_prg(p, cid)
    delta, q, b = _rows(src, 1)[0], _rows(src, m), src.next_bits(m)
    t = q ^ (b[:, None] * delta)
    inputs = {
        "client": {"t": _hex(t), "b": hex_bits(b)},
        "server": {"delta": _hex(delta), "q": _hex(q)},
    }
    comment = "regular MPCOT of weight 4 and length 128"
    return [Group({"iteration": ITERATION}, [CaseSpec(cid, comment, inputs, ("Insecure",))])]


table_file(
    "ot.ferret_mpcot",
    "ot/ferret_mpcot.json",
    section="11.4",
    anchor="spec/11-silent-ot.md#mpcot_send",
    params=_toy_params(FERRET_TOY),
    header=[
        "mpcot_send (server, S) / mpcot_recv (client, R) at ferret-toy-INSECURE, iteration 1,",
        "from the t h tree COTs given as inputs (Delta, q_j, b_j; R's rows t_j = q_j XOR b_j Delta).",
        "The roots come from the server's PRG instance ot.ferret/ggm 0. positions: alpha_i t + i.",
        HEADER_ROWS,
    ],
    notes={"Insecure": INSECURE},
    player=_play_mpcot,
    groups=_mpcot_cases,
)


def _lpn(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    n, k = param(inputs), param(inputs, "k")
    code = lpn_code(n, k, param(inputs, "d"))
    rows, table = rows_of(inputs["rows"]), rows_of(inputs["table"])
    bits, tbits = bits_of(inputs["bits"], n), bits_of(inputs["table_bits"], k)
    return {
        "code": [[int(x) for x in col] for col in code.idx],
        "rows": _hex(lpn_encode(rows, table, code)),
        "bits": hex_bits(lpn_encode(bits, tbits, code)),
    }, None


def _lpn_groups() -> list[Group]:
    p, cid = "ot.ferret_lpn", "ot.ferret_lpn/toy"
    par = FERRET_TOY
    src = inputs_prg(p, cid)
    rows, table = _rows(src, par.n), _rows(src, par.k)
    bits, tbits = src.next_bits(par.n), src.next_bits(par.k)
    inputs = {
        "n": par.n,
        "k": par.k,
        "d": par.d,
        "rows": _hex(rows),
        "table": _hex(table),
        "bits": hex_bits(bits),
        "table_bits": hex_bits(tbits),
    }
    comment = "the toy code and one encoding of rows and of bits"
    return [Group({}, [CaseSpec(cid, comment, inputs, ("Insecure",))])]


table_file(
    "ot.ferret_lpn",
    "ot/ferret_lpn.json",
    section="11.5",
    anchor="spec/11-silent-ot.md#lpn_code",
    params=_toy_params(FERRET_TOY),
    header=[
        "lpn_code(128, 32, 10): the code's indices, column by column (row i: A[i, 0..9]);",
        "lpn_encode of random rows (16 bytes) and bits with random tables of k entries.",
        HEADER_ROWS,
    ],
    notes={"Insecure": INSECURE},
    fn=_lpn,
    groups=_lpn_groups,
)


def _play_extend(case: Json, params: Json) -> Play:
    par = FERRET_TOY
    iterations = int(case["inputs"]["server"]["iterations"])

    def server(ctx: PartyContext) -> Any:
        st = ferret_setup(ctx, "server", par)
        assert isinstance(st, FerretSender)
        return st.delta, [ferret_extend_send(ctx, st) for _ in range(iterations)]

    def client(ctx: PartyContext) -> Any:
        st = ferret_setup(ctx, "server", par)
        assert isinstance(st, FerretReceiver)
        return [ferret_extend_recv(ctx, st) for _ in range(iterations)]

    def encode(p: Party, out: Any) -> Json:
        if p == "client":
            return {"t": [_hex(t) for t, _ in out], "r": [hex_bits(r) for _, r in out]}
        return {"q": [_hex(q) for q in out[1]]}

    return Play(
        case_fxp(params),
        client,
        server,
        encode,
        intermediates=lambda c, s: {"server": {"delta": _hex(s[0])}},
    )


def _extend_cases() -> list[Group]:
    cid = "ot.ferret_extend/toy/two_iterations"
    inputs = {"client": {"iterations": 2}, "server": {"iterations": 2}}
    comment = "set-up and two iterations, fresh direction"
    return [Group({}, [CaseSpec(cid, comment, inputs, ("Insecure",))])]


table_file(
    "ot.ferret_extend",
    "ot/ferret_extend.json",
    section="11.6",
    anchor="spec/11-silent-ot.md#ferret_setup",
    params=_toy_params(FERRET_TOY),
    header=[
        "A fresh direction with the server as S: ferret_setup (base OTs, IKNP bootstrap of 26",
        "COTs, the pre-iteration at ferret-toy-boot-INSECURE) then 2 iterations at",
        "ferret-toy-INSECURE, 76 COTs each. outputs.server.q[it] and client.t[it], client.r[it]",
        "per iteration; t = q XOR r Delta row by row. The full transcript is listed.",
        HEADER_ROWS,
    ],
    notes={"Insecure": INSECURE},
    player=_play_extend,
    groups=_extend_cases,
)
