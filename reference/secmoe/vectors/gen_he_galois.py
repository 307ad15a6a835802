"""Vector tables of spec §20.10-20.14: Galois keys and the selector expansion, modulus
switching, and packed responses, on the insecure toy set (every polynomial inline).

Each case's inputs are its messages; the keys and encryptions are drawn by its local function
from the case's client PRG, the floods from its server PRG (:func:`case_prgs`), in the order
each file's header states.
"""

from __future__ import annotations

import numpy as np

from secmoe.encoding import Ring, RingVec
from secmoe.errors import SpecError
from secmoe.he import bfv, galois, modswitch, relin, respack
from secmoe.he.bfv import Ciphertext, SecretKey
from secmoe.he.params import HeParams, preset
from secmoe.he.privacy import ClientKeys, mask_and_flood
from secmoe.he.serialize import ct_encode, gk_encode
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import CaseSpec, Group, PartyPrg, case_prgs, param, ring_of, table_file
from secmoe.vectors.registry import Json, Note, inputs_prg

FLOOD_BOUND = 60.0  # the analytic noise bound (bits) modswitch's responses are flooded for
INSECURE = Note("INSECURE_PARAMS", "the toy parameter set (N = 32): readable, not secure")
TOY_PARAMS = {"set": "toy", "N": 32, "t": "2^64"}
RING = Ring(64)


def _galois(inputs: Json, params: Json, prgs: PartyPrg) -> tuple[Json, Json | None]:
    p = preset(str(params["set"]))
    levels = param(inputs, "levels")
    prg = prgs("client")
    sk = bfv.keygen(p, prg)
    keys = {k: galois.galois_keygen(sk, k, prg) for k in galois.expansion_elements(p, levels)}
    ct = bfv.encrypt_sk(sk, ring_of(RING, inputs["m"]), prg)
    outs = galois.expand_selector(ct, keys, levels)
    outputs = {
        "expanded": [ct_encode(c).hex() for c in outs],
        "decrypted": [hex_ring(RING, bfv.decrypt(sk, c)) for c in outs],
    }
    intermediates = {
        "s": [int(v) for v in sk.s],
        "galois_keys": {str(k): gk_encode(key).hex() for k, key in keys.items()},
        "ct": ct_encode(ct).hex(),
        "apply_galois_k_n_plus_1": ct_encode(galois.apply_galois(ct, keys[p.n + 1])).hex(),
    }
    return outputs, intermediates


def _galois_groups() -> list[Group]:
    n = preset("toy").n
    cases = []
    for levels in (2, 3):
        cid = f"he.galois/toy/l{levels}"
        m = np.zeros(n, dtype=np.uint64)
        m[: 1 << levels] = inputs_prg("he.galois", cid).next_u64(1 << levels)
        inputs = {"m": hex_ring(RING, m), "levels": levels}
        comment = f"{1 << levels} entries, {levels} expansion levels"
        cases.append(CaseSpec(cid, comment, inputs, ("Insecure",)))
    return [Group({}, cases)]


table_file(
    "he.galois",
    "he/galois.json",
    section="20.10",
    anchor="spec/20-he.md#expand_selector",
    params=TOY_PARAMS,
    header=[
        "Galois keys (galois_keygen), one substitution (apply_galois) and the expansion of a",
        "packed selector (expand_selector) on the insecure toy set. The client's PRG is",
        "Prg(case_seed, dst('vectors', 'client')): keygen, then the Galois keys in the order of",
        "k_j = N / 2^j + 1, then the encryption. Ciphertexts are ct_encode hex, keys gk_encode hex.",
    ],
    notes={"Insecure": INSECURE},
    seeded=_galois,
    groups=_galois_groups,
)


def _flooded(p: HeParams, inputs: Json, prgs: PartyPrg) -> tuple[SecretKey, Ciphertext, RingVec]:
    """The modswitch recipe up to the flood: the key, the flooded response and the server's
    share."""
    prg = prgs("client")
    sk = bfv.keygen(p, prg)
    keys = ClientKeys(bfv.public_key(sk, prg, 1), bfv.public_key(sk, prg, 2))
    ct = bfv.encrypt_sk(sk, ring_of(RING, inputs["m"]), prg)
    if param(inputs, "degree") == 2:
        ct = bfv.ct_mul(ct, ct)
    bound = float(inputs["flood_noise_bound_bits"])
    flooded, share = mask_and_flood(ct, keys, prgs("server"), bound)
    return sk, flooded, share


def _modswitch(inputs: Json, params: Json, prgs: PartyPrg) -> tuple[Json, Json | None]:
    p = preset(str(params["set"]))
    sk, flooded, share = _flooded(p, inputs, prgs)
    if ct_encode(flooded).hex() != inputs["flooded"]:
        raise SpecError("the case's flooded is not the flood of its m by its PRGs")
    keep = modswitch.response_keep(p, param(inputs, "degree"))
    small = modswitch.mod_switch(flooded, keep)
    client = bfv.decrypt(modswitch.switch_key(sk, small.params), small)
    outputs = {
        "keep": keep,
        "switched": ct_encode(small).hex(),
        "client_share": hex_ring(RING, client),
    }
    return outputs, {"s": [int(v) for v in sk.s], "server_share": hex_ring(RING, share)}


def _modswitch_groups() -> list[Group]:
    p = preset("toy")
    cases = []
    for degree in (1, 2):
        cid = f"he.modswitch/toy/degree{degree}"
        m = np.zeros(p.n, dtype=np.uint64)
        m[:4] = [3, 2**64 - 5, 1 << 20, 7]
        recipe = {"degree": degree, "m": hex_ring(RING, m), "flood_noise_bound_bits": FLOOD_BOUND}
        flooded = _flooded(p, recipe, case_prgs("he.modswitch", cid))[1]
        inputs = {"flooded": ct_encode(flooded).hex(), **recipe}
        comment = (
            f"degree {degree}: {len(p.q_primes)} primes down to "
            f"{modswitch.response_keep(p, degree)}"
        )
        cases.append(CaseSpec(cid, comment, inputs, ("Insecure",)))
    return [Group({}, cases)]


table_file(
    "he.modswitch",
    "he/modswitch.json",
    section="20.11",
    anchor="spec/20-he.md#mod_switch",
    params=TOY_PARAMS,
    header=[
        "A flooded response switched down to response_keep(toy, degree) primes (mod_switch).",
        "Client PRG Prg(case_seed, dst('vectors', 'client')): keygen, pk, pk2, encrypt_sk(m);",
        "degree 2 squares it with ct_mul. flooded, server_share = mask_and_flood(ct, (pk, pk2),",
        "Prg(case_seed, dst('vectors', 'server')), flood_noise_bound_bits) (spec 20.9).",
    ],
    notes={"Insecure": INSECURE},
    seeded=_modswitch,
    groups=_modswitch_groups,
)


def _respack(inputs: Json, params: Json, prgs: PartyPrg) -> tuple[Json, Json | None]:
    p = preset(str(params["set"]))
    a = param(inputs, "a")
    prg, server = prgs("client"), prgs("server")
    sk = bfv.keygen(p, prg)
    pk = bfv.public_key(sk, prg, 1)
    keys = {k: galois.galois_keygen(sk, k, prg) for k in respack.pack_elements(p)}
    rk = relin.relin_keygen(sk, prg)
    ms = [ring_of(RING, m) for m in inputs["m"]]
    zero = np.zeros(p.n, dtype=np.uint64)
    cts = [respack.add_plain_scaled(bfv.encrypt_sk(sk, zero, prg), m, a) for m in ms]
    flooded = [respack.flood(c, pk, server, param(inputs, "flood_bits")) for c in cts]
    packed = respack.pack_group(flooded, a, keys)
    g = (1 << a) >> (len(ms) - 1).bit_length()
    positions = np.array(
        sorted(i * (1 << a) + k * g for k in range(len(ms)) for i in range(p.n >> a)),
        dtype=np.intp,
    )
    keep = respack.keep_for(p, 60.0, 1)
    small = modswitch.mod_switch(packed, keep)
    wire = respack.packed_ct_encode(small, positions)
    back = respack.packed_ct_decode(small.params, wire, positions, label="v", party="client")
    client = bfv.decrypt(modswitch.switch_key(sk, small.params), back)[positions]
    square = bfv.ct_mul(cts[0], cts[0])
    outputs = {
        "packed": ct_encode(packed).hex(),
        "keep": keep,
        "positions": [int(v) for v in positions],
        "packed_ct_encode": wire.hex(),
        "decrypted_at_positions": hex_ring(RING, client),
        "relinearised": ct_encode(relin.relinearise(square, rk)).hex(),
    }
    intermediates = {
        "s": [int(v) for v in sk.s],
        "pack_keys": {str(k): gk_encode(key).hex() for k, key in keys.items()},
        "relin_key": gk_encode(rk).hex(),
        "cts": [ct_encode(c).hex() for c in cts],
        "flooded": [ct_encode(c).hex() for c in flooded],
        "ct_mul_first": ct_encode(square).hex(),
    }
    return outputs, intermediates


def _respack_groups() -> list[Group]:
    n = preset("toy").n
    a = 3
    cases = []
    for count in (1, 3, 8):
        cid = f"he.respack/toy/a{a}/g{count}"
        source = inputs_prg("he.respack", cid)
        ms = [hex_ring(RING, source.next_u64(n)) for _ in range(count)]
        comment = f"{count} products packed with a = {a}; relinearised square of the first"
        cases.append(CaseSpec(cid, comment, {"m": ms, "a": a, "flood_bits": 40}, ("Insecure",)))
    return [Group({}, cases)]


table_file(
    "he.respack",
    "he/respack.json",
    section="20.13",
    anchor="spec/20-he.md#pack_group",
    params=TOY_PARAMS,
    header=[
        "Packed responses (spec §20.13-20.14) on the insecure toy set: G ciphertexts of messages at",
        "the scale q / 2^(64 + a) (encrypt_sk of zero, then encode_scaled), each flooded, packed",
        "by pack_group, switched and encoded by packed_ct_encode; and one ct_mul relinearised. Client",
        "PRG Prg(case_seed, dst('vectors', 'client')): keygen, pk, the packing keys (pack_elements,",
        "increasing), the relinearisation key, then the encryptions; server PRG",
        "Prg(case_seed, dst('vectors', 'server')): the floods in order.",
    ],
    notes={"Insecure": INSECURE},
    seeded=_respack,
    groups=_respack_groups,
)
