"""Modulus switching of flooded responses (spec/20-he.md §20.11)."""

from __future__ import annotations

import numpy as np
import pytest
from bounded import layer_settings
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import Ring
from secmoe.errors import SpecError
from secmoe.he import bfv, modswitch, noise
from secmoe.he.params import preset
from secmoe.he.privacy import ClientKeys, mask_and_flood
from secmoe.he.serialize import ct_bytes, ct_decode, ct_encode
from secmoe.randomness import Prg, dst

TOY = preset("toy")
RING = Ring(64)


def prg(tag: str, seed: int = 0) -> Prg:
    return Prg(bytes([seed]) * 32, dst("test", tag))


@layer_settings(8)
@given(seed=st.integers(0, 255), degree=st.sampled_from([1, 2]))
def test_switched_flooded_response_decrypts_with_margin(seed: int, degree: int) -> None:
    src, server = prg("ms", seed), prg("ms-server", seed)
    sk = bfv.keygen(TOY, src)
    keys = ClientKeys(bfv.public_key(sk, src, 1), bfv.public_key(sk, src, 2))
    m = np.zeros(TOY.n, dtype=np.int64)
    m[:4] = src.next_below(4, 1 << 20).astype(np.int64) - (1 << 19)
    ct = bfv.encrypt_sk(sk, m.view(np.uint64), src)
    if degree == 2:
        ct = bfv.ct_mul(ct, ct)
    plain = bfv.decrypt(sk, ct)
    out, share = mask_and_flood(ct, keys, server, noise.fresh_pk_bits(TOY) + 50)
    keep = modswitch.response_keep(TOY, degree)
    assert keep < len(TOY.q_primes)
    small = modswitch.mod_switch(out, keep)
    assert small.params.q_primes == TOY.q_primes[:keep] and small.degree == degree
    sk_small = modswitch.switch_key(sk, small.params)
    client = bfv.decrypt(sk_small, small)
    assert np.array_equal(RING.add(client, share), plain)
    assert bfv.margin_bits(sk_small, small, client) >= noise.MARGIN
    # The switched ciphertext travels in fewer bytes and round-trips.
    data = ct_encode(small)
    assert len(data) == ct_bytes(small.params, degree) < ct_bytes(TOY, degree)
    back = ct_decode(small.params, data, degree=degree, label="x", party="client")
    assert np.array_equal(bfv.decrypt(sk_small, back), client)


def test_response_sizes_at_128_bit_sets() -> None:
    for name, degree, keep in (("he8192", 1, 4), ("he16384", 2, 4)):
        p = preset(name)
        assert modswitch.response_keep(p, degree) == keep
        assert modswitch.switched_params(p, keep).log_q <= p.log_q
    with pytest.raises(SpecError):
        modswitch.switched_params(TOY, 0)
    with pytest.raises(SpecError):
        modswitch.switch_key(bfv.keygen(TOY, prg("k")), preset("he8192"))
