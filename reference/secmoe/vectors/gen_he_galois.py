"""Vector generators for spec §20.10-20.11: Galois keys, the selector expansion and modulus
switching, on the insecure toy set (every polynomial inline)."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import Ring
from secmoe.he import bfv, galois, modswitch, relin, respack
from secmoe.he.params import preset
from secmoe.he.privacy import ClientKeys, mask_and_flood
from secmoe.he.serialize import ct_encode, gk_encode
from secmoe.randomness import Prg, dst
from secmoe.vectors.build import hex_ring, local_case
from secmoe.vectors.registry import Json, Note, case_seed, inputs_prg, register

FLOOD_BOUND = 60.0  # the analytic noise bound (bits) modswitch's responses are flooded for
INSECURE = Note("INSECURE_PARAMS", "the toy parameter set (N = 32): readable, not secure")


@register(
    "he.galois",
    "he/galois.json",
    section="20.10",
    anchor="spec/20-he.md#expand_selector",
    params={"set": "toy", "N": 32, "t": "2^64"},
    mode="local",
    header=[
        "Galois keys (galois_keygen), one substitution (apply_galois) and the expansion of a",
        "packed selector (expand_selector) on the insecure toy set. The client's PRG is",
        "Prg(case_seed, dst('vectors', 'client')): keygen, then the Galois keys in the order of",
        "k_j = N / 2^j + 1, then the encryption. Ciphertexts are ct_encode hex, keys gk_encode hex.",
    ],
    notes={"Insecure": INSECURE},
)
def _gen_galois() -> list[Json]:
    p = preset("toy")
    ring = Ring(64)
    cases = []
    for levels in (2, 3):
        cid = f"he.galois/toy/l{levels}"
        prg = Prg(case_seed("he.galois", cid), dst("vectors", "client"))
        inputs = inputs_prg("he.galois", cid)
        sk = bfv.keygen(p, prg)
        keys = {k: galois.galois_keygen(sk, k, prg) for k in galois.expansion_elements(p, levels)}
        m = np.zeros(p.n, dtype=np.uint64)
        m[: 1 << levels] = inputs.next_u64(1 << levels)
        ct = bfv.encrypt_sk(sk, m, prg)
        first = galois.apply_galois(ct, keys[p.n + 1])
        outs = galois.expand_selector(ct, keys, levels)
        cases.append(
            local_case(
                cid,
                f"{1 << levels} entries, {levels} expansion levels",
                inputs={"m": hex_ring(ring, m), "levels": levels},
                intermediates={
                    "s": [int(v) for v in sk.s],
                    "galois_keys": {str(k): gk_encode(key).hex() for k, key in keys.items()},
                    "ct": ct_encode(ct).hex(),
                    "apply_galois_k_n_plus_1": ct_encode(first).hex(),
                },
                outputs={
                    "expanded": [ct_encode(c).hex() for c in outs],
                    "decrypted": [hex_ring(ring, bfv.decrypt(sk, c)) for c in outs],
                },
                flags=["Insecure"],
            )
        )
    return [{"params": {}, "tests": cases}]


@register(
    "he.modswitch",
    "he/modswitch.json",
    section="20.11",
    anchor="spec/20-he.md#mod_switch",
    params={"set": "toy", "N": 32, "t": "2^64"},
    mode="local",
    header=[
        "A flooded response switched down to response_keep(toy, degree) primes (mod_switch).",
        "Client PRG Prg(case_seed, dst('vectors', 'client')): keygen, pk, pk2, encrypt_sk(m);",
        "degree 2 squares it with ct_mul. flooded, server_share = mask_and_flood(ct, (pk, pk2),",
        "Prg(case_seed, dst('vectors', 'server')), flood_noise_bound_bits) (spec 20.9).",
    ],
    notes={"Insecure": INSECURE},
)
def _gen_modswitch() -> list[Json]:
    p = preset("toy")
    ring = Ring(64)
    cases = []
    for degree in (1, 2):
        cid = f"he.modswitch/toy/degree{degree}"
        prg = Prg(case_seed("he.modswitch", cid), dst("vectors", "client"))
        server = Prg(case_seed("he.modswitch", cid), dst("vectors", "server"))
        sk = bfv.keygen(p, prg)
        keys = ClientKeys(bfv.public_key(sk, prg, 1), bfv.public_key(sk, prg, 2))
        m = np.zeros(p.n, dtype=np.uint64)
        m[:4] = [3, 2**64 - 5, 1 << 20, 7]
        ct = bfv.encrypt_sk(sk, m, prg)
        if degree == 2:
            ct = bfv.ct_mul(ct, ct)
        flooded, share = mask_and_flood(ct, keys, server, FLOOD_BOUND)
        keep = modswitch.response_keep(p, degree)
        small = modswitch.mod_switch(flooded, keep)
        client = bfv.decrypt(modswitch.switch_key(sk, small.params), small)
        cases.append(
            local_case(
                cid,
                f"degree {degree}: {len(p.q_primes)} primes down to {keep}",
                inputs={
                    "flooded": ct_encode(flooded).hex(),
                    "degree": degree,
                    "m": hex_ring(ring, m),
                    "flood_noise_bound_bits": FLOOD_BOUND,
                },
                intermediates={"s": [int(v) for v in sk.s], "server_share": hex_ring(ring, share)},
                outputs={
                    "keep": keep,
                    "switched": ct_encode(small).hex(),
                    "client_share": hex_ring(ring, client),
                },
                flags=["Insecure"],
            )
        )
    return [{"params": {}, "tests": cases}]


@register(
    "he.respack",
    "he/respack.json",
    section="20.13",
    anchor="spec/20-he.md#pack_group",
    params={"set": "toy", "N": 32, "t": "2^64"},
    mode="local",
    header=[
        "Packed responses (spec §20.13-20.14) on the insecure toy set: G ciphertexts of messages at",
        "the scale q / 2^(64 + a) (encrypt_sk of zero, then encode_scaled), each flooded, packed",
        "by pack_group, switched and encoded by packed_ct_encode; and one ct_mul relinearised. Client",
        "PRG Prg(case_seed, dst('vectors', 'client')): keygen, pk, the packing keys (pack_elements,",
        "increasing), the relinearisation key, then the encryptions; server PRG",
        "Prg(case_seed, dst('vectors', 'server')): the floods in order.",
    ],
    notes={"Insecure": INSECURE},
)
def _gen_respack() -> list[Json]:
    p = preset("toy")
    ring = Ring(64)
    a = 3
    cases = []
    for count in (1, 3, 8):
        cid = f"he.respack/toy/a{a}/g{count}"
        prg = Prg(case_seed("he.respack", cid), dst("vectors", "client"))
        server = Prg(case_seed("he.respack", cid), dst("vectors", "server"))
        inputs = inputs_prg("he.respack", cid)
        sk = bfv.keygen(p, prg)
        pk = bfv.public_key(sk, prg, 1)
        keys = {k: galois.galois_keygen(sk, k, prg) for k in respack.pack_elements(p)}
        rk = relin.relin_keygen(sk, prg)
        ms = [inputs.next_u64(p.n) for _ in range(count)]
        zero = np.zeros(p.n, dtype=np.uint64)
        cts = [respack.add_plain_scaled(bfv.encrypt_sk(sk, zero, prg), m, a) for m in ms]
        flooded = [respack.flood(c, pk, server, 40) for c in cts]
        packed = respack.pack_group(flooded, a, keys)
        g = (1 << a) >> (count - 1).bit_length()
        positions = np.array(
            sorted(i * (1 << a) + k * g for k in range(count) for i in range(p.n >> a)),
            dtype=np.intp,
        )
        keep = respack.keep_for(p, 60.0, 1)
        small = modswitch.mod_switch(packed, keep)
        wire = respack.packed_ct_encode(small, positions)
        back = respack.packed_ct_decode(small.params, wire, positions, label="v", party="client")
        client = bfv.decrypt(modswitch.switch_key(sk, small.params), back)[positions]
        square = bfv.ct_mul(cts[0], cts[0])
        cases.append(
            local_case(
                cid,
                f"{count} products packed with a = {a}; relinearised square of the first",
                inputs={"m": [hex_ring(ring, m) for m in ms], "a": a, "flood_bits": 40},
                intermediates={
                    "s": [int(v) for v in sk.s],
                    "pack_keys": {str(k): gk_encode(key).hex() for k, key in keys.items()},
                    "relin_key": gk_encode(rk).hex(),
                    "cts": [ct_encode(c).hex() for c in cts],
                    "flooded": [ct_encode(c).hex() for c in flooded],
                    "ct_mul_first": ct_encode(square).hex(),
                },
                outputs={
                    "packed": ct_encode(packed).hex(),
                    "keep": keep,
                    "positions": [int(v) for v in positions],
                    "packed_ct_encode": wire.hex(),
                    "decrypted_at_positions": hex_ring(ring, client),
                    "relinearised": ct_encode(relin.relinearise(square, rk)).hex(),
                },
                flags=["Insecure"],
            )
        )
    return [{"params": {}, "tests": cases}]
