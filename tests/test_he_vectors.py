"""Replay vectors/he/galois.json and vectors/he/modswitch.json from their recorded inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmoe.encoding import Ring
from secmoe.errors import ProtocolError, SpecError
from secmoe.he import bfv, galois, modswitch, relin, respack
from secmoe.he.params import preset
from secmoe.he.serialize import ct_decode, ct_encode, gk_decode

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "he"
TOY = preset("toy")
RING = Ring(64)


def cases(name: str) -> list[dict[str, Any]]:
    data = json.loads((VECTORS / name).read_text())
    return [c for g in data["testGroups"] for c in g["tests"]]


def ring_hex(text: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(text), dtype="<u8").astype(np.uint64)


def test_replay_galois_vectors() -> None:
    found = cases("galois.json")
    assert len(found) == 2
    for c in found:
        levels = c["inputs"]["levels"]
        sk = bfv.SecretKey(TOY, np.array(c["intermediates"]["s"], dtype=np.int64))
        keys = {
            int(k): gk_decode(TOY, bytes.fromhex(v), int(k), label="v", party="server")
            for k, v in c["intermediates"]["galois_keys"].items()
        }
        ct = ct_decode(TOY, bytes.fromhex(c["intermediates"]["ct"]), label="v", party="server")
        m = ring_hex(c["inputs"]["m"])
        assert np.array_equal(bfv.decrypt(sk, ct), m)
        sub = galois.apply_galois(ct, keys[TOY.n + 1])
        assert ct_encode(sub).hex() == c["intermediates"]["apply_galois_k_n_plus_1"]
        outs = galois.expand_selector(ct, keys, levels)
        assert [ct_encode(o).hex() for o in outs] == c["outputs"]["expanded"]
        for e, o in enumerate(outs):
            got = bfv.decrypt(sk, o)
            assert got.tobytes().hex() == c["outputs"]["decrypted"][e]
            assert int(got[0]) == (int(m[e]) << levels) % 2**64 and not got[1:].any()


def test_replay_modswitch_vectors() -> None:
    found = cases("modswitch.json")
    assert len(found) == 2
    for c in found:
        degree = c["inputs"]["degree"]
        sk = bfv.SecretKey(TOY, np.array(c["intermediates"]["s"], dtype=np.int64))
        data = bytes.fromhex(c["inputs"]["flooded"])
        flooded = ct_decode(TOY, data, degree=degree, label="v", party="client")
        keep = modswitch.response_keep(TOY, degree)
        assert keep == c["outputs"]["keep"]
        small = modswitch.mod_switch(flooded, keep)
        assert ct_encode(small).hex() == c["outputs"]["switched"]
        client = bfv.decrypt(modswitch.switch_key(sk, small.params), small)
        assert client.tobytes().hex() == c["outputs"]["client_share"]
        # Switching does not change what the client decrypts.
        assert np.array_equal(client, bfv.decrypt(sk, flooded))
        total = RING.add(client, ring_hex(c["intermediates"]["server_share"]))
        m = [3, -5, 1 << 20, 7]  # the generator's plaintext (signed), degree 2 squares it
        want = [0] * TOY.n
        if degree == 1:
            want[:4] = m
        else:
            for i, a in enumerate(m):
                for j, b in enumerate(m):
                    want[i + j] += a * b  # no wrap: i + j < N
        assert [int(v) for v in total] == [v % 2**64 for v in want]


def test_replay_respack_vectors() -> None:
    """pack_group, packed_ct_encode and relinearise reproduce the recorded bytes, and the packed
    ciphertext decrypts to the messages' kept coefficients (spec §20.13-20.14)."""
    found = cases("respack.json")
    assert len(found) == 3
    for c in found:
        a = c["inputs"]["a"]
        sk = bfv.SecretKey(TOY, np.array(c["intermediates"]["s"], dtype=np.int64))
        keys = {
            int(k): gk_decode(TOY, bytes.fromhex(v), int(k), label="v", party="server")
            for k, v in c["intermediates"]["pack_keys"].items()
        }
        flooded = [
            ct_decode(TOY, bytes.fromhex(h), label="v", party="server")
            for h in c["intermediates"]["flooded"]
        ]
        packed = respack.pack_group(flooded, a, keys)
        assert ct_encode(packed).hex() == c["outputs"]["packed"]
        positions = np.array(c["outputs"]["positions"], dtype=np.intp)
        small = modswitch.mod_switch(packed, c["outputs"]["keep"])
        wire = respack.packed_ct_encode(small, positions)
        assert wire.hex() == c["outputs"]["packed_ct_encode"]
        got = bfv.decrypt(modswitch.switch_key(sk, small.params), small)[positions]
        assert got.tobytes().hex() == c["outputs"]["decrypted_at_positions"]
        ms = [ring_hex(h) for h in c["inputs"]["m"]]
        g = (1 << a) >> (len(ms) - 1).bit_length()
        want = {
            i * (1 << a) + k * g: int(m[i << a])
            for k, m in enumerate(ms)
            for i in range(TOY.n >> a)
        }
        assert [int(v) for v in got] == [want[int(pos)] for pos in positions]
        rk = gk_decode(
            TOY, bytes.fromhex(c["intermediates"]["relin_key"]), 0, label="v", party="server"
        )
        square = ct_decode(
            TOY,
            bytes.fromhex(c["intermediates"]["ct_mul_first"]),
            degree=2,
            label="v",
            party="server",
        )
        one = relin.relinearise(square, rk)
        assert ct_encode(one).hex() == c["outputs"]["relinearised"]
        assert np.array_equal(bfv.decrypt(sk, one), bfv.decrypt(sk, square))
        with pytest.raises(ProtocolError):
            respack.packed_ct_decode(small.params, wire[:-1], positions, label="v", party="client")


def test_modswitch_case_function_refuses_a_flood_its_prgs_did_not_make() -> None:
    # The table's local function reads the case's inputs and draws from its party PRGs; a
    # flooded input that is not the flood of its m by those PRGs is refused, not switched.
    from secmoe.vectors.gen_he_galois import _modswitch
    from secmoe.vectors.play import case_prgs

    params = {"set": "toy"}
    for c in cases("modswitch.json"):
        prgs = case_prgs("he.modswitch", c["id"])
        outputs, intermediates = _modswitch(c["inputs"], params, prgs)
        assert (outputs, intermediates) == (c["outputs"], c["intermediates"])
        flooded = bytearray(bytes.fromhex(c["inputs"]["flooded"]))
        flooded[0] ^= 1
        tampered = {**c["inputs"], "flooded": flooded.hex()}
        with pytest.raises(SpecError, match="not the flood"):
            _modswitch(tampered, params, prgs)
