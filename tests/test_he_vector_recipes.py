"""Regenerate the flooded responses of vectors/he/modswitch.json and vectors/he/toy.json from
the recipes of spec §20.9 (the files' headers), so that ``server_share`` is checked, not trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from secmoe.encoding import Ring
from secmoe.he import bfv
from secmoe.he.params import preset
from secmoe.he.privacy import ClientKeys, mask_and_flood
from secmoe.he.serialize import ct_encode, pk_encode
from secmoe.randomness import Prg, dst
from secmoe.vectors.registry import case_seed

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "he"
TOY = preset("toy")
RING = Ring(64)


def load(name: str) -> tuple[str, list[dict[str, Any]]]:
    data = json.loads((VECTORS / name).read_text())
    return data["protocol"], [c for g in data["testGroups"] for c in g["tests"]]


def ring_hex(text: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(text), dtype="<u8").astype(np.uint64)


def prgs(protocol: str, case_id: str) -> tuple[Prg, Prg]:
    """The client's and the server's PRG of a case (spec §20.9)."""
    seed = case_seed(protocol, case_id)
    return Prg(seed, dst("vectors", "client")), Prg(seed, dst("vectors", "server"))


def keys_of(client: Prg) -> tuple[bfv.SecretKey, ClientKeys]:
    sk = bfv.keygen(TOY, client)
    return sk, ClientKeys(bfv.public_key(sk, client, 1), bfv.public_key(sk, client, 2))


def test_modswitch_flood_and_server_share_are_regenerated() -> None:
    protocol, found = load("modswitch.json")
    assert len(found) == 2
    for c in found:
        inp = c["inputs"]
        client, server = prgs(protocol, c["id"])
        sk, keys = keys_of(client)
        assert [int(v) for v in sk.s] == c["intermediates"]["s"]
        ct = bfv.encrypt_sk(sk, ring_hex(inp["m"]), client)
        if inp["degree"] == 2:
            ct = bfv.ct_mul(ct, ct)
        flooded, share = mask_and_flood(ct, keys, server, inp["flood_noise_bound_bits"])
        assert ct_encode(flooded).hex() == inp["flooded"]
        assert RING.encode_vec(share).hex() == c["intermediates"]["server_share"]


def test_a_wrong_server_prg_gives_another_flood() -> None:
    protocol, found = load("modswitch.json")
    c = found[0]
    client, _ = prgs(protocol, c["id"])
    sk, keys = keys_of(client)
    ct = bfv.encrypt_sk(sk, ring_hex(c["inputs"]["m"]), client)
    other = Prg(case_seed(protocol, c["id"]), dst("vectors", "client"))
    flooded, share = mask_and_flood(ct, keys, other, c["inputs"]["flood_noise_bound_bits"])
    assert ct_encode(flooded).hex() != c["inputs"]["flooded"]
    assert RING.encode_vec(share).hex() != c["intermediates"]["server_share"]


def test_toy_chain_is_regenerated_from_its_recipe() -> None:
    protocol, found = load("toy.json")
    (c,) = found
    inp, out = c["inputs"], c["outputs"]
    client, server = prgs(protocol, c["id"])
    sk, keys = keys_of(client)
    assert keys.pk2 is not None
    assert pk_encode(keys.pk).hex() == c["intermediates"]["pk"]
    assert pk_encode(keys.pk2).hex() == c["intermediates"]["pk2"]
    m1, m2 = ring_hex(inp["m1"]), ring_hex(inp["m2"])
    c1 = bfv.encrypt_sk(sk, m1, client)
    c2 = bfv.encrypt_pk(keys.pk, m2, client)
    assert ct_encode(c1, seeded=True).hex() == c["intermediates"]["encrypt_sk_m1"]
    assert ct_encode(c2).hex() == c["intermediates"]["encrypt_pk_m2"]
    assert ct_encode(bfv.ct_add(c1, c2)).hex() == out["add"]
    assert ct_encode(bfv.ct_add_plain(c1, m2)).hex() == out["add_plain"]
    assert ct_encode(bfv.ct_mul_plain(c1, m2.view(np.int64))).hex() == out["mul_plain"]
    product = bfv.ct_mul(c1, c2)
    assert ct_encode(product).hex() == out["mul"]
    flooded, share = mask_and_flood(product, keys, server, inp["flood_noise_bound_bits"])
    assert ct_encode(flooded).hex() == out["flooded"]
    assert RING.encode_vec(share).hex() == out["server_share"]
