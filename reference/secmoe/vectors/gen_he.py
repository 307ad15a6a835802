"""Vector generators for spec §20: parameter sets and every BFV operation on the toy set."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import Ring
from secmoe.he import bfv, packing
from secmoe.he.matmul import he_matmul
from secmoe.he.ntt import _primitive_2n_root
from secmoe.he.params import check_security, preset
from secmoe.he.privacy import ClientKeys, decrypt_share, mask_and_flood
from secmoe.he.serialize import ct_encode, pk_encode
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import (
    CaseSpec,
    Group,
    PartyPrg,
    Play,
    both,
    case_fxp,
    param,
    ring_of,
    table_file,
)
from secmoe.vectors.registry import Json, Note, inputs_prg

INSECURE = Note("INSECURE_PARAMS", "the toy parameter set (N = 32): readable, not secure")
NORMAL = Note("NORMAL", "an ordinary input")


def _params(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    p = preset(str(inputs["name"]))
    if not p.insecure:
        # Explicitly, not only in HeParams' constructor: preset() is cached, and the file
        # claims each secure set passes the 128-bit table (spec §20.1.2).
        check_security(p)
    outputs = {
        "N": p.n,
        "q_primes": [str(x) for x in p.q_primes],
        "aux_primes": [str(x) for x in p.aux_primes],
        "psi": [str(_primitive_2n_root(x, p.n)) for x in p.q_primes],
        "log2_q_floor": int(p.log_q),
        "insecure": p.insecure,
    }
    return outputs, None


def _params_groups() -> list[Group]:
    names = ("toy", "he4096", "he8192", "he16384")
    return [
        Group(
            {},
            [CaseSpec(f"he.params/{n}", f"the {n} parameter set", {"name": n}) for n in names],
        )
    ]


table_file(
    "he.params",
    "he/params.json",
    section="20.1",
    anchor="spec/20-he.md#heparams",
    params={"t": "2^64"},
    header=[
        "Every parameter set: N, the primes of q, the auxiliary primes, and psi for each prime of q."
    ],
    notes={"Normal": NORMAL},
    fn=_params,
    groups=_params_groups,
)


def _small_plain(prg: Prg, n: int, nonzero: int, bits: int) -> np.ndarray:
    """A plaintext with ``nonzero`` small signed coefficients (as uint64), the rest zero."""
    out = np.zeros(n, dtype=np.int64)
    out[:nonzero] = prg.next_below(nonzero, 1 << bits).astype(np.int64) - (1 << (bits - 1))
    return out.view(np.uint64)


def _toy(inputs: Json, params: Json, prgs: PartyPrg) -> tuple[Json, Json | None]:
    p = preset(str(params["set"]))
    ring = Ring(64)
    prg = prgs("client")
    sk = bfv.keygen(p, prg)
    pk = bfv.public_key(sk, prg, 1)
    pk2 = bfv.public_key(sk, prg, 2)
    m1, m2 = ring_of(ring, inputs["m1"]), ring_of(ring, inputs["m2"])
    c1 = bfv.encrypt_sk(sk, m1, prg)
    c2 = bfv.encrypt_pk(pk, m2, prg)
    product = bfv.ct_mul(c1, c2)
    bound = float(inputs["flood_noise_bound_bits"])
    flooded, share = mask_and_flood(product, ClientKeys(pk, pk2), prgs("server"), bound)
    outputs = {
        "decrypt_m1": hex_ring(ring, bfv.decrypt(sk, c1)),
        "add": ct_encode(bfv.ct_add(c1, c2)).hex(),
        "add_plain": ct_encode(bfv.ct_add_plain(c1, m2)).hex(),
        "mul_plain": ct_encode(bfv.ct_mul_plain(c1, m2.view(np.int64))).hex(),
        "mul": ct_encode(product).hex(),
        "decrypt_mul": hex_ring(ring, bfv.decrypt(sk, product)),
        "flooded": ct_encode(flooded).hex(),
        "server_share": hex_ring(ring, share),
        "client_share": hex_ring(ring, decrypt_share(sk, flooded)),
    }
    intermediates = {
        "s": [int(v) for v in sk.s],
        "pk": pk_encode(pk).hex(),
        "pk2": pk_encode(pk2).hex(),
        "encrypt_sk_m1": ct_encode(c1, seeded=True).hex(),
        "encrypt_pk_m2": ct_encode(c2).hex(),
    }
    return outputs, intermediates


def _toy_groups() -> list[Group]:
    p = preset("toy")
    ring = Ring(64)
    cid = "he.toy/chain"
    source = inputs_prg("he.toy", cid)
    m1 = _small_plain(source, p.n, 8, 30)
    m2 = _small_plain(source, p.n, 4, 20)
    inputs = {"m1": hex_ring(ring, m1), "m2": hex_ring(ring, m2), "flood_noise_bound_bits": 110.0}
    comment = (
        "keygen, pk, pk2, encrypt_sk(m1), encrypt_pk(m2), add, add_plain, mul_plain, mul,"
        " mask_and_flood"
    )
    return [Group({}, [CaseSpec(cid, comment, inputs, ("Insecure",))])]


table_file(
    "he.toy",
    "he/toy.json",
    section="20.3",
    anchor="spec/20-he.md#encrypt_sk",
    params={"set": "toy", "N": 32, "t": "2^64"},
    header=[
        "One chain of BFV operations on the insecure toy set, every polynomial inline as",
        "poly_encode hex (limb-major u32 LE). The client's PRG is Prg(case_seed, dst('vectors', 'client'));",
        "each step draws from it in the order listed; plaintexts are ring vectors (u64 LE hex).",
        "c1 = encrypt_sk(m1), c2 = encrypt_pk(pk, m2); add = ct_add(c1, c2), add_plain =",
        "ct_add_plain(c1, m2), mul_plain = ct_mul_plain(c1, w) with w = m2 read as signed 64-bit",
        "coefficients, mul = ct_mul(c1, c2); flooded, server_share = mask_and_flood(mul, (pk, pk2),",
        "Prg(case_seed, dst('vectors', 'server')), flood_noise_bound_bits) (spec 20.9).",
    ],
    notes={"Insecure": INSECURE},
    seeded=_toy,
    groups=_toy_groups,
)


def _play_matvec(case: Json, params: Json) -> Play:
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


def _matvec_groups() -> list[Group]:
    p = preset("toy")
    ring = Ring(64)
    cases = []
    for d_in, d_out in ((5, 3), (12, 9)):
        cid = f"he.matvec/toy/{d_out}x{d_in}"
        src = inputs_prg("he.matvec", cid)
        w = src.next_below(d_in * d_out, 1 << 19).astype(np.int64) - (1 << 18)
        xc, xs = src.next_ring(d_in), src.next_ring(d_in)
        shape = packing.matmul_shape(p, 1, d_in, d_out)
        dims = {"T": 1, "d_in": d_in, "d_out": d_out}
        inputs = {
            "client": {"x": hex_ring(ring, xc), **dims},
            "server": {"x": hex_ring(ring, xs), "w": [int(v) for v in w], **dims},
        }
        comment = f"{d_out} x {d_in} with n_i = {shape.n_i}, n_o = {shape.n_o}"
        cases.append(CaseSpec(cid, comment, inputs, ("Insecure",)))
    return [Group({}, cases)]


table_file(
    "he.matvec",
    "he/matvec.json",
    section="20.8.2",
    anchor="spec/20-he.md#he_matmul",
    params={"set": "toy"},
    header=[
        "The shared matrix x vector product on the toy set (keys, upload, masked results).",
        "The server's W is signed and row-major; shares are ring vectors.",
    ],
    notes={"Insecure": INSECURE},
    player=_play_matvec,
    groups=_matvec_groups,
)


def _packing(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    p = preset(str(params["set"]))
    ring = Ring(64)
    d_in, d_out = param(inputs, "d_in"), param(inputs, "d_out")
    w = np.asarray(inputs["w"], dtype=np.int64).reshape(d_out, d_in)
    x = ring_of(ring, inputs["x"])
    shape = packing.matmul_shape(p, param(inputs, "T"), d_in, d_out)
    outputs = {
        "n_i": shape.n_i,
        "n_o": shape.n_o,
        "input_blocks": [
            hex_ring(ring, packing.encode_input(p, shape, x, 0, b)) for b in range(shape.in_blocks)
        ],
        "weight_blocks": [
            [
                [int(v) for v in packing.encode_weights(p, shape, w, bo, bi)]
                for bi in range(shape.in_blocks)
            ]
            for bo in range(shape.out_blocks)
        ],
    }
    return outputs, None


def _packing_groups() -> list[Group]:
    ring = Ring(64)
    cases = []
    for d_in, d_out in ((5, 3), (12, 9), (40, 2)):
        cid = f"he.packing/toy/{d_out}x{d_in}"
        src = inputs_prg("he.packing", cid)
        w = src.next_below(d_in * d_out, 1 << 8).astype(np.int64) - (1 << 7)
        x = src.next_ring(d_in)
        inputs = {
            "w": [int(v) for v in w],
            "x": hex_ring(ring, x),
            "T": 1,
            "d_in": d_in,
            "d_out": d_out,
        }
        cases.append(CaseSpec(cid, f"{d_out} x {d_in}", inputs, ("Insecure",)))
    return [Group({}, cases)]


table_file(
    "he.packing",
    "he/packing.json",
    section="20.6",
    anchor="spec/20-he.md#matmul_shape",
    params={"set": "toy", "N": 32},
    header=[
        "Coefficient encodings of spec 20.6 on the toy set: the block shape, every input block",
        "(ring vector hex) and weight block (signed coefficients) of a small matrix.",
    ],
    notes={"Insecure": INSECURE},
    fn=_packing,
    groups=_packing_groups,
)
